// Package gateway is floodgate's gateway mode: it holds the client
// connections and forwards their Kafka requests to an existing cluster,
// while the loop enforces every limit at the door.
//
// Each upstream broker is reachable through a floodgate listener of its
// own; Metadata, FindCoordinator and DescribeCluster responses are rewritten
// so clients always route through floodgate. Frames are forwarded as bytes
// (only the correlation id changes) and decoded only to rewrite broker
// addresses or to answer with an error when an upstream broker is down.
//
// Upstream connections are bounded per broker: under the bound each client
// connection gets its own upstream connection; beyond it clients share the
// least-loaded ones (multiplexing), which keeps a client's requests in
// order on one upstream connection as idempotent producers need. Requests
// that wait upstream (long-poll Fetch, JoinGroup, SyncGroup) of clients on
// a shared connection, or on any connection once the pool is full (it may
// be shared at any moment), go to long-poll connections instead, since a
// broker answers one connection's requests one at a time.
//
// Forwarding never holds a pool worker on the network: an upstream
// connection dials (and does TLS and SASL) in its own goroutine, a sender writes only what the
// socket takes at once (the rest goes to the connection's writer
// goroutine), and a reader goroutine matches answers by correlation id.
package gateway
