package loop

import (
	"github.com/panjf2000/gnet/v2"
)

// input reads a connection's bytes: first the carry (bytes taken from gnet
// when the connection was parked), then gnet's inbound buffer. The bytes
// it holds are charged by the connection's rx charge (holdInput), not here.
type input struct {
	c  *conn
	gc gnet.Conn
}

// avail returns how many bytes can be read now.
func (in input) avail() int { return len(in.c.carry) + in.gc.InboundBuffered() }

// peek returns the next n bytes without consuming them (valid until the
// next discard or read), or nil when fewer are buffered.
func (in input) peek(n int) []byte {
	c := in.c
	if len(c.carry) == 0 {
		b, err := in.gc.Peek(n)
		if err != nil {
			return nil
		}
		return b
	}
	if n > len(c.carry) {
		in.absorb()
	}
	if n > len(c.carry) {
		return nil
	}
	return c.carry[:n]
}

// absorb moves gnet's buffered bytes behind the carry, so that a frame
// split between the two can be read in one piece.
func (in input) absorb() {
	n := in.gc.InboundBuffered()
	if n == 0 {
		return
	}
	b, err := in.gc.Peek(n)
	if err != nil {
		return
	}
	in.c.carry = append(in.c.carry, b...)
	_, _ = in.gc.Discard(n)
}

// discard consumes n bytes.
func (in input) discard(n int) {
	c := in.c
	if k := min(n, len(c.carry)); k > 0 {
		c.carry = c.carry[k:]
		if len(c.carry) == 0 {
			c.carry = nil
		}
		n -= k
	}
	if n > 0 {
		_, _ = in.gc.Discard(n)
	}
}

// read fills p completely; the caller has checked avail.
func (in input) read(p []byte) {
	c := in.c
	k := copy(p, c.carry)
	if k > 0 {
		c.carry = c.carry[k:]
		if len(c.carry) == 0 {
			c.carry = nil
		}
	}
	for k < len(p) {
		n, err := in.gc.Read(p[k:])
		if err != nil || n == 0 {
			return
		}
		k += n
	}
}

// take removes up to n bytes and returns them (valid until the next call).
func (in input) take(n int) []byte {
	if a := in.avail(); n > a {
		n = a
	}
	if n == 0 {
		return nil
	}
	if len(in.c.carry) > 0 {
		n = min(n, len(in.c.carry))
		b := in.c.carry[:n]
		in.discard(n)
		return b
	}
	// gnet may hold the bytes in two pieces; take what one peek gives.
	b, err := in.gc.Next(n)
	if err != nil {
		return nil
	}
	return b
}
