package proxyproto

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

var (
	src4 = netip.MustParseAddrPort("203.0.113.7:51000")
	dst4 = netip.MustParseAddrPort("10.0.0.1:9092")
	src6 = netip.MustParseAddrPort("[2001:db8::7]:51000")
	dst6 = netip.MustParseAddrPort("[2001:db8::1]:9092")
)

// tlv encodes one TLV.
func tlv(typ byte, v string) []byte {
	b := []byte{typ}
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

func TestHeadersAreParsedToTheClientAddressWithTheirExactLength(t *testing.T) {
	tlvs := append(tlv(0xEA, "\x01vpce-0123456789abcdef0"), tlv(0x04, "")...) // AWS VPC endpoint id, NOOP
	cases := []struct {
		name  string
		in    []byte
		want  Header
		extra string // bytes after the header: never part of it
	}{
		{"v1 tcp4", AppendV1(nil, src4, dst4), Header{Version: 1, Source: src4, Dest: dst4}, "\x00\x00\x00\x10"},
		{"v1 tcp6", AppendV1(nil, src6, dst6), Header{Version: 1, Source: src6, Dest: dst6}, "GET / HTTP/1.1\r\n"},
		{"v1 unknown", []byte("PROXY UNKNOWN\r\n"), Header{Version: 1, Local: true}, "x"},
		{"v1 unknown with addresses", []byte("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"), Header{Version: 1, Local: true}, ""},
		{"v1 longest", []byte("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
			Header{Version: 1, Source: netip.MustParseAddrPort("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"), Dest: netip.MustParseAddrPort("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")}, "z"},
		{"v2 tcp4", AppendV2(nil, false, src4, dst4, nil), Header{Version: 2, Source: src4, Dest: dst4}, "\x00\x00"},
		{"v2 tcp6", AppendV2(nil, false, src6, dst6, nil), Header{Version: 2, Source: src6, Dest: dst6}, "\r\n"},
		{"v2 tcp4 with TLVs skipped", AppendV2(nil, false, src4, dst4, tlvs), Header{Version: 2, Source: src4, Dest: dst4}, "abc"},
		{"v2 local with TLVs", AppendV2(nil, true, netip.AddrPort{}, netip.AddrPort{}, tlvs), Header{Version: 2, Local: true}, "abc"},
		{"v2 proxy unspec", append([]byte(string(v2Sig)), 0x21, 0x00, 0, 3, 1, 2, 3), Header{Version: 2, Local: true}, ""},
		{"v2 proxy unix stream", append(append([]byte(string(v2Sig)), 0x21, 0x31, 0, 216), make([]byte, 216)...), Header{Version: 2, Local: true}, ""},
		{"v2 proxy udp4 falls back", append(append([]byte(string(v2Sig)), 0x21, 0x12, 0, 12), make([]byte, 12)...), Header{Version: 2, Local: true}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := append(append([]byte(nil), tc.in...), tc.extra...)
			n, err := Len(in, 4096)
			if err != nil || n != len(tc.in) {
				t.Fatalf("Len = %d, %v; want %d", n, err, len(tc.in))
			}
			h, err := Parse(in[:n])
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if h != tc.want {
				t.Fatalf("Parse = %+v; want %+v", h, tc.want)
			}
			// A proper prefix is incomplete, never an error; version 2
			// tells its whole length from its first 16 bytes.
			for i := 0; i < n && i < MaxV1; i++ {
				got, err := Len(in[:i], 4096)
				if h.Version == 2 && i >= V2HeadLen {
					if got != n || err != nil {
						t.Fatalf("Len(prefix %d) = %d, %v; want %d", i, got, err, n)
					}
					continue
				}
				if !errors.Is(err, ErrIncomplete) {
					t.Fatalf("Len(prefix %d) = %v; want ErrIncomplete", i, err)
				}
			}
		})
	}
}

func TestBadHeadersAreRefused(t *testing.T) {
	v2 := AppendV2(nil, false, src4, dst4, nil)
	with := func(i int, c byte) []byte { b := append([]byte(nil), v2...); b[i] = c; return b }
	longTLV := AppendV2(nil, false, src4, dst4, tlv(0xE0, strings.Repeat("x", 5000)))
	cases := []struct {
		name   string
		in     []byte
		lenErr error // from Len on the whole input
		err    error // from Parse on what Len measured
	}{
		{"plain kafka frame", []byte("\x00\x00\x00\x20\x00\x12"), ErrNotProxy, nil},
		{"plain http", []byte("GET / HTTP/1.1\r\n"), ErrNotProxy, nil},
		{"v1 lower case", []byte("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), ErrNotProxy, nil},
		{"v1 without CRLF in 107 bytes", []byte("PROXY TCP4 " + strings.Repeat("1", 120)), ErrTooLarge, nil},
		{"v1 bare LF", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), ErrMalformed, nil},
		{"v1 CR not followed by LF", []byte("PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n"), ErrMalformed, nil},
		{"v1 binary byte", []byte("PROXY TCP4 1.2.3.4\x005.6.7.8 1 2\r\n"), ErrMalformed, nil},
		{"v1 tcp4 with ipv6", []byte("PROXY TCP4 ::1 ::1 1 2\r\n"), nil, ErrMalformed},
		{"v1 tcp6 with ipv4", []byte("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"), nil, ErrMalformed},
		{"v1 unknown protocol", []byte("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"), nil, ErrMalformed},
		{"v1 port out of range", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), nil, ErrMalformed},
		{"v1 signed port", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n"), nil, ErrMalformed},
		{"v1 leading-zero port", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"), nil, ErrMalformed},
		{"v1 leading-zero octet", []byte("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n"), nil, ErrMalformed},
		{"v1 zone", []byte("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"), nil, ErrMalformed},
		{"v1 double space", []byte("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"), nil, ErrMalformed},
		{"v1 missing field", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), nil, ErrMalformed},
		{"v2 bad signature", with(5, 'x'), ErrNotProxy, nil},
		{"v2 version 1", with(12, 0x11), ErrMalformed, nil},
		{"v2 command 2", with(12, 0x22), ErrMalformed, nil},
		{"v2 family 4", with(13, 0x41), ErrMalformed, nil},
		{"v2 protocol 3", with(13, 0x13), ErrMalformed, nil},
		{"v2 address block short", append(append([]byte(string(v2Sig)), 0x21, 0x11, 0, 8), make([]byte, 8)...), nil, ErrMalformed},
		{"v2 TLV overruns", AppendV2(nil, false, src4, dst4, []byte{0xE0, 0, 9, 1}), nil, ErrMalformed},
		{"v2 TLV header cut", AppendV2(nil, false, src4, dst4, []byte{0xE0, 0}), nil, ErrMalformed},
		{"v2 over the bound", longTLV, ErrTooLarge, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, err := Len(tc.in, 4096)
			if tc.lenErr != nil {
				if !errors.Is(err, tc.lenErr) {
					t.Fatalf("Len = %d, %v; want %v", n, err, tc.lenErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Len: %v", err)
			}
			if _, err := Parse(tc.in[:n]); !errors.Is(err, tc.err) {
				t.Fatalf("Parse = %v; want %v", err, tc.err)
			}
		})
	}
}

// FuzzLenParse: whatever the bytes, Len and Parse neither panic nor claim
// more bytes than the bounds allow.
func FuzzLenParse(f *testing.F) {
	f.Add(AppendV1(nil, src4, dst4))
	f.Add(AppendV2(nil, false, src6, dst6, tlv(1, "h2")))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := Len(b, 1024)
		if err != nil {
			return
		}
		if n > len(b) {
			if b[0] == 'P' {
				t.Fatalf("v1 length %d beyond the input", n)
			}
			return
		}
		if n > max(MaxV1, 1024) {
			t.Fatalf("length %d beyond the bounds", n)
		}
		_, _ = Parse(b[:n])
	})
}
