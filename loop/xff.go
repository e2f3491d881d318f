package loop

import (
	"bytes"
	"net/netip"

	"github.com/floodgate/floodgate/codec/httpcodec"
)

// X-Forwarded-For is believed only from a trusted proxy (a peer, or a
// PROXY-named client, in --proxy-protocol-from): each proxy appends the
// address it received the request from, so the client is the rightmost
// address that is not itself a trusted proxy; anything to its left was
// written by the client and may be forged. It names the client of the
// request (HTTPRequest.RemoteIP: rate limits per client, route keys,
// logs); the connection-level limits (connections and memory share per
// IP) stay with the connection's own address, since one connection of an
// L7 proxy carries the requests of many clients.

// requestIP returns the client address of the HTTP request just read on
// c: the connection's, or for a trusted proxy the one X-Forwarded-For
// names.
func (c *conn) requestIP(req *httpcodec.Request) netip.Addr {
	p := &c.loop.s.cfg.Proxy
	if len(p.From) == 0 || !p.Trusts(c.ip) {
		return c.ip
	}
	return p.forwardedFor(c.ip, req)
}

// xffName is the header that lists the proxies a request went through.
var xffName = []byte("X-Forwarded-For")

// forwardedFor walks X-Forwarded-For from the right (the last field line
// is the last proxy's) and returns the first address that is not a
// trusted proxy. An element that is not an address ends the walk at the
// last address read (the hop that wrote it is trusted); when every
// address is trusted, the leftmost is the client.
func (p *ProxyConfig) forwardedFor(peer netip.Addr, req *httpcodec.Request) netip.Addr {
	client := peer
	for i := len(req.Headers) - 1; i >= 0; i-- {
		if !bytes.EqualFold(req.Headers[i].Name, xffName) {
			continue
		}
		v := req.Headers[i].Value
		for len(v) > 0 {
			var elem []byte
			if j := bytes.LastIndexByte(v, ','); j >= 0 {
				elem, v = v[j+1:], v[:j]
			} else {
				elem, v = v, nil
			}
			elem = bytes.Trim(elem, " \t")
			if len(elem) == 0 {
				continue
			}
			a, ok := parseForwarded(elem)
			if !ok {
				return client
			}
			client = a
			if !p.Trusts(a) {
				return a
			}
		}
	}
	return client
}

// parseForwarded reads one X-Forwarded-For element: an address, or an
// address with a port (1.2.3.4:5, [::1]:5), as some proxies write.
func parseForwarded(b []byte) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(string(b)); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(string(b)); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}
