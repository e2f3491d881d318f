package loop

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sys/unix"

	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/limits"
)

// headerPeek is how many bytes of a frame are peeked to read its header:
// enough for any client id a real client sends. A header that does not fit
// in maxHeaderPeek is not Kafka.
const (
	headerPeek    = 512
	maxHeaderPeek = 40 << 10
)

// discardChunk bounds how much of a refused frame is taken per step.
const discardChunk = 64 << 10

// apiVersionsKey is the key of ApiVersions, answered specially when its
// version is unsupported.
const apiVersionsKey = 18

// onKafka is the Kafka connection's traffic handler: flush responses, then
// read frames while no limit says stop.
func (c *conn) onKafka(gc gnet.Conn) gnet.Action {
	in := input{c: c, gc: gc}
	for {
		if c.discard.active {
			if !c.discardFrame(in) {
				return gnet.None
			}
			if r := closeCause(c.closeReq.Load()); r != causeNone {
				c.closeReason = r
				return gnet.Close
			}
			continue
		}
		// Only between frames: a connection whose frame is arriving holds
		// a charge, and parking it while the budget is short would make it
		// wait for what it holds.
		if !c.inFrame {
			if reason := c.saturated(); reason != "" {
				return c.park(gc, reason)
			}
		}
		act, more := c.readFrame(in)
		if act != gnet.None || !more {
			return act
		}
	}
}

// saturated names the limit that says to stop reading, or "".
func (c *conn) saturated() string {
	s := c.loop.s
	switch {
	case c.pending() >= s.lim().MaxInflight:
		return "max_inflight_requests"
	case s.pool.full():
		return "max_queued_requests"
	case !c.throttle.IsZero() && time.Now().Before(c.throttle):
		return "throttle"
	case s.budget.NearLimit() && !c.memWaited:
		// Wait up to --memory-wait-timeout for the budget; after that the next
		// request is read and, if it still does not fit, refused with a
		// retriable error rather than left hanging.
		c.memWaited = true
		c.memWaitUntil = time.Now().Add(s.lim().MemoryWait)
		return "memory"
	}
	c.memWaited = false
	return ""
}

// readFrame reads one frame if it is complete (or starts refusing it). It
// returns more=false when it needs more bytes.
func (c *conn) readFrame(in input) (gnet.Action, bool) {
	s := c.loop.s
	if c.inFrame {
		// The frame's header was checked when it started; until it is
		// complete only its length matters.
		return c.frameArriving(in)
	}
	if c.inRawSASL() {
		return c.readSASLToken(in)
	}
	avail := in.avail()
	if avail < kafka.LengthSize {
		return gnet.None, false
	}
	prefix := in.peek(kafka.LengthSize)
	length := kafka.FrameLength(prefix)
	if length < 0 || int64(length) > limits.MaxFrameSize {
		return c.protocolError(fmt.Errorf("frame length %d outside 0..%d", length, int64(limits.MaxFrameSize))), false
	}
	var h kafka.Header
	want := kafka.LengthSize + min(int(length), headerPeek)
	for {
		b := in.peek(min(want, avail))
		if b == nil {
			return gnet.None, false
		}
		err := kafka.ParseHeader(b[kafka.LengthSize:], length, &h)
		if err == nil {
			break
		}
		if !errors.Is(err, kafka.ErrShortHeader) {
			return c.protocolError(err), false
		}
		if want >= kafka.LengthSize+int(length) || want >= maxHeaderPeek {
			if want >= maxHeaderPeek {
				return c.protocolError(fmt.Errorf("request header longer than %d bytes", maxHeaderPeek)), false
			}
			return gnet.None, false
		}
		if avail < want+1 {
			return gnet.None, false
		}
		want = min(want*4, maxHeaderPeek, kafka.LengthSize+int(length))
	}
	min, max, ok := s.VersionRange(h.APIKey)
	if !ok || h.APIVersion < min || h.APIVersion > max {
		if h.APIKey == apiVersionsKey {
			c.answerUnsupportedAPIVersions(in, &h)
			return gnet.None, true
		}
		act := c.protocolError(fmt.Errorf("api %s (%d) version %d not served", kmsg.NameForKey(h.APIKey), h.APIKey, h.APIVersion))
		c.closeReason = causeUnsupportedVersion
		return act, false
	}
	if reason := c.gateSASL(&h, length); reason != causeNone {
		c.closeReason = reason
		return gnet.Close, false
	}
	if int64(length) > s.lim().MaxRequestSize {
		s.met.tooLarge.Inc()
		s.warn.Warn("limit:max-request-size", "request too large", "limit", "max-request-size",
			"configured", s.lim().MaxRequestSize, "actual", length, "client_ip", c.addr(),
			"client_id", string(h.ClientID), "api", kmsg.NameForKey(h.APIKey))
		c.startDiscard(in, &h, kafka.ErrMessageTooLarge)
		return gnet.None, true
	}
	if avail < kafka.LengthSize+int(length) {
		return c.startFrame(in, &h)
	}
	return c.dispatchFrame(in, &h), true
}

// frameStep is the least first buffer of a frame that arrives in pieces
// (more when more has arrived), and the least it grows by.
const frameStep = 64 << 10

// startFrame begins receiving a frame that has not fully arrived. Nothing
// is reserved for its announced length: its bytes are copied out of the
// input as they arrive into a buffer that grows with them, whose capacity
// is charged, and the time the frame may take grows only with them.
func (c *conn) startFrame(in input, h *kafka.Header) (gnet.Action, bool) {
	c.frameCharge = limits.NewCharge(c.loop.s.budget, c.share)
	// A header is at most maxHeaderPeek, less than frameStep. The buffer
	// is sized to the bytes that have arrived (those gnet read and those
	// waiting in the socket), never to the length the frame announces: a
	// frame that arrived whole is received into one buffer, where growing
	// it from frameStep by doubling copied it about once more.
	arrived := min(int(h.Length), max(frameStep, in.avail()-kafka.LengthSize+c.queuedInSocket(in.gc)))
	key := h.APIKey
	if key != 0 && arrived < int(h.Length) {
		// A request other than Produce that has not arrived whole is
		// received in pooled pieces and assembled once (assembleFrame).
		key = 0
	}
	first := frameBufSize(key, arrived)
	if err := c.frameCharge.Grow(int64(first)); err != nil {
		c.refuseForMemory(in, h, err)
		return gnet.None, true
	}
	c.frameHdr = *h
	c.frameHdr.ClientID = nil // it points into bytes that move: re-read at dispatch
	c.frameBuf, c.framePooled = c.loop.s.newFrameBuf(key, first)
	in.discard(kafka.LengthSize)
	c.inFrame = true
	c.beginTransfer(time.Now().UnixNano())
	return c.frameArriving(in)
}

// frameArriving copies what arrived of the frame being received into its
// buffer, growing (and charging) the buffer as needed, and dispatches the
// frame once it is whole. Bytes that do not fit the budget (or the IP's
// share of it) refuse the frame, which is then discarded as it streams in.
func (c *conn) frameArriving(in input) (gnet.Action, bool) {
	h := &c.frameHdr
	have := len(c.frameBuf)
	if fc := c.frameChunks; fc != nil {
		have += fc.len
	}
	n := min(in.avail(), int(h.Length)-have)
	if n > 0 && (c.chunkable(h) || c.assembling(h)) {
		// In pieces: a full piece is kept as it is and the next one is
		// as large as all before it, so what is held still at most
		// doubles what arrived, and nothing is copied twice.
		for n > 0 {
			if len(c.frameBuf) == cap(c.frameBuf) && !c.nextFramePiece(h, have) {
				return gnet.None, true // refused
			}
			k := min(n, cap(c.frameBuf)-len(c.frameBuf))
			in.read(c.frameBuf[len(c.frameBuf) : len(c.frameBuf)+k])
			c.frameBuf = c.frameBuf[:len(c.frameBuf)+k]
			c.xfer.recv += int64(k)
			n -= k
			have += k
		}
	} else if n > 0 {
		if have+n > cap(c.frameBuf) {
			want := frameBufSize(h.APIKey, min(max(2*cap(c.frameBuf), have+n+c.queuedInSocket(in.gc), frameStep), int(h.Length)))
			if room := c.frameCharge.Room(); int64(want) > room {
				// Doubling would pass the budget (or the IP's share of
				// it): grow to what is left of it instead, so that only
				// bytes that do not fit refuse the frame. One such
				// growth at most: the next finds no room.
				want = max(frameBufFloor(h.APIKey, int(room)), frameBufSize(h.APIKey, have+n))
			}
			if err := c.frameCharge.Set(int64(want)); err != nil {
				c.refuseArriving(err)
				return gnet.None, true
			}
			grown, pooled := c.loop.s.newFrameBuf(h.APIKey, want)
			grown = append(grown, c.frameBuf...)
			c.loop.s.frames.put(c.framePooled)
			c.frameBuf, c.framePooled = grown, pooled
		}
		in.read(c.frameBuf[have : have+n])
		c.frameBuf = c.frameBuf[:have+n]
		c.xfer.recv += int64(n)
		have += n
	}
	if have < int(h.Length) && in.avail() == 0 && c.tlsOf() == nil {
		got, ok := c.readFrameDirect(in.gc, h, have)
		if !ok {
			return gnet.None, true // refused
		}
		have += got
	}
	if have < int(h.Length) {
		return gnet.None, false
	}
	assemble := c.assembling(h)
	c.inFrame = false
	c.xfer.end()
	r := &kafkaRequest{c: c, frame: c.frameBuf, hdr: *h, assemble: assemble}
	if fc := c.frameChunks; fc != nil {
		r.holdPieces(fc, c.frameBuf, c.framePooled)
		c.frameChunks = nil
	} else {
		r.holdPooled(c.framePooled)
	}
	c.frameBuf, c.framePooled = nil, nil
	c.frameCharge.Move(&r.charge, c.frameCharge.Held())
	c.loop.s.met.bytesIn.Add(int(h.Length) + kafka.LengthSize)
	r.hdr.ClientID = clientID(r.frame)
	return c.submitFrame(in, r), true
}

// queuedInSocket is how many bytes wait unread in the connection's socket
// (SIOCINQ), 0 for TLS (those bytes are not yet the frame's) or when the
// kernel does not say. It is asked only when a frame has not arrived
// whole in gnet's buffer, once per frame or growth.
func (c *conn) queuedInSocket(gc gnet.Conn) int {
	if c.tlsOf() != nil {
		return 0
	}
	n, err := unix.IoctlGetInt(gc.Fd(), unix.SIOCINQ)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// directReadMax bounds what readFrameDirect reads in one call. gnet reads
// 64 KiB per readable event (ReadBufferCap), so a connection streaming a
// large frame takes up to five times a neighbour's share of its loop's
// turn (320 KiB, about 100 µs of copying), where a larger bound let one
// frame hold the loop for milliseconds while its neighbours waited.
const directReadMax = 256 << 10

// readFrameDirect reads more of the frame being received straight from
// the socket into its buffer, once every byte gnet had read is taken
// (in.avail() is 0) and the connection is plain TCP: gnet reads 64 KiB
// at a time into its own buffer, from which frameArriving copies, and
// that copy was a fifth of the gateway's CPU producing. It fills only
// capacity the budget charged: a frame kept in pieces starts its next
// piece, charged, as frameArriving does, once the last is full (what is
// held then is twice what arrived, the bound a growing buffer keeps too);
// a frame in one buffer grows only as frameArriving grows it. It stops when the socket
// has nothing more (EAGAIN), at directReadMax, or at the frame's end. gnet
// polls level-triggered, so bytes left in the socket are reported again;
// an end of stream or a socket error seen here is left for gnet's next
// read to see and close the connection. It returns the bytes read, and
// false when the budget refused the next piece (the frame is then being
// refused).
func (c *conn) readFrameDirect(gc gnet.Conn, h *kafka.Header, have int) (int, bool) {
	fd := gc.Fd()
	got := 0
	for got < directReadMax && have+got < int(h.Length) {
		if len(c.frameBuf) == cap(c.frameBuf) {
			if !c.chunkable(h) && !c.assembling(h) {
				break // grows, with a copy, as the next bytes arrive
			}
			if !c.nextFramePiece(h, have+got) {
				return got, false
			}
		}
		room := c.frameBuf[len(c.frameBuf):min(cap(c.frameBuf), len(c.frameBuf)+int(h.Length)-have-got)]
		n, err := unix.Read(fd, room)
		if err != nil || n <= 0 {
			break
		}
		c.frameBuf = c.frameBuf[:len(c.frameBuf)+n]
		c.xfer.recv += int64(n)
		got += n
	}
	return got, true
}

// nextFramePiece starts the next piece of a frame kept in pieces, once
// frameBuf is full with have bytes of the frame arrived: the full piece
// joins frameChunks and a new one, as large as all pieces so far (at
// most what is left of the frame), is charged. It reports false when the
// budget refused it (the frame is then being refused).
func (c *conn) nextFramePiece(h *kafka.Header, have int) bool {
	fc := c.frameChunks
	if fc == nil {
		fc = &frameChunks{}
	}
	key := h.APIKey
	if c.assembling(h) {
		key = 0 // pieces from the pools, as Produce's
	}
	held := fc.cap + cap(c.frameBuf)
	size := frameBufSize(key, min(max(held, frameStep), int(h.Length)-have))
	if room := c.frameCharge.Room() - int64(held); int64(size) > room {
		// As in frameArriving: a piece as large as all before it would
		// pass the budget, so it is what is left of the budget (at least
		// a step); only bytes that do not fit refuse the frame.
		size = max(frameBufFloor(key, int(max(room, 0))), frameBufSize(key, min(frameStep, int(h.Length)-have)))
	}
	if err := c.frameCharge.Set(int64(held + size)); err != nil {
		c.refuseArriving(err)
		return false
	}
	fc.bufs = append(fc.bufs, c.frameBuf)
	fc.pooled = append(fc.pooled, c.framePooled)
	fc.len += len(c.frameBuf)
	fc.cap += cap(c.frameBuf)
	c.frameChunks = fc
	c.frameBuf, c.framePooled = c.loop.s.newFrameBuf(key, size)
	return true
}

// assembling reports whether the frame being received is a request other
// than Produce received in pooled pieces: only Produce frames are pooled
// when they are decoded (decoded requests' strings alias their frame), so
// such a frame is copied whole into its own buffer by the worker that
// serves it (kafkaRequest.assembleFrame). Growing one buffer by doubling
// instead allocated (and zeroed, and faulted in) about twice the frame,
// copying it once more (BenchmarkLargeFrameReceive).
func (c *conn) assembling(h *kafka.Header) bool {
	return h.APIKey != 0 && (c.frameChunks != nil || c.framePooled != nil)
}

// refuseArriving refuses the frame being received, part of which is
// already copied out: what arrived is dropped (and fed to the Produce
// skimmer, which answers per partition), the rest is discarded as it
// streams in, under the frame's time bound.
func (c *conn) refuseArriving(err error) {
	h := &c.frameHdr
	c.countMemoryRefusal(h, err)
	arrived := len(c.frameBuf)
	if fc := c.frameChunks; fc != nil {
		arrived += fc.len
	}
	c.beginDiscard(h, kafka.ErrRequestTimedOut, int64(h.Length)-int64(arrived))
	if skim := c.discard.skim; skim != nil {
		if fc := c.frameChunks; fc != nil {
			skim.Feed(fc.bufs[0][h.Size:]) // the first piece holds the header
			for _, b := range fc.bufs[1:] {
				skim.Feed(b)
			}
			skim.Feed(c.frameBuf)
		} else {
			skim.Feed(c.frameBuf[h.Size:])
		}
	}
	c.dropFrameBuf()
	c.frameCharge.Release()
}

// refuseForMemory refuses the frame h, whose bytes do not fit the budget
// or the IP's share of it, with a retriable error, and discards it.
func (c *conn) refuseForMemory(in input, h *kafka.Header, err error) {
	c.countMemoryRefusal(h, err)
	c.startDiscard(in, h, kafka.ErrRequestTimedOut)
}

// countMemoryRefusal counts and logs a frame refused for memory.
func (c *conn) countMemoryRefusal(h *kafka.Header, err error) {
	s := c.loop.s
	limit, configured, actual := c.memoryLimitOf(err)
	reason := "memory"
	if errors.Is(err, limits.ErrShareExhausted) {
		reason = "memory_per_ip"
	}
	s.met.counter(`floodgate_requests_refused_total{reason="` + reason + `"}`).Inc()
	s.warn.Warn("limit:"+limit, "request refused: "+err.Error(), "limit", limit,
		"configured", configured, "actual", actual, "client_ip", c.addr(), "api", kmsg.NameForKey(h.APIKey))
}

// dispatchFrame copies a complete frame out of the input and queues it.
// The frame's bytes are charged to the request, which releases them when
// it is answered.
func (c *conn) dispatchFrame(in input, h *kafka.Header) gnet.Action {
	s := c.loop.s
	// The frame's bytes are in the input already; a pooled buffer's
	// rounding up to its class is held too, so it is charged with them.
	slack := int64(frameBufSize(h.APIKey, int(h.Length)) - int(h.Length))
	if err := c.rx.Set(int64(in.avail()) + slack); err != nil {
		c.refuseForMemory(in, h, err)
		return gnet.None
	}
	r := &kafkaRequest{c: c}
	c.rx.Move(&r.charge, int64(kafka.LengthSize)+int64(h.Length)+slack)
	buf, pooled := s.newFrameBuf(h.APIKey, int(h.Length))
	frame := buf[:h.Length] // read fills it whole: no need to clear a pooled buffer
	in.discard(kafka.LengthSize)
	in.read(frame)
	s.met.bytesIn.Add(len(frame) + kafka.LengthSize)
	r.hdr = *h
	r.hdr.ClientID = clientID(frame) // point it into the frame, which outlives the peeked bytes
	r.frame = frame
	r.holdPooled(pooled)
	return c.submitFrame(in, r)
}

// submitFrame queues a whole frame's request after its rate limits.
func (c *conn) submitFrame(in input, r *kafkaRequest) gnet.Action {
	r.throttle, r.reject = c.rateLimit(&r.hdr)
	if bt := c.byteQuota(r); bt > r.throttle {
		r.throttle = bt
	}
	r.seq = c.reserveSeq()
	if !c.submit(r) {
		c.pendingJob = r
		return c.park(in.gc, "max_queued_requests")
	}
	return gnet.None
}

// clientID returns the client id of a whole frame (after its length
// prefix) whose header has been parsed, or nil for a null one.
func clientID(frame []byte) []byte {
	const lenOffset = 2 + 2 + 4
	n := int(int16(binary.BigEndian.Uint16(frame[lenOffset:])))
	if n < 0 {
		return nil
	}
	return frame[lenOffset+2 : lenOffset+2+n]
}

// rateLimit applies the Produce and Fetch token buckets to one request. In
// delay mode it returns the throttle to report and mutes the connection
// that long; in reject mode it asks for the request to be refused.
func (c *conn) rateLimit(h *kafka.Header) (time.Duration, bool) {
	s := c.loop.s
	var b, agg *limits.Buckets
	switch q := s.quotas(); h.APIKey {
	case 0:
		b, agg = q.produceRate, q.produceIPRate
	case 1:
		b, agg = q.fetchRate, q.fetchIPRate
	}
	if b == nil {
		return 0, false
	}
	var kb [64]byte
	now := time.Now()
	wait := b.Take(c.quotaKey(kb[:0], h), now)
	if w := c.ipQuota(agg, now); w > wait {
		wait = w
	}
	if wait <= 0 {
		return 0, false
	}
	s.met.throttleTime.Update(wait.Seconds())
	limit := "produce-rate-limit"
	if h.APIKey == 1 {
		limit = "fetch-rate-limit"
	}
	s.warn.Warn("limit:rate:"+kmsg.NameForKey(h.APIKey), "request over its rate limit", "limit", limit,
		"configured", b.Rate(), "client_ip", c.addr(), "client_id", string(h.ClientID),
		"api", kmsg.NameForKey(h.APIKey), "throttle_ms", wait.Milliseconds())
	if s.lim().ThrottleMode == limits.ThrottleReject {
		s.met.throttledRej.inc(h.APIKey)
		return wait, true
	}
	s.met.throttledDelay.inc(h.APIKey)
	c.throttle = now.Add(wait)
	return wait, false
}

// startDiscard answers a refused frame with code once it has streamed
// past, without buffering it: Produce per partition (skimmed as it goes),
// other APIs with their top-level error. The frame keeps its time bound:
// a refused frame trickled in is closed like any other.
func (c *conn) startDiscard(in input, h *kafka.Header, code int16) {
	in.discard(kafka.LengthSize + h.Size)
	c.beginDiscard(h, code, int64(h.Length)-int64(h.Size))
	if !c.inFrame {
		c.inFrame = true
		c.beginTransfer(time.Now().UnixNano())
	}
	c.xfer.recv = int64(kafka.LengthSize + h.Size)
}

// beginDiscard sets up the refusal of frame h with code, left bytes of it
// still to stream past (a Produce gets a skimmer, reused between frames,
// to answer per partition), and reserves its answer's place in order.
func (c *conn) beginDiscard(h *kafka.Header, code int16, left int64) {
	d := &c.discard
	skim := d.skim
	*d = discardState{active: true, hdr: *h, code: code, left: left}
	d.hdr.ClientID = nil
	d.seq = c.reserveSeq()
	if h.APIKey == 0 {
		if skim == nil {
			skim = new(kafka.ProduceSkimmer)
		}
		skim.Reset(h.APIVersion, c.loop.s.lim().MaxPartitionsPerRequest)
		d.skim = skim
	}
}

// discardFrame skips what has arrived of a refused frame; it reports
// whether the frame is finished (and answered).
func (c *conn) discardFrame(in input) bool {
	d := &c.discard
	for d.left > 0 {
		b := in.take(int(min(d.left, discardChunk)))
		if len(b) == 0 {
			return false
		}
		if d.skim != nil {
			d.skim.Feed(b)
		}
		d.left -= int64(len(b))
		c.xfer.recv += int64(len(b))
	}
	d.active = false
	c.inFrame = false
	c.xfer.end()
	resp := d.fixed
	if resp != nil {
		d.fixed = nil
	} else if d.skim != nil && d.hdr.APIKey == 0 {
		if d.skim.Acks() == 0 {
			c.complete(d.seq, nil)
			return true
		}
		r, ok := d.skim.Refusal(d.code)
		if !ok { // no partition to carry the error (v0-v2): close, as below
			c.complete(d.seq, nil)
			reason := causeRefusedNoErrorField
			c.closeReq.Store(uint32(reason))
			return true
		}
		resp = r
	} else if r, ok := kafka.TopLevelErrorResponse(d.hdr.APIKey, d.hdr.APIVersion, d.code); ok {
		resp = r
	} else {
		// This API cannot say "error" without the request it refused: close
		// rather than answer with an empty response the client would trust.
		c.complete(d.seq, nil)
		reason := causeRefusedNoErrorField
		c.closeReq.Store(uint32(reason))
		return true
	}
	if resp == nil {
		c.complete(d.seq, nil)
		return true
	}
	buf := c.loop.s.bufs.get()
	*buf = kafka.AppendResponse(*buf, &d.hdr, resp)
	c.forceOut(buf)
	c.complete(d.seq, buf)
	return true
}

// answerUnsupportedAPIVersions answers an ApiVersions request of a version
// floodgate does not serve with a v0 response carrying UNSUPPORTED_VERSION
// and the supported ranges, as Kafka does, so the client can retry lower.
func (c *conn) answerUnsupportedAPIVersions(in input, h *kafka.Header) {
	c.startDiscard(in, h, kafka.ErrUnsupportedVersion)
	d := &c.discard
	d.skim = nil
	d.hdr.APIVersion, d.hdr.Flexible = 0, false
	d.fixed = kafka.APIVersionsResponse(c.loop.s, 0, kafka.ErrUnsupportedVersion)
}

// protocolError closes a connection that does not speak Kafka.
func (c *conn) protocolError(err error) gnet.Action {
	c.loop.s.met.malformed.Inc()
	c.loop.s.warn.Warn("malformed:"+c.addr(), "malformed Kafka input; closing connection",
		"client_ip", c.addr(), "error", err.Error())
	c.closeReason = causeMalformed
	return gnet.Close
}
