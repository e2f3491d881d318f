package loop

import (
	"fmt"

	"github.com/floodgate/floodgate/limits"
)

// liveLimits is the part of the configuration SetLimits may change while
// connections are open. It is never modified once stored: a reload builds
// a new one and swaps the pointer, so an event loop or a worker reads a
// consistent set with one atomic load and no lock, and what it is in the
// middle of finishes under the values it started with.
type liveLimits struct {
	lim  limits.Config
	http HTTPLimits
	// The request-rate buckets, their per-IP aggregates and the byte-rate
	// quotas (quota.go); nil when off.
	produceRate, fetchRate     *limits.Buckets
	produceIPRate, fetchIPRate *limits.Buckets
	produceBytes, fetchBytes   *limits.Buckets
}

// newLiveLimits builds the live set of lim and hl. The token buckets of a
// rate that did not change are taken over from prev (nil at start), so
// that a reload neither forgives a client's debt nor refills its burst.
func newLiveLimits(lim limits.Config, hl HTTPLimits, prev *liveLimits) *liveLimits {
	l := &liveLimits{lim: lim, http: hl}
	samePrev := func(rate func(*limits.Config) int64, perIP bool) bool {
		return prev != nil && rate(&prev.lim) == rate(&lim) && (!perIP || prev.lim.QuotaKey == lim.QuotaKey)
	}
	produce := func(c *limits.Config) int64 { return int64(c.ProduceRate) }
	fetch := func(c *limits.Config) int64 { return int64(c.FetchRate) }
	if samePrev(produce, false) {
		l.produceRate = prev.produceRate
	} else if lim.ProduceRate > 0 {
		l.produceRate = limits.NewBuckets(float64(lim.ProduceRate), float64(lim.ProduceRate))
	}
	if samePrev(fetch, false) {
		l.fetchRate = prev.fetchRate
	} else if lim.FetchRate > 0 {
		l.fetchRate = limits.NewBuckets(float64(lim.FetchRate), float64(lim.FetchRate))
	}
	if samePrev(produce, true) {
		l.produceIPRate = prev.produceIPRate
	} else {
		l.produceIPRate = newIPQuota(&lim, lim.ProduceRate)
	}
	if samePrev(fetch, true) {
		l.fetchIPRate = prev.fetchIPRate
	} else {
		l.fetchIPRate = newIPQuota(&lim, lim.FetchRate)
	}
	if samePrev(func(c *limits.Config) int64 { return c.ProduceByteRate }, false) {
		l.produceBytes = prev.produceBytes
	} else {
		l.produceBytes = newByteQuota(lim.ProduceByteRate)
	}
	if samePrev(func(c *limits.Config) int64 { return c.FetchByteRate }, false) {
		l.fetchBytes = prev.fetchBytes
	} else {
		l.fetchBytes = newByteQuota(lim.FetchByteRate)
	}
	return l
}

// lim returns the limits in force. The pointee never changes.
func (s *Server) lim() *limits.Config {
	if l := s.cur.Load(); l != nil {
		return &l.lim
	}
	return &s.cfg.Limits // a Server built without New (unit tests)
}

// httpLim returns the loop's HTTP limits in force. The pointee never changes.
func (s *Server) httpLim() *HTTPLimits {
	if l := s.cur.Load(); l != nil {
		return &l.http
	}
	return &s.cfg.HTTPLimits
}

// quotas returns the rate buckets in force.
func (s *Server) quotas() *liveLimits {
	if l := s.cur.Load(); l != nil {
		return l
	}
	return &liveLimits{} // a Server built without New: no rates
}

// SetLimits puts new limits in force without touching open connections:
// each new connection, frame, request and tick reads them. Connections
// over a lowered count stay open (a lowered --max-connections-per-ip
// refuses the IP's next connection, it does not close one); the memory
// budget takes its new size at once. Which limits a caller may change
// this way is the caller's decision: values held elsewhere (the worker
// queue's size, the broker's limits) are read here too but not resized.
func (s *Server) SetLimits(lim limits.Config, hl HTTPLimits) error {
	if err := lim.Validate(); err != nil {
		return fmt.Errorf("set limits: %w", err)
	}
	s.budget.SetLimit(lim.MemoryLimitBytes, lim.MemoryPerIP())
	prev := s.cur.Load()
	s.cur.Store(newLiveLimits(lim, hl, prev))
	if prev != nil {
		s.setListenerSocketBuffers(socketBuffersOf(&prev.lim), socketBuffersOf(&lim))
	}
	return nil
}

// SetLimitSources records where each setting's value came from (flag,
// env, file, profile or default, by flag name) for /admin/stats. m must
// not be modified afterwards.
func (s *Server) SetLimitSources(m map[string]string) { s.sources.Store(&m) }
