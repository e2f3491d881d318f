package broker

// Listeners: floodgate serves Kafka on a plaintext listener, a TLS one, or
// both. Like Kafka's advertised.listeners, the address a client is told
// (Metadata, FindCoordinator, DescribeCluster) is the one of the listener
// its request came in on: a client that bootstrapped over TLS stays on
// TLS, one that bootstrapped in plaintext stays in plaintext.

import "github.com/twmb/franz-go/pkg/kmsg"

// ServeKafkaTLS serves one request that came over a TLS connection;
// subject is the verified client certificate's subject (mutual TLS), or "".
func (b *Broker) ServeKafkaTLS(req kmsg.Request, clientID, addr, subject string, respond func(kmsg.Response)) {
	b.Handle(req, &Client{ID: clientID, Addr: addr, TLS: true, TLSSubject: subject}, respond)
}

// advertised returns the host and port cl is told to use.
func (b *Broker) advertised(cl *Client) (string, int32) {
	if cl != nil && cl.TLS && b.cfg.TLSHost != "" {
		return b.cfg.TLSHost, b.cfg.TLSPort
	}
	return b.cfg.Host, b.cfg.Port
}
