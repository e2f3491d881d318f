package httpcodec

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
)

// outcome is everything a parse of one input yields, comparable with ==
// after formatting.
type outcome struct {
	complete bool // head and body complete
	err      *LimitError
	consumed int // head + body bytes
	req      Request
	body     []byte
}

// key renders the parts of an outcome that must not depend on how the input
// was split.
func (o outcome) key() string {
	if o.err != nil {
		return fmt.Sprintf("err status=%d limit=%q reason=%q", o.err.Status, o.err.Limit, o.err.Reason)
	}
	if !o.complete {
		return "incomplete"
	}
	r := &o.req
	var hs strings.Builder
	for _, h := range r.Headers {
		fmt.Fprintf(&hs, "%q=%q;", h.Name, h.Value)
	}
	return fmt.Sprintf("ok n=%d m=%q t=%q p=%q q=%q v=%d.%d host=%q cl=%d ch=%v ka=%v ec=%v ce=%q h=%s body=%q",
		o.consumed, r.Method, r.Target, r.Path, r.RawQuery, r.ProtoMajor, r.ProtoMinor, r.Host,
		r.ContentLength, r.Chunked, r.KeepAlive, r.ExpectContinue, r.ContentEncoding, hs.String(), o.body)
}

// asLimitError extracts the *LimitError from err, panicking on any other
// error: the codec must return nothing else.
func asLimitError(err error) *LimitError {
	if err == nil {
		return nil
	}
	var le *LimitError
	if !errors.As(err, &le) {
		panic(fmt.Sprintf("non-LimitError %T: %v", err, err))
	}
	return le
}

// parseSplit parses input as an event loop would: the bytes arrive in the
// pieces given by cuts (increasing offsets into input); the head parser is
// fed the growing buffer, the body decoder only the unconsumed bytes.
func parseSplit(input []byte, lim *Limits, cuts []int) outcome {
	var (
		o    outcome
		p    HeadParser
		d    BodyDecoder
		head = -1
	)
	p.Reset(lim, &o.req)
	bodyFrom := 0
	feedTo := func(end int) bool {
		if head < 0 {
			n, done, err := p.Feed(input[:end])
			if err != nil {
				o.err = asLimitError(err)
				return false
			}
			if !done {
				return true
			}
			head = n
			bodyFrom = n
			d.Reset(&o.req, lim)
		}
		if bodyFrom < end && !d.Done() {
			c, out, _, err := d.Feed(input[bodyFrom:end], o.body)
			o.body = out
			bodyFrom += c
			if err != nil {
				o.err = asLimitError(err)
				return false
			}
		}
		return true
	}
	for _, c := range cuts {
		if c <= 0 || c >= len(input) {
			continue
		}
		if !feedTo(c) {
			return o
		}
	}
	if !feedTo(len(input)) {
		return o
	}
	if head >= 0 && d.Done() {
		o.complete = true
		o.consumed = bodyFrom
	}
	return o
}

// parseWhole parses input delivered in one piece.
func parseWhole(input []byte, lim *Limits) outcome { return parseSplit(input, lim, nil) }

// byteCuts returns cuts delivering input one byte at a time.
func byteCuts(n int) []int {
	cuts := make([]int, n)
	for i := range cuts {
		cuts[i] = i + 1
	}
	return cuts
}

// randomCuts returns up to k random increasing cuts of an n-byte input.
func randomCuts(rng *rand.Rand, n, k int) []int {
	if n < 2 {
		return nil
	}
	cuts := make([]int, 0, k)
	at := 0
	for range k {
		at += 1 + rng.IntN(max(1, 2*n/k))
		if at >= n {
			break
		}
		cuts = append(cuts, at)
	}
	return cuts
}
