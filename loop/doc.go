// Package loop is floodgate's network core: Go acceptors that hand sockets
// to one gnet engine, the per-connection state machine that peeks Kafka
// frame heads and HTTP request heads, the limits checked before anything is
// buffered, the bounded worker pool, in-order responses, and parking: the
// TCP backpressure gnet does not offer.
//
// Accepting in Go rather than with gnet's acceptor is deliberate: gnet's
// acceptor stops the whole engine on EMFILE, ENFILE, ENOBUFS or ENOMEM,
// while a Go acceptor can back off and retry, hold a descriptor reserve for
// the HTTP listener and refuse connections over the limits before gnet
// sees them. Each socket is handed to gnet with Engine.Register, which
// dup()s it (two descriptors for a moment).
//
// Parking: gnet always reads a readable socket and buffers what the handler
// leaves, so "not consuming" is no backpressure. A saturated connection is
// parked instead: its descriptor is duplicated, its unconsumed bytes are
// taken, and gnet closes its copy; the socket stays open and unread, the
// kernel buffer fills and the client's writes block. A goroutine writes the
// responses the connection is still owed and, once it has drained,
// registers the socket with gnet again. floodgate writes responses itself
// (never into gnet's outbound buffer), so a park never loses output.
package loop
