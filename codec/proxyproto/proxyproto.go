// Package proxyproto reads the PROXY protocol header (HAProxy's
// proxy-protocol.txt, versions 1 and 2) that an L4 load balancer sends
// before a connection's first byte to say who the client is.
//
// The header has an exact length: version 1 ends at the first CRLF (107
// bytes at most), version 2 is 16 bytes plus the length its 15th and 16th
// bytes announce. A reader finds that length with Len on the bytes it has
// (peeked, not consumed), consumes exactly that many and parses them with
// Parse, so no byte of what follows the header (the client's first request)
// is taken from the socket.
//
// What it does not do: it keeps no TLV (version 2's type-length-value
// extensions, such as the load balancer's own ids): their framing is
// checked and they are skipped. PP2_TYPE_CRC32C is not verified (TCP
// already checks the bytes; a sender that wants integrity uses TLS).
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
)

// MaxV1 is the longest version 1 header, CRLF included (the spec's 107).
const MaxV1 = 107

// V2HeadLen is the fixed part of a version 2 header: signature, version
// and command, family and protocol, address length.
const V2HeadLen = 16

// Errors Len and Parse return; callers branch on them.
var (
	// ErrIncomplete: the bytes are a valid start of a header; more are needed.
	ErrIncomplete = errors.New("proxyproto: incomplete header")
	// ErrNotProxy: the bytes do not start with a PROXY protocol signature.
	ErrNotProxy = errors.New("proxyproto: no PROXY protocol signature")
	// ErrTooLarge: a version 1 header without CRLF within MaxV1 bytes, or
	// a version 2 header longer than the reader's bound.
	ErrTooLarge = errors.New("proxyproto: header too large")
	// ErrMalformed: the header breaks the spec.
	ErrMalformed = errors.New("proxyproto: malformed header")
)

// v2Sig is version 2's 12-byte signature.
var v2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// v1Sig starts every version 1 header.
var v1Sig = []byte("PROXY ")

// Header is what a PROXY protocol header says.
type Header struct {
	// Version is 1 or 2.
	Version int
	// Local reports that the header names no client: a version 2 LOCAL
	// command (the balancer's own health check), a version 1 UNKNOWN, or
	// an address family the receiver does not use as an IP (UNSPEC, UNIX,
	// DGRAM). The spec says the receiver then uses the connection's own
	// endpoints.
	Local bool
	// Source and Dest are the client's and the balancer's addresses as
	// the balancer saw them; zero when Local.
	Source, Dest netip.AddrPort
}

// Len returns the exact length of the header b starts with. With fewer
// bytes than it needs to tell, it returns ErrIncomplete (b is a valid
// start so far); a version 2 header whose length exceeds maxV2 is
// ErrTooLarge. It never needs more than V2HeadLen bytes for version 2, nor
// more than MaxV1 for version 1.
func Len(b []byte, maxV2 int) (int, error) {
	if len(b) == 0 {
		return 0, ErrIncomplete
	}
	if b[0] == v2Sig[0] {
		n := min(len(b), len(v2Sig))
		if !bytes.Equal(b[:n], v2Sig[:n]) {
			return 0, ErrNotProxy
		}
		// Version, command and family are checked as soon as they are
		// there: a bad one is refused at once, not after its length.
		if len(b) > 12 && (b[12]>>4 != 2 || b[12]&0x0f > cmdProxy) {
			return 0, ErrMalformed
		}
		if len(b) > 13 && !validFamily(b[13]) {
			return 0, ErrMalformed
		}
		if len(b) < V2HeadLen {
			return 0, ErrIncomplete
		}
		total := V2HeadLen + int(binary.BigEndian.Uint16(b[14:16]))
		if total > maxV2 {
			return 0, ErrTooLarge
		}
		return total, nil
	}
	n := min(len(b), len(v1Sig))
	if !bytes.Equal(b[:n], v1Sig[:n]) {
		return 0, ErrNotProxy
	}
	// Printable US-ASCII up to CR LF: a stray byte is refused at once
	// instead of after MaxV1 bytes or the timeout.
	for i := n; i < len(b) && i < MaxV1; i++ {
		switch c := b[i]; {
		case c == '\r':
			if i+1 < len(b) && b[i+1] != '\n' {
				return 0, ErrMalformed
			}
		case c == '\n':
			if b[i-1] != '\r' {
				return 0, ErrMalformed
			}
			return i + 1, nil
		case c < 0x20 || c > 0x7e:
			return 0, ErrMalformed
		}
	}
	if len(b) >= MaxV1 {
		return 0, ErrTooLarge
	}
	return 0, ErrIncomplete
}

// Parse parses a whole header: b is exactly the Len bytes.
func Parse(b []byte) (Header, error) {
	if len(b) >= V2HeadLen && bytes.Equal(b[:len(v2Sig)], v2Sig) {
		return parseV2(b)
	}
	if bytes.HasPrefix(b, v1Sig) && bytes.HasSuffix(b, []byte("\r\n")) && len(b) <= MaxV1 {
		return parseV1(b[len(v1Sig) : len(b)-2])
	}
	return Header{}, ErrMalformed
}

// parseV1 parses what lies between "PROXY " and CRLF.
func parseV1(line []byte) (Header, error) {
	h := Header{Version: 1}
	if bytes.HasPrefix(line, []byte("UNKNOWN")) && (len(line) == 7 || line[7] == ' ') {
		// "the receiver must ignore anything presented before the CRLF".
		h.Local = true
		return h, nil
	}
	f := bytes.Split(line, []byte(" "))
	if len(f) != 5 {
		return h, ErrMalformed
	}
	var want4 bool
	switch string(f[0]) {
	case "TCP4":
		want4 = true
	case "TCP6":
	default:
		return h, ErrMalformed
	}
	src, err1 := parseV1Addr(f[1], want4)
	dst, err2 := parseV1Addr(f[2], want4)
	sport, err3 := parsePort(f[3])
	dport, err4 := parsePort(f[4])
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return h, ErrMalformed
	}
	h.Source = netip.AddrPortFrom(src, sport)
	h.Dest = netip.AddrPortFrom(dst, dport)
	return h, nil
}

// parseV1Addr parses an address of the family the line announces.
func parseV1Addr(b []byte, want4 bool) (netip.Addr, error) {
	a, err := netip.ParseAddr(string(b))
	if err != nil || a.Zone() != "" || a.Is4() != want4 {
		return netip.Addr{}, ErrMalformed
	}
	return a, nil
}

// parsePort parses a decimal port: digits only, no sign, no leading zero.
func parsePort(b []byte) (uint16, error) {
	if len(b) == 0 || len(b) > 5 || (b[0] == '0' && len(b) > 1) {
		return 0, ErrMalformed
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, ErrMalformed
		}
	}
	v, err := strconv.ParseUint(string(b), 10, 16)
	if err != nil {
		return 0, ErrMalformed
	}
	return uint16(v), nil
}

// Version 2 commands and families (byte 13 low nibble, byte 14).
const (
	cmdLocal = 0x0
	cmdProxy = 0x1

	famUnspec = 0x00
	famTCP4   = 0x11
	famUDP4   = 0x12
	famTCP6   = 0x21
	famUDP6   = 0x22
	famUnixS  = 0x31
	famUnixD  = 0x32
)

// validFamily reports whether c is one of the spec's family and protocol
// bytes.
func validFamily(c byte) bool {
	switch c {
	case famUnspec, famTCP4, famUDP4, famTCP6, famUDP6, famUnixS, famUnixD:
		return true
	}
	return false
}

// parseV2 parses a whole version 2 header.
func parseV2(b []byte) (Header, error) {
	h := Header{Version: 2}
	if b[12]>>4 != 2 {
		return h, ErrMalformed // "the receiver must only accept this value"
	}
	if V2HeadLen+int(binary.BigEndian.Uint16(b[14:16])) != len(b) {
		return h, ErrMalformed
	}
	body := b[V2HeadLen:]
	var addrLen int
	switch b[13] {
	case famUnspec:
	case famTCP4, famUDP4:
		addrLen = 12
	case famTCP6, famUDP6:
		addrLen = 36
	case famUnixS, famUnixD:
		addrLen = 216
	default:
		return h, ErrMalformed // "must be rejected as invalid by receivers"
	}
	switch b[12] & 0x0f {
	case cmdLocal:
		// "discard the protocol block including the family".
		h.Local = true
		return h, nil
	case cmdProxy:
	default:
		return h, ErrMalformed // "receivers must drop connections presenting unexpected values"
	}
	if b[13] == famUnspec {
		// Nothing says where TLVs would start: the block is skipped whole.
		h.Local = true
		return h, nil
	}
	if len(body) < addrLen {
		return h, ErrMalformed
	}
	if err := checkTLVs(body[addrLen:]); err != nil {
		return h, err
	}
	switch b[13] {
	case famTCP4:
		src := netip.AddrFrom4([4]byte(body[0:4]))
		dst := netip.AddrFrom4([4]byte(body[4:8]))
		h.Source = netip.AddrPortFrom(src, binary.BigEndian.Uint16(body[8:10]))
		h.Dest = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(body[10:12]))
	case famTCP6:
		src := netip.AddrFrom16([16]byte(body[0:16]))
		dst := netip.AddrFrom16([16]byte(body[16:32]))
		h.Source = netip.AddrPortFrom(src, binary.BigEndian.Uint16(body[32:34]))
		h.Dest = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(body[34:36]))
	default:
		// DGRAM over a stream listener, or UNIX: not an IP client; the
		// spec lets the receiver fall back to the connection's endpoints.
		h.Local = true
	}
	return h, nil
}

// checkTLVs checks that the TLVs after the addresses tile the rest of the
// header exactly (type, 2-byte length, value); their contents are skipped.
func checkTLVs(b []byte) error {
	for len(b) > 0 {
		if len(b) < 3 {
			return ErrMalformed
		}
		n := 3 + int(binary.BigEndian.Uint16(b[1:3]))
		if n > len(b) {
			return ErrMalformed
		}
		b = b[n:]
	}
	return nil
}

// AppendV1 appends a version 1 header naming src and dst (for tests,
// benchmarks and tools that play the balancer).
func AppendV1(b []byte, src, dst netip.AddrPort) []byte {
	proto := "TCP6"
	if src.Addr().Is4() && dst.Addr().Is4() {
		proto = "TCP4"
	}
	b = append(b, "PROXY "...)
	b = append(b, proto...)
	b = append(b, ' ')
	b = append(b, src.Addr().String()...)
	b = append(b, ' ')
	b = append(b, dst.Addr().String()...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(src.Port()), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(dst.Port()), 10)
	return append(b, "\r\n"...)
}

// AppendV2 appends a version 2 PROXY (or, with local, LOCAL) header
// naming src and dst, followed by the given TLVs (already encoded).
func AppendV2(b []byte, local bool, src, dst netip.AddrPort, tlvs []byte) []byte {
	b = append(b, v2Sig...)
	if local {
		b = append(b, 0x20|cmdLocal, famUnspec)
		b = binary.BigEndian.AppendUint16(b, uint16(len(tlvs)))
		return append(b, tlvs...)
	}
	b = append(b, 0x20|cmdProxy)
	if src.Addr().Is4() && dst.Addr().Is4() {
		b = append(b, famTCP4)
		b = binary.BigEndian.AppendUint16(b, uint16(12+len(tlvs)))
		s, d := src.Addr().As4(), dst.Addr().As4()
		b = append(b, s[:]...)
		b = append(b, d[:]...)
	} else {
		b = append(b, famTCP6)
		b = binary.BigEndian.AppendUint16(b, uint16(36+len(tlvs)))
		s, d := src.Addr().As16(), dst.Addr().As16()
		b = append(b, s[:]...)
		b = append(b, d[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, src.Port())
	b = binary.BigEndian.AppendUint16(b, dst.Port())
	return append(b, tlvs...)
}
