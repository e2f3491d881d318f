package loop

import (
	"sync"
)

// job is one unit of request work for the pool. Requests implement it
// themselves, so queueing one allocates nothing.
type job interface {
	run()
	// abandon answers nothing and releases what the job holds: its
	// connection closed before it ran.
	abandon()
	// owner is the connection whose requests run in order.
	owner() *conn
}

// pool is the bounded worker pool shared by Kafka and HTTP requests: a
// fixed number of goroutines and a queue of fixed capacity. The event loop
// never blocks on it (trySubmit): a full queue is its signal to park the
// connection, whose park goroutine then waits for room (submitBlocking).
type pool struct {
	jobs chan job
	wg   sync.WaitGroup
}

func newPool(workers, queue int) *pool {
	p := &pool{jobs: make(chan job, queue)}
	p.wg.Add(workers)
	for i := 0; i < workers; i++ {
		go p.work()
	}
	return p
}

func (p *pool) work() {
	defer p.wg.Done()
	for j := range p.jobs {
		runInOrder(j)
	}
}

// trySubmit queues j and reports whether there was room.
func (p *pool) trySubmit(j job) bool {
	select {
	case p.jobs <- j:
		return true
	default:
		return false
	}
}

// depth returns the number of queued jobs.
func (p *pool) depth() int { return len(p.jobs) }

// full reports whether the queue has no room.
func (p *pool) full() bool { return len(p.jobs) >= cap(p.jobs) }

// stop lets queued jobs finish and ends the workers.
func (p *pool) stop() {
	close(p.jobs)
	p.wg.Wait()
}

// runInOrder runs j and then the requests its connection queued behind it.
// The requests of a connection that closed are dropped, not served: a
// client that pipelined a thousand requests and left costs nothing more.
func runInOrder(j job) {
	c := j.owner()
	for j != nil {
		if c.isClosed() {
			j.abandon()
		} else {
			j.run()
		}
		j = c.nextJob()
	}
}
