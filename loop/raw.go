package loop

import (
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

// BootstrapTag is the tag of the main Kafka listener.
const BootstrapTag int32 = -1

// ClientConn identifies a client connection to a RawKafkaHandler.
type ClientConn struct {
	// ID is unique per server for the life of the process.
	ID uint64
	// Tag is the tag of the listener the client connected to.
	Tag int32
	// Addr is the client's IP.
	Addr string
	// User is the SASL-authenticated user's name; "" when the connection
	// did not authenticate (anonymous).
	User string
	// ClientID is the request's client id (ServeKafkaFrom only).
	ClientID string
	// TLS says the connection came in on a TLS listener.
	TLS bool
	// TLSSubject is the subject of the client certificate verified under
	// mutual TLS (its principal when SASL is off), or "".
	TLSSubject string
	// FetchRoom, for a Fetch (ServeRaw), is the most its answer may be
	// for the memory budget: what the client's IP may still hold of it
	// and what the budget has left, at least 1. A forwarding handler
	// lowers the request's byte limit to it, as the loop does for a
	// decoded Fetch, so the answer is built to fit rather than held
	// beyond the budget. 0 for other requests.
	FetchRoom int64
}

// ClientKafkaHandler is implemented by Kafka handlers that need to know
// who sent a decoded request (the ACL guard): the loop then calls
// ServeKafkaFrom instead of ServeKafka.
type ClientKafkaHandler interface {
	KafkaHandler
	// ServeKafkaFrom is ServeKafka with the connection's identity.
	ServeKafkaFrom(cl ClientConn, req kmsg.Request, respond func(kmsg.Response))
}

// TLSKafkaHandler is implemented by Kafka handlers that answer requests
// from TLS connections differently: Metadata and FindCoordinator advertise
// the TLS listener's address, so that a client that bootstrapped over TLS
// stays on TLS (Kafka's per-listener advertised.listeners). Requests from
// plaintext connections go to ServeKafka as before.
type TLSKafkaHandler interface {
	KafkaHandler
	// ServeKafkaTLS is ServeKafka for a request that came over TLS;
	// subject is the verified client certificate's subject, or "".
	ServeKafkaTLS(req kmsg.Request, clientID, addr, subject string, respond func(kmsg.Response))
}

// RawKafkaHandler is implemented by Kafka handlers that forward frames as
// bytes (the gateway) instead of decoded requests. The loop still applies
// every limit; it decodes a request only to refuse it.
type RawKafkaHandler interface {
	KafkaHandler
	// ServeRaw handles one frame: frame is the request after its length
	// prefix, header included. respond takes the whole response frame
	// (length prefix and header included) with the client's correlation id,
	// or nil when no response is due; it is called exactly once, and the
	// loop owns resp afterwards (it is written without a copy).
	ServeRaw(cl ClientConn, h *kafka.Header, frame []byte, respond func(resp []byte))
	// ConnClosed tells the handler a client connection is gone.
	ConnClosed(id uint64)
}

// ChunkedRawKafkaHandler is a RawKafkaHandler that takes a large Produce
// frame in the pieces it arrived in rather than in one buffer: the loop
// then never copies what arrived into a larger buffer as the frame grows
// (for a 1 MB frame arriving in 64 KiB reads that copy was a megabyte
// more of memmove, a tenth of the gateway's CPU producing). The loop
// holds the same bytes either way: the pieces double, so they stay within
// twice what arrived, and the budget charges their capacity.
type ChunkedRawKafkaHandler interface {
	RawKafkaHandler
	// ServeRawChunks is ServeRaw for a frame in pieces: frame, then more
	// (at least one piece), in order. frame holds the whole request
	// header. The pieces are the loop's until respond is called, as
	// ServeRaw's frame is.
	ServeRawChunks(cl ClientConn, h *kafka.Header, frame []byte, more [][]byte, respond func(resp []byte))
}

// AddKafkaListener starts one more Kafka listener whose connections carry
// tag (the gateway gives each upstream broker one). It returns the bound
// address.
func (s *Server) AddKafkaListener(addr string, tag int32) (net.Addr, error) {
	ln, err := listenTCP(addr, s.listenerBuffers())
	if err != nil {
		return nil, fmt.Errorf("listen kafka %s (tag %d): %w", addr, tag, err)
	}
	s.extraMu.Lock()
	if s.stopping.Load() {
		s.extraMu.Unlock()
		ln.Close()
		return nil, fmt.Errorf("listen kafka %s: server stopping", addr)
	}
	s.extraLns = append(s.extraLns, ln)
	s.extraTags = append(s.extraTags, tag)
	serving := s.serving
	s.extraMu.Unlock()
	if serving { // else serve starts it with the others
		s.startAcceptor(ln, kindKafka, tag)
	}
	s.log.Info("kafka listener added", "addr", ln.Addr().String(), "tag", tag)
	return ln.Addr(), nil
}

// connClosed tells a raw handler a connection is gone.
func (s *Server) connClosed(c *conn) {
	if c.kind != kindKafka || c.connBusy == nil {
		return // a connection that never sent a byte was never seen by a handler
	}
	if s.raw != nil {
		s.raw.ConnClosed(c.id)
	}
}
