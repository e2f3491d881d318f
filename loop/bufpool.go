package loop

import "sync"

// maxPooledBuf is the largest response buffer kept for reuse; larger ones
// (big fetches) go back to the GC so one burst does not pin memory.
const maxPooledBuf = 1 << 20

// bufPool recycles response buffers. Raw handlers' answers read into the
// frame pools (Server.ResponseBuffer) go back to frames.
type bufPool struct {
	p      sync.Pool
	frames *framePool
}

func (bp *bufPool) get() *[]byte {
	if b, ok := bp.p.Get().(*[]byte); ok {
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, 4096)
	return &b
}

func (bp *bufPool) put(b *[]byte) {
	if b != nil && bp.frames != nil && pooledResponse(b) {
		bp.frames.put(b)
		return
	}
	if b == nil || cap(*b) > maxPooledBuf {
		return
	}
	bp.p.Put(b)
}
