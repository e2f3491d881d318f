package loop

import (
	"context"
	"sort"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/floodgate/floodgate/limits"
)

// Stats is the server's state for /admin/stats.
type Stats struct {
	Connections      int64              `json:"connections"`
	Parked           int64              `json:"connections_parked"`
	PerLoop          []int              `json:"connections_per_loop"`
	TopIPs           []IPCount          `json:"top_ips"`
	InFlight         int64              `json:"requests_in_flight"`
	QueueDepth       int                `json:"request_queue_depth"`
	MemoryUsedBytes  int64              `json:"memory_used_bytes"`
	MemoryLimitBytes int64              `json:"memory_limit_bytes"`
	ResidentBytes    int64              `json:"process_resident_bytes"`
	Limits           []LimitStat        `json:"limits"`
	Tripped          map[string]float64 `json:"tripped"`
	// Sources says where each setting's value came from: flag, env, file,
	// profile or default (SetLimitSources; absent when nobody set them).
	Sources map[string]string `json:"limit_sources,omitempty"`
}

// IPCount is one source IP's connection count.
type IPCount struct {
	IP    string `json:"ip"`
	Count int32  `json:"connections"`
	// MemoryBytes is what the IP holds of the memory budget (its share is
	// capped by --request-memory-per-ip-percent).
	MemoryBytes int64 `json:"memory_bytes"`
}

// LimitStat is one limit's configured value.
type LimitStat struct {
	Flag   string `json:"flag"`
	Value  string `json:"value"`
	Unit   string `json:"unit"`
	Metric string `json:"metric"`
	// Source is where the value came from (flag, env, file, profile,
	// default), when known.
	Source string `json:"source,omitempty"`
}

// Stats gathers the server's state; per-loop parts are read inside each
// loop, so it takes a moment under load.
func (s *Server) Stats() Stats {
	st := Stats{
		Connections:      s.active.Load(),
		Parked:           s.parked.Load(),
		InFlight:         s.inflight.Load(),
		QueueDepth:       s.pool.depth(),
		MemoryUsedBytes:  s.budget.Used(),
		MemoryLimitBytes: s.budget.Limit(),
		ResidentBytes:    ResidentBytes(),
		Tripped:          map[string]float64{},
	}
	s.loopsMu.Lock()
	ls := append([]*loopState(nil), s.loops...)
	s.loopsMu.Unlock()
	for _, l := range ls {
		ch := make(chan int, 1)
		err := l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			ch <- l.conns
			return nil
		}))
		if err != nil {
			continue
		}
		select {
		case n := <-ch:
			st.PerLoop = append(st.PerLoop, n)
		case <-time.After(time.Second):
			st.PerLoop = append(st.PerLoop, -1)
		}
	}
	perIP := s.ips.snapshot()
	for ip, n := range perIP {
		st.TopIPs = append(st.TopIPs, IPCount{IP: ip.String(), Count: n.conns, MemoryBytes: n.held})
	}
	sort.Slice(st.TopIPs, func(i, j int) bool { return st.TopIPs[i].Count > st.TopIPs[j].Count })
	if len(st.TopIPs) > 10 {
		st.TopIPs = st.TopIPs[:10]
	}
	lim := s.lim()
	if p := s.sources.Load(); p != nil {
		st.Sources = *p
	}
	for _, l := range limits.Table {
		st.Limits = append(st.Limits, LimitStat{Flag: l.Flag, Value: lim.Value(l.Flag), Unit: l.Unit, Metric: l.Metric, Source: st.Sources[l.Flag]})
	}
	for _, name := range s.cfg.Metrics.ListMetricNames() {
		if hasPrefix(name, "floodgate_connections_rejected_total") || hasPrefix(name, "floodgate_requests_throttled_total") ||
			hasPrefix(name, "floodgate_request_too_large_total") || hasPrefix(name, "floodgate_parks_total") ||
			hasPrefix(name, "floodgate_accept_errors_total") || hasPrefix(name, "floodgate_accept_waits_total") ||
			hasPrefix(name, "floodgate_http_refused_total") ||
			hasPrefix(name, "floodgate_requests_refused_total") {
			if c := s.cfg.Metrics.GetOrCreateCounter(name); c != nil {
				st.Tripped[name] = float64(c.Get())
			}
		}
	}
	return st
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

// Ready reports whether the server is not overloaded: the memory budget is
// below its high-water mark and the pool queue has room.
func (s *Server) Ready() bool {
	return !s.budget.NearLimit() && !s.pool.full() && !s.stopping.Load()
}
