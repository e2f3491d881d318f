package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"time"
)

// FloodConfig configures a connection flood: an established client keeps
// making requests before and during a flood of idle connections; after the
// flood is closed, new clients try until one is served.
type FloodConfig struct {
	// Flood is the flood itself (Count about 3x the server's limit).
	Flood HoldSpec
	// PerProcess and ChildCommand: as in ConnsConfig.
	PerProcess   int
	ChildCommand []string
	// ProbeURL is requested by the established client and the new ones
	// (an http:// URL on the flooded server).
	ProbeURL string
	// ProbeRate is the established client's requests/s.
	ProbeRate float64
	// Before is how long the established client is measured before the
	// flood; During how long it is measured once the flood is open.
	Before, During time.Duration
	// RecoverTimeout bounds the wait for a new client to be served.
	RecoverTimeout time.Duration
	Server         ServerProbe
	Progress       *Progress
}

// FloodResult is the outcome of a flood run. Before and During are the
// established client's latencies, each request timed from when its
// schedule said it was due; a failed request counts in them as one that
// timed out (probeTimeout), and in BeforeErrors or DuringErrors.
// PeakRSSBytes is the server's peak resident set from the flood's start
// until a new client was served after it (PeakRSSWatch; 0: not read).
type FloodResult struct {
	Target       string  `json:"target"`
	FloodOffered int     `json:"flood_offered"`
	FloodOpened  int64   `json:"flood_opened"`
	FloodFailed  int64   `json:"flood_failed"`
	FloodOpenS   float64 `json:"flood_open_s"`
	Before       Latency `json:"established_before"`
	During       Latency `json:"established_during"`
	BeforeErrors int64   `json:"established_errors_before"`
	DuringErrors int64   `json:"established_errors_during"`
	P99Ratio     float64 `json:"p99_during_over_before"`
	RecoveryMS   float64 `json:"new_client_served_after_ms"`
	Recovered    bool    `json:"recovered"`
	ServerAlive  bool    `json:"server_alive"`
	PeakRSSBytes int64   `json:"peak_rss_bytes"`
}

// Table returns the summary table.
func (r *FloodResult) Table() *Table {
	t := &Table{Header: []string{"target", "flood", "opened", "failed", "p99 before", "p99 during", "ratio", "errors during", "new client served after", "peak RSS", "alive"}}
	rec := "never"
	if r.Recovered {
		rec = fmt.Sprintf("%.1f ms", r.RecoveryMS)
	}
	rss := "-"
	if r.PeakRSSBytes > 0 {
		rss = MiB(r.PeakRSSBytes)
	}
	t.Add(r.Target, r.FloodOffered, r.FloodOpened, r.FloodFailed, fmt.Sprintf("%.3f ms", r.Before.P99MS),
		fmt.Sprintf("%.3f ms", r.During.P99MS), fmt.Sprintf("%.2fx", r.P99Ratio), r.DuringErrors, rec, rss, r.ServerAlive)
	return t
}

// prober is a paced client on one keep-alive connection.
type prober struct {
	addr, req string
	c         net.Conn
	br        *bufio.Reader
}

func newProber(rawURL string) (*prober, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("--probe-url %q: want http://host:port/path", rawURL)
	}
	return &prober{addr: u.Host, req: fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", u.RequestURI(), u.Host)}, nil
}

// do sends one request on the kept connection (dialing if needed) and
// reports whether it got a 2xx.
func (p *prober) do(timeout time.Duration) bool {
	if p.c == nil {
		c, err := net.DialTimeout("tcp", p.addr, timeout)
		if err != nil {
			return false
		}
		p.c, p.br = c, bufio.NewReader(c)
	}
	_ = p.c.SetDeadline(time.Now().Add(timeout))
	if _, err := p.c.Write([]byte(p.req)); err != nil {
		p.reset()
		return false
	}
	code, keep, err := readResponse(p.br)
	if err != nil || !keep {
		p.reset()
	}
	return err == nil && code >= 200 && code <= 299
}

func (p *prober) reset() {
	if p.c != nil {
		_ = p.c.Close()
	}
	p.c, p.br = nil, nil
}

// probeTimeout bounds one request of the established client. A failed
// request counts in the latency as one that timed out: an error answered
// fast is no better for the client than no answer.
const probeTimeout = 2 * time.Second

// schedule is the established client's open-loop schedule: request i is
// due at start + i×interval, however long the ones before it took.
type schedule struct {
	start    time.Time
	interval time.Duration
	next     int // the next request's number
}

func newSchedule(rate float64) *schedule {
	return &schedule{start: time.Now(), interval: time.Duration(float64(time.Second) / rate)}
}

// due returns when the next request is due.
func (s *schedule) due() time.Time { return s.start.Add(time.Duration(s.next) * s.interval) }

// probeUntil makes the requests of sched due before end, each recorded in
// h from when it was due: a request held up by a slow one before it counts
// the wait (no coordinated omission). A failed request counts in errs, and
// in h as one that timed out (at least probeTimeout). The schedule goes on
// from where it stopped in the next call.
func (p *prober) probeUntil(ctx context.Context, sched *schedule, end time.Time, h *Hist, errs *int64, status func()) {
	for ctx.Err() == nil {
		at := sched.due()
		if !at.Before(end) {
			return
		}
		if w := time.Until(at); w > 0 {
			time.Sleep(w)
		}
		sched.next++
		ok := p.do(probeTimeout)
		lat := time.Since(at)
		if !ok {
			*errs++
			lat = max(lat, probeTimeout)
		}
		h.Record(lat)
		if status != nil {
			status()
		}
	}
}

// FloodHolderNice is the niceness of a flood's holder processes: the
// established client (the probe) shares their CPUs, and at the same
// priority its latency during the flood is partly the holders' (they keep
// their CPUs busy connecting), not the server's.
const FloodHolderNice = 19

// RunFlood measures an established client before and during a flood and
// the time until a new client is served after it.
func RunFlood(ctx context.Context, cfg FloodConfig) (*FloodResult, error) {
	if cfg.ProbeURL == "" {
		return nil, ErrNoProbe
	}
	cc := ConnsConfig{Hold: cfg.Flood, PerProcess: cfg.PerProcess}
	cc.defaults()
	cfg.Flood, cfg.PerProcess = cc.Hold, cc.PerProcess
	if cfg.Flood.OpenFor == 0 {
		cfg.Flood.OpenFor = 15 * time.Second
	}
	if cfg.Flood.DialTimeout > 2*time.Second {
		cfg.Flood.DialTimeout = 2 * time.Second
	}
	if err := cfg.Flood.Validate(); err != nil {
		return nil, err
	}
	cfg.ProbeRate = PositiveOr(cfg.ProbeRate, 100)
	cfg.Before = PositiveOr(cfg.Before, 2*time.Second)
	cfg.During = PositiveOr(cfg.During, 3*time.Second)
	cfg.RecoverTimeout = PositiveOr(cfg.RecoverTimeout, 30*time.Second)
	p, err := newProber(cfg.ProbeURL)
	if err != nil {
		return nil, err
	}
	defer p.reset()
	if !p.do(5 * time.Second) {
		return nil, fmt.Errorf("established client: %s does not answer 2xx before the flood", cfg.ProbeURL)
	}
	res := &FloodResult{Target: cfg.Flood.Target, FloodOffered: cfg.Flood.Count}
	var before, during Hist
	beforeSched := newSchedule(cfg.ProbeRate)
	p.probeUntil(ctx, beforeSched, beforeSched.start.Add(cfg.Before), &before, &res.BeforeErrors, func() {
		cfg.Progress.Update("flood: established client before the flood, %d requests", before.Count())
	})
	rss := WatchPeakRSS(cfg.Server)
	defer rss.Stop()
	start := time.Now()
	fleet, err := StartFleet(ctx, cfg.Flood, cfg.PerProcess, cfg.ChildCommand)
	if err != nil {
		return nil, err
	}
	closed := false
	defer func() {
		if !closed {
			fleet.Close()
		}
	}()
	// The established client keeps going while the flood opens and for
	// During after it is open, on one schedule: the requests due while
	// one was stalled are made (late) when it returns, not skipped.
	openDone := time.Time{}
	duringSched := newSchedule(cfg.ProbeRate)
	for ctx.Err() == nil {
		p.probeUntil(ctx, duringSched, time.Now().Add(100*time.Millisecond), &during, &res.DuringErrors, nil)
		o, fl := fleet.Counts()
		cfg.Progress.Update("flood %s: %.1fs opened %d failed %d; established p99 %.2f ms, errors %d",
			cfg.Flood.Target, time.Since(start).Seconds(), o, fl, ms(during.Quantile(0.99)), res.DuringErrors)
		if openDone.IsZero() && fleet.Ready() {
			openDone = time.Now()
			res.FloodOpenS = openDone.Sub(start).Seconds()
		}
		if !openDone.IsZero() && time.Since(openDone) >= cfg.During {
			break
		}
		if time.Since(start) > cfg.Flood.OpenFor+cfg.Flood.DialTimeout+cfg.During+10*time.Second {
			break
		}
	}
	res.FloodOpened, res.FloodFailed = fleet.Counts()
	res.ServerAlive = cfg.Server.Alive()
	fleet.Close()
	closed = true
	p.reset()
	// After the flood: a new client (a new connection each try) until one
	// is served.
	t0 := time.Now()
	for time.Since(t0) < cfg.RecoverTimeout && ctx.Err() == nil {
		np, _ := newProber(cfg.ProbeURL)
		ok := np.do(time.Second)
		np.reset()
		if ok {
			res.Recovered = true
			res.RecoveryMS = round3(ms(time.Since(t0)))
			break
		}
		cfg.Progress.Update("flood: waiting for a new client to be served, %.1fs", time.Since(t0).Seconds())
		time.Sleep(5 * time.Millisecond)
	}
	res.ServerAlive = res.ServerAlive && cfg.Server.Alive()
	res.PeakRSSBytes = rss.Stop()
	res.Before, res.During = before.Summary(), during.Summary()
	if res.Before.P99MS > 0 {
		res.P99Ratio = round3(res.During.P99MS / res.Before.P99MS)
	}
	cfg.Progress.Done()
	return res, nil
}
