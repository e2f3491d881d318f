package loop

import (
	"net/netip"
	"testing"

	"github.com/floodgate/floodgate/codec/httpcodec"
)

func TestForwardedForNamesTheRightmostUntrustedHop(t *testing.T) {
	p := ProxyConfig{From: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}}
	peer := netip.MustParseAddr("10.0.0.1")
	tests := []struct {
		name string
		xff  []string // header lines, in order
		want string
	}{
		{"no header: the peer", nil, "10.0.0.1"},
		{"one client", []string{"203.0.113.5"}, "203.0.113.5"},
		{"a forged left part is ignored", []string{"1.1.1.1, 203.0.113.5"}, "203.0.113.5"},
		{"trusted hops are skipped", []string{"1.1.1.1, 203.0.113.5, 10.1.1.1,10.2.2.2"}, "203.0.113.5"},
		{"the last line is the last proxy's", []string{"1.1.1.1", "203.0.113.5, 10.3.3.3"}, "203.0.113.5"},
		{"trusted hops span lines", []string{"1.1.1.1, 203.0.113.5", "10.3.3.3"}, "203.0.113.5"},
		{"every hop trusted: the leftmost", []string{"10.9.9.9, 10.3.3.3"}, "10.9.9.9"},
		{"garbage stops at the last trusted hop", []string{"203.0.113.5, unknown, 10.3.3.3"}, "10.3.3.3"},
		{"garbage next to the peer: the peer", []string{"203.0.113.5, <script>"}, "10.0.0.1"},
		{"ports and brackets", []string{"[2001:db8::5]:443, 203.0.113.9:80"}, "203.0.113.9"},
		{"v4-mapped is the IPv4 client", []string{"::ffff:203.0.113.5"}, "203.0.113.5"},
		{"empty elements are skipped", []string{"203.0.113.5, ,"}, "203.0.113.5"},
		{"zones are refused", []string{"fe80::1%eth0"}, "10.0.0.1"},
		{"ipv6 trusted hop", []string{"2001:db8::5, fd00::1"}, "2001:db8::5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &httpcodec.Request{Headers: []httpcodec.HeaderField{{Name: []byte("Host"), Value: []byte("x")}}}
			for _, v := range tt.xff {
				req.Headers = append(req.Headers, httpcodec.HeaderField{Name: []byte("x-forwarded-for"), Value: []byte(v)})
			}
			if got := p.forwardedFor(peer, req); got != netip.MustParseAddr(tt.want) {
				t.Fatalf("client = %v; want %v", got, tt.want)
			}
		})
	}
}
