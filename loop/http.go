package loop

import "github.com/panjf2000/gnet/v2"

// HTTPHandler serves HTTP requests (see httpapi).
type HTTPHandler interface{}

// httpConnState is the HTTP parser state of one connection.
type httpConnState struct{}

// onHTTP is the HTTP connection's traffic handler.
func (c *conn) onHTTP(gc gnet.Conn) gnet.Action {
	return gnet.Close
}
