package httpcodec

import "bytes"

// Byte classes as 128-bit masks split into two uint64 constants, so that
// classification needs no package-level tables.

const (
	maskDigit = (1<<10 - 1) << '0'
	maskAlpha = (1<<26-1)<<'a' | (1<<26-1)<<'A'
	maskHex   = maskDigit | (1<<6-1)<<'a' | (1<<6-1)<<'A'
	// unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~" (RFC 3986).
	maskUnreserved = maskAlpha | maskDigit | 1<<'-' | 1<<'.' | 1<<'_' | 1<<'~'
	// sub-delims = "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "=".
	maskSubDelims = 1<<'!' | 1<<'$' | 1<<'&' | 1<<'\'' | 1<<'(' | 1<<')' |
		1<<'*' | 1<<'+' | 1<<',' | 1<<';' | 1<<'='
	// tchar (RFC 9110 token).
	maskTchar = maskAlpha | maskDigit | 1<<'!' | 1<<'#' | 1<<'$' | 1<<'%' |
		1<<'&' | 1<<'\'' | 1<<'*' | 1<<'+' | 1<<'-' | 1<<'.' | 1<<'^' |
		1<<'_' | 1<<'`' | 1<<'|' | 1<<'~'
	// Request-target bytes: pchar, "/", "?" and "%" of pct-encoded.
	maskTarget = maskUnreserved | maskSubDelims | 1<<':' | 1<<'@' | 1<<'/' | 1<<'?' | 1<<'%'
	// reg-name / IPv4 bytes of an authority in the request target.
	maskRegName = maskUnreserved | maskSubDelims
	// Host header bytes: reg-name, IP-literal, port, pct-encoded.
	maskHost = maskUnreserved | maskSubDelims | 1<<':' | 1<<'[' | 1<<']' | 1<<'%'
)

// in reports whether c is in the 128-bit mask m, given as its two halves.
func in(c byte, lo, hi uint64) bool {
	if c < 64 {
		return lo&(1<<c) != 0
	}
	if c < 128 {
		return hi&(1<<(c-64)) != 0
	}
	return false
}

const m64 = 1<<64 - 1

func isTchar(c byte) bool       { return in(c, maskTchar&m64, maskTchar>>64) }
func isTargetChar(c byte) bool  { return in(c, maskTarget&m64, maskTarget>>64) }
func isRegNameChar(c byte) bool { return in(c, maskRegName&m64, maskRegName>>64) }
func isHostChar(c byte) bool    { return in(c, maskHost&m64, maskHost>>64) }
func isHex(c byte) bool         { return in(c, maskHex&m64, maskHex>>64) }
func isDigit(c byte) bool       { return '0' <= c && c <= '9' }

// isVchar reports a visible character or obs-text, the non-whitespace bytes
// allowed in a field value.
func isVchar(c byte) bool { return c > ' ' && c != 0x7f }

// isOWS reports optional whitespace (SP / HTAB).
func isOWS(c byte) bool { return c == ' ' || c == '\t' }

// trimOWS strips leading and trailing SP / HTAB.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && isOWS(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isOWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// listContainsToken reports whether the comma-separated list v contains tok,
// compared case-insensitively after trimming whitespace, the way
// net/http's httpguts.HeaderValuesContainsToken does.
func listContainsToken(v []byte, tok string) bool {
	for len(v) > 0 {
		var elem []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			elem, v = v[:i], v[i+1:]
		} else {
			elem, v = v, nil
		}
		if equalFold(trimOWS(elem), tok) {
			return true
		}
	}
	return false
}
