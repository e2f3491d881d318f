package loop

import (
	"math/bits"
	"sync"

	"github.com/VictoriaMetrics/metrics"

	"github.com/floodgate/floodgate/codec/kafka"
)

// Produce frames — the data path, up to a megabyte or more each — are read
// into buffers from size-classed pools instead of fresh allocations: a
// profile of floodgate during produce through the gateway put the
// allocation of each frame (mallocgcLarge, its zeroing and page faults) and
// its collection at half of floodgate's CPU. A frame is taken from the pool
// when its length prefix is read (still charged to the memory budget as
// its bytes arrive) and put back exactly once, when the request no longer
// needs it: after its answer is encoded and its handler's call returned
// (kafkaRequest.unref). Only Produce frames are pooled: decoded requests'
// strings alias their frame (kafka.DecodeRequest), and the Produce path is
// the one whose every holder is known (the broker copies the batches it
// keeps in memory and writes them to disk before answering; the gateway
// answers once the frame is written upstream). A frame whose request is
// dropped without an answer (connection closed, panic) goes to the GC
// instead: whoever may still hold it keeps it alive.
//
// The same pools hold the gateway's upstream answers (ResponseBuffer): the
// loop writes each straight to the client and returns it with its other
// response buffers (bufPool.put routes pool-sized buffers here).
const (
	// framePoolMinShift: frames of 4 KiB or less are small allocations,
	// cheap for Go's allocator, and not pooled (class 0 stays empty).
	framePoolMinShift = 12
	// framePoolMaxShift: frames above 8 MiB (kgo and the Java producer send
	// at most about 1 MiB per request by default) are allocated as before,
	// so one burst of huge frames does not stay in the pools.
	framePoolMaxShift = 23
	// frameClassSteps classes per power of two (4 KiB, 5 KiB, 6 KiB, 7 KiB,
	// 8 KiB, 10 KiB, ...): a frame wastes at most a quarter of its buffer.
	frameClassSteps = 4
	frameClasses    = (framePoolMaxShift-framePoolMinShift)*frameClassSteps + 1
)

// framePool holds one sync.Pool per size class. Frames are filled on the
// event loops and let go on pool workers or upstream readers (other
// goroutines, other Ps): sync.Pool moves buffers between them without a
// shared lock, and drops what stays unused over two GC cycles, so the
// pools shrink after a burst.
type framePool struct {
	classes [frameClasses]sync.Pool
	// poison, when set (race builds and tests), fills every returned buffer
	// with poisonByte: a frame read after its return then shows up as
	// corrupt records instead of plausible ones.
	poison bool
	// taken counts the buffers handed out, allocated those the pools had
	// none for: their difference is the frames that cost no allocation.
	taken, allocated *metrics.Counter
}

// poisonByte fills returned frames when poisoning is on.
const poisonByte = 0xDB

// frameClass returns the index and size of the smallest class that holds n
// bytes; ok is false when n is outside the pooled range.
func frameClass(n int) (idx, size int, ok bool) {
	if n <= 0 || n > 1<<framePoolMaxShift {
		return 0, 0, false
	}
	if n <= 1<<framePoolMinShift {
		// Small frames are not pooled: a 4 KiB buffer for a 200-byte
		// Produce would hold 20 times what the budget charges for it.
		return 0, 0, false
	}
	k := bits.Len(uint(n-1)) - 1 // 2^k < n <= 2^(k+1)
	step := 1 << (k - 2)         // a quarter of 2^k
	q := (n - 1<<k + step - 1) / step
	return (k-framePoolMinShift)*frameClassSteps + q, 1<<k + q*step, true
}

// get returns a buffer of length 0 that holds n bytes, or nil when n is
// not pooled (the caller allocates).
func (p *framePool) get(n int) *[]byte {
	idx, size, ok := frameClass(n)
	if !ok {
		return nil
	}
	p.taken.Inc()
	if b, ok := p.classes[idx].Get().(*[]byte); ok {
		*b = (*b)[:0]
		return b
	}
	p.allocated.Inc()
	b := make([]byte, 0, size)
	return &b
}

// put returns a buffer taken with get. The caller must hold no reference
// into it, nor may anyone else.
func (p *framePool) put(b *[]byte) {
	if b == nil {
		return
	}
	idx, size, ok := frameClass(cap(*b))
	if !ok || size != cap(*b) {
		return // not one of ours
	}
	if p.poison {
		full := (*b)[:cap(*b)]
		for i := range full {
			full[i] = poisonByte
		}
	}
	*b = (*b)[:0]
	p.classes[idx].Put(b)
}

// ResponseBuffer returns a buffer of length n from the pools, for a raw
// handler (the gateway) to read an answer into before handing it to its
// respond, or nil when answers of n bytes are not pooled (the caller
// allocates: at most 4 KiB, a small allocation, or more than 8 MiB). The
// loop owns the buffer once it is handed to respond and returns it to the
// pools once it is written (or dropped unwritten with the connection), as
// it does every response buffer (bufPool.put). A buffer never handed over
// goes to the GC. Safe from any goroutine.
func (s *Server) ResponseBuffer(n int) []byte {
	p := s.frames.get(n)
	if p == nil {
		return nil
	}
	return (*p)[:n]
}

// pooledResponse reports whether a response buffer the loop lets go of
// belongs to the frame pools: a class's exact capacity above the smallest
// class. Response buffers the loop encodes into start at 4 KiB (bufPool)
// and stay there unless they grow; one that grows to a class's size by
// chance is as free as a pool buffer and is reused as one.
func pooledResponse(b *[]byte) bool {
	c := cap(*b)
	_, size, ok := frameClass(c)
	return ok && size == c
}

// frameBufSize is the capacity newFrameBuf gives a buffer for n bytes of a
// frame of API key: what the memory budget charges for it, since the
// pool's rounding up to a class (at most a quarter) is held as well.
func frameBufSize(key int16, n int) int {
	if key == 0 {
		if _, size, ok := frameClass(n); ok {
			return size
		}
	}
	return n
}

// frameBufFloor is the largest buffer of a frame of API key that fits in
// room bytes: room itself, or for Produce the largest pool class within it
// (classes are 1.25, 1.5, 1.75 and 2 times a power of two).
func frameBufFloor(key int16, room int) int {
	if key != 0 {
		return room
	}
	_, size, ok := frameClass(room)
	if !ok || size <= room {
		return room
	}
	k := bits.Len(uint(room-1)) - 1
	return size - 1<<(k-2)
}

// newFrameBuf returns an empty buffer that holds n bytes of a frame of API
// key: from the pools for Produce (with its pool header), else allocated;
// its capacity is frameBufSize(key, n).
func (s *Server) newFrameBuf(key int16, n int) ([]byte, *[]byte) {
	if key == 0 {
		if p := s.frames.get(n); p != nil {
			return *p, p
		}
	}
	return make([]byte, 0, n), nil
}

// dropFrameBuf lets go of the frame being received, which only the loop
// holds (a refused or abandoned frame, fed to the skimmer already).
func (c *conn) dropFrameBuf() {
	c.loop.s.frames.put(c.framePooled)
	c.frameBuf, c.framePooled = nil, nil
	if fc := c.frameChunks; fc != nil {
		for _, p := range fc.pooled {
			c.loop.s.frames.put(p)
		}
		c.frameChunks = nil
	}
}

// frameChunks are the full pieces of a frame kept in the pieces it
// arrives in (chunkable), before the connection's frameBuf.
type frameChunks struct {
	bufs   [][]byte
	pooled []*[]byte // bufs' pool buffers; nil entries: allocated
	len    int       // bytes in bufs
	cap    int       // their capacity, charged with frameBuf's
}

// chunkable reports whether a frame arriving in pieces is kept in them
// instead of one growing buffer: a Produce frame for a handler that
// forwards pieces as they are (ChunkedRawKafkaHandler).
func (c *conn) chunkable(h *kafka.Header) bool {
	return h.APIKey == 0 && c.loop.s.rawChunks != nil
}
