package httpapi

import (
	"fmt"

	"github.com/floodgate/floodgate/limits"
)

// gateLimits are the HTTP limits a reload may change, with the rate
// buckets built from them. Never modified once stored: SetLimits swaps
// the pointer, so a request is admitted under one consistent set.
type gateLimits struct {
	cfg                         *limits.HTTPConfig
	global, perClient, perRoute *limits.Buckets
}

// newGateLimits builds the set of cfg; the buckets of a rate that did not
// change are taken over from prev (nil at start), so that a reload does
// not refill every client's burst.
func newGateLimits(cfg *limits.HTTPConfig, prev *gateLimits) *gateLimits {
	l := &gateLimits{cfg: cfg}
	bucket := func(rate int, prevRate func(*limits.HTTPConfig) int, prevB func(*gateLimits) *limits.Buckets) *limits.Buckets {
		switch {
		case prev != nil && prevRate(prev.cfg) == rate:
			return prevB(prev)
		case rate > 0:
			return limits.NewBuckets(float64(rate), 10*float64(rate))
		}
		return nil
	}
	l.global = bucket(cfg.RPSGlobal, func(c *limits.HTTPConfig) int { return c.RPSGlobal }, func(g *gateLimits) *limits.Buckets { return g.global })
	l.perClient = bucket(cfg.RPSPerClient, func(c *limits.HTTPConfig) int { return c.RPSPerClient }, func(g *gateLimits) *limits.Buckets { return g.perClient })
	l.perRoute = bucket(cfg.RPSPerRoute, func(c *limits.HTTPConfig) int { return c.RPSPerRoute }, func(g *gateLimits) *limits.Buckets { return g.perRoute })
	return l
}

// conf returns the HTTP limits in force. The pointee never changes.
func (g *gate) conf() *limits.HTTPConfig { return g.cur.Load().cfg }

// SetLimits puts new HTTP limits in force for the requests admitted from
// now on; requests being served finish under the values they started
// with. The --route definitions cannot change this way (their metrics and
// buckets are made at start): cfg.Routes must name the same routes as
// before, or SetLimits refuses. cfg must not be modified afterwards.
func (a *API) SetLimits(cfg *limits.HTTPConfig) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("set http limits: %w", err)
	}
	g := a.gate
	old := g.cur.Load()
	if len(cfg.Routes) != len(old.cfg.Routes) {
		return fmt.Errorf("set http limits: --route cannot change while serving (%d routes, %d given)", len(old.cfg.Routes), len(cfg.Routes))
	}
	for i := range cfg.Routes {
		if cfg.Routes[i].String() != old.cfg.Routes[i].String() {
			return fmt.Errorf("set http limits: --route %s cannot change while serving", cfg.Routes[i].Name)
		}
	}
	g.cur.Store(newGateLimits(cfg, old))
	g.memLimit.Store(cfg.MemoryLimit(limits.MemoryTotal()))
	if g.memLimit.Load() > 0 {
		a.startMemoryWatcher()
	}
	return nil
}
