package broker

// Listeners: floodgate serves Kafka on a plaintext listener, a TLS one, or
// both. Like Kafka's advertised.listeners, the address a client is told
// (Metadata, FindCoordinator, DescribeCluster) is the one of the listener
// its request came in on: a client that bootstrapped over TLS stays on
// TLS, one that bootstrapped in plaintext stays in plaintext.
//
// The handlers answer with the plaintext address (Config.Host, Port); the
// answers to TLS clients are rewritten on their way out. Client stays as
// small as it was: it is allocated per request on the plaintext path.

import "github.com/twmb/franz-go/pkg/kmsg"

// ServeKafkaTLS serves one request that came over a TLS connection;
// subject is the verified client certificate's subject (mutual TLS), or
// "" (the loop logs it; it becomes the principal with SASL).
func (b *Broker) ServeKafkaTLS(req kmsg.Request, clientID, addr, subject string, respond func(kmsg.Response)) {
	cl := &Client{ID: clientID, Addr: addr}
	if b.cfg.TLSHost == "" {
		b.Handle(req, cl, respond)
		return
	}
	switch req.(type) {
	case *kmsg.MetadataRequest, *kmsg.FindCoordinatorRequest, *kmsg.DescribeClusterRequest:
		b.Handle(req, cl, func(resp kmsg.Response) {
			b.advertiseTLS(resp)
			respond(resp)
		})
	default:
		b.Handle(req, cl, respond)
	}
}

// advertiseTLS replaces this broker's plaintext address with its TLS one
// in an answer that names brokers.
func (b *Broker) advertiseTLS(resp kmsg.Response) {
	self := func(node int32, host *string, port *int32) {
		if node == b.cfg.NodeID && *host == b.cfg.Host && *port == b.cfg.Port {
			*host, *port = b.cfg.TLSHost, b.cfg.TLSPort
		}
	}
	switch r := resp.(type) {
	case *kmsg.MetadataResponse:
		for i := range r.Brokers {
			self(r.Brokers[i].NodeID, &r.Brokers[i].Host, &r.Brokers[i].Port)
		}
	case *kmsg.FindCoordinatorResponse:
		self(r.NodeID, &r.Host, &r.Port)
		for i := range r.Coordinators {
			self(r.Coordinators[i].NodeID, &r.Coordinators[i].Host, &r.Coordinators[i].Port)
		}
	case *kmsg.DescribeClusterResponse:
		for i := range r.Brokers {
			self(r.Brokers[i].NodeID, &r.Brokers[i].Host, &r.Brokers[i].Port)
		}
	}
}
