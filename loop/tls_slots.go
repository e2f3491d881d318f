package loop

import (
	"net"
	"sync"
	"time"
)

// handshakeTable bounds the TLS handshakes in progress
// (--max-tls-handshakes) and keeps them oldest first. When it is full, a
// new connection takes the place of the oldest handshake if that one has
// run for longer than evictAge: a real client finishes its handshake in a
// few round trips, so the oldest is the likeliest to be a client that
// connected and went silent (or sends its hello byte by byte). Without
// this, --max-tls-handshakes silent connections would shut every other
// client out of the TLS listener until --tls-handshake-timeout, again and
// again. A table full of young handshakes (a real surge) refuses the new
// connection instead.
type handshakeTable struct {
	mu    sync.Mutex
	byAge dlist[pendingHandshake, *pendingHandshake] // oldest first
	n     int
}

// pendingHandshake is one handshake in progress.
type pendingHandshake struct {
	nc      *net.TCPConn
	start   time.Time
	place   links[pendingHandshake]
	listed  bool
	evicted bool // set under the table's lock; read by its goroutine after the handshake ended
}

func (p *pendingHandshake) links() *links[pendingHandshake] { return &p.place }

// evictAge returns the age from which a handshake may give its place to
// a new one: an eighth of the handshake timeout, at least 100 ms.
func evictAge(timeout time.Duration) time.Duration {
	return max(timeout/8, 100*time.Millisecond)
}

// admit lists p unless max handshakes are in progress; then the oldest
// gives its place if it is older than minAge (its socket's deadline is
// moved to the past, so its handshake fails at once). It reports whether p
// was listed.
func (t *handshakeTable) admit(p *pendingHandshake, max int, minAge time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n >= max {
		old := t.byAge.head
		if old == nil || p.start.Sub(old.start) < minAge {
			return false
		}
		t.unlinkLocked(old)
		old.evicted = true
		_ = old.nc.SetDeadline(time.Unix(1, 0))
	}
	t.byAge.pushBack(p)
	p.listed = true
	t.n++
	return true
}

// done removes p (its handshake ended) and reports whether it was evicted.
func (t *handshakeTable) done(p *pendingHandshake) (evicted bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p.listed {
		t.unlinkLocked(p)
	}
	return p.evicted
}

// running returns the handshakes in progress.
func (t *handshakeTable) running() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

func (t *handshakeTable) unlinkLocked(p *pendingHandshake) {
	t.byAge.remove(p)
	p.listed = false
	t.n--
}
