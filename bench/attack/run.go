package attack

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/bench"
)

// Config is how long each phase of an attack lasts.
type Config struct {
	// Baseline is how long the good clients run alone first (default 1 s).
	Baseline time.Duration
	// Duration is how long the attack lasts (default 3 s).
	Duration time.Duration
	// Watch is how long recovery is watched after the attacker left
	// (default 3 s; longer than Bounds.Recovery, to report how long a slow
	// recovery takes).
	Watch time.Duration
	// SIGTERM adds a last phase: the attack again for a second, then
	// SIGTERM; the server must exit within Grace.
	SIGTERM bool
	// Grace is the server's shutdown grace period (floodgate serve: 10 s).
	Grace time.Duration
}

func (c Config) withDefaults() Config {
	c.Baseline = bench.PositiveOr(c.Baseline, time.Second)
	c.Duration = bench.PositiveOr(c.Duration, 3*time.Second)
	c.Watch = bench.PositiveOr(c.Watch, 3*time.Second)
	c.Grace = bench.PositiveOr(c.Grace, 10*time.Second)
	return c
}

// budgetSlack is how far floodgate_memory_used_bytes may stay above its
// baseline once the attacker has left: the good clients' own requests in
// flight, far below any attack's charge.
const budgetSlack = 1 << 20

// Result is what one attack did to one server.
type Result struct {
	Attack string `json:"attack"`
	Server string `json:"server"`
	// Baseline is the worst good Kafka client before the attack.
	Baseline Latency `json:"baseline"`
	// Kafka, Kgo and Health are the good clients during the attack.
	Kafka  Latency `json:"kafka"`
	Kgo    Latency `json:"kgo"`
	Health Latency `json:"health"`
	// PeakRSS is the server's largest resident set from the attack's start
	// until recovery was seen: the larger of VmRSS sampled every 20 ms
	// during the attack and RSSHighWater. RSSBound is what it may reach
	// (0: no memory limit known, nginx).
	PeakRSS  int64 `json:"peak_rss_bytes"`
	RSSBound int64 `json:"rss_bound_bytes"`
	// RSSHighWater is the kernel's high-water mark of the server's
	// resident set (VmHWM), reset as the attack began and read once
	// recovery was seen: it holds a spike between two samples, or one
	// during the recovery, that sampling misses (0: not read).
	RSSHighWater int64 `json:"rss_high_water_bytes,omitempty"`
	// BudgetBase and BudgetPeak are floodgate_memory_used_bytes before
	// and at most during the attack (-1: not read).
	BudgetBase int64 `json:"budget_base_bytes"`
	BudgetPeak int64 `json:"budget_peak_bytes"`
	// BudgetUnread counts the reads of /metrics during the attack that
	// failed (a wedged server does not answer them): the peak is then
	// only a lower bound.
	BudgetUnread int `json:"budget_unread,omitempty"`
	// Recovery is the time from the attacker leaving until the start of
	// the first probe that found the server back to its baseline (the
	// probe's own reads not counted: watchRecovery); Recovered is false
	// when it was not within Config.Watch.
	Recovery  time.Duration `json:"recovery_ns"`
	Recovered bool          `json:"recovered"`
	// After is the worst good client connected since before the attack,
	// in the moments after recovery.
	After Latency `json:"after"`
	// RecoveryState says what was still wrong when recovery was not seen.
	RecoveryState string `json:"recovery_state,omitempty"`
	// HeldPeak is each of the attack's Held gauges at most during the
	// attack; Counters is how much each of its Counters (and Reaches)
	// grew from before the attack until recovery was watched.
	HeldPeak map[string]float64 `json:"held_peak,omitempty"`
	Counters map[string]float64 `json:"counters,omitempty"`
	// SIGTERMExit is how long the server took to exit after SIGTERM during
	// the attack (0: not tried).
	SIGTERMExit time.Duration `json:"sigterm_exit_ns,omitempty"`
	// Failures are the bounds not held, one sentence each.
	Failures []string `json:"failures,omitempty"`
	// Runs is how many times the attack was run (Measure); the result is
	// the median one.
	Runs int `json:"runs"`
	// Machine says what the machine, the server and the harness did
	// during the attack (machineWatch), and Slow when the slowest good
	// requests began: a broken latency bound reports both.
	Machine string `json:"machine,omitempty"`
	Slow    string `json:"slow,omitempty"`

	hardFailures int     // failures other than latency
	worstRatio   float64 // the worst latency over its bound
}

// Passed reports whether every bound held.
func (r *Result) Passed() bool { return len(r.Failures) == 0 }

func (r *Result) fail(format string, args ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
	r.hardFailures++
}

// failLatency records a latency bound broken: got against bound.
func (r *Result) failLatency(got, bound time.Duration, format string, args ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
	r.worstRatio = max(r.worstRatio, float64(got)/float64(bound))
}

// marginalRatio is how far over a latency bound a run may be and still
// count as possibly the machine's noise rather than the server's doing.
const marginalRatio = 2

// marginal reports whether the run broke only latency bounds, each by less
// than marginalRatio: on a 2-core machine shared with other work, one
// descheduled moment of 200 ms in a run of about a hundred requests per
// client makes a p99. Such a run is measured again (Measure).
func (r *Result) marginal() bool {
	return len(r.Failures) > 0 && r.hardFailures == 0 && r.worstRatio < marginalRatio
}

// Starter starts the processes of one attack.
type Starter struct {
	// Server starts a fresh server with extra flags (an attack's
	// ServerArgs).
	Server func(extra ...string) (*Server, error)
	// Floodgate is the floodgate binary that runs a gateway attack's
	// upstream cluster in a process of its own (`floodgate bench
	// upstream`); a gateway attack needs it.
	Floodgate string
}

// Run runs attack a against the server start returns (a fresh one, stopped
// afterwards). An error means the measurement could not be made; bounds
// not held are in Result.Failures.
func Run(ctx context.Context, cfg Config, a Attack, start Starter, scale float64) (*Result, error) {
	cfg = cfg.withDefaults()
	b := a.Bounds.withDefaults()
	srv, stop, err := startFor(a, start)
	if err != nil {
		return nil, err
	}
	defer stop()
	srv.Scale = scale
	srv.KafkaProxyHeader = a.KafkaProxyHeader
	t := &srv.Target
	if a.Setup != nil {
		if err := a.Setup(ctx, t); err != nil {
			return nil, fmt.Errorf("%s: setup: %w", a.Name, err)
		}
	}
	r := &Result{Attack: a.Name, Server: srv.Name, BudgetBase: -1, BudgetPeak: -1}

	goodCtx, stopGood := context.WithCancel(ctx)
	var good goodClients
	waitGood, err := good.run(goodCtx, t)
	if err != nil {
		stopGood()
		return nil, err
	}
	defer func() { stopGood(); waitGood() }()
	t0 := time.Now()
	sleep(ctx, cfg.Baseline)
	// nginx has no /metrics (errNoMetrics); for floodgate a failed read
	// would silently drop the RSS bound and the budget's recovery check.
	if v, err := srv.Metric(ctx, "floodgate_memory_used_bytes"); err == nil {
		r.BudgetBase = int64(v)
	} else if !errors.Is(err, errNoMetrics) {
		return nil, fmt.Errorf("%s: before the attack: %w", a.Name, err)
	}
	if v, err := srv.Metric(ctx, "floodgate_memory_limit_bytes"); err == nil {
		r.RSSBound = int64(v) + b.RSSOverLimit
	} else if !errors.Is(err, errNoMetrics) {
		return nil, fmt.Errorf("%s: before the attack: %w", a.Name, err)
	}
	heldBase, err := readMetrics(ctx, srv, a.Held)
	if err != nil {
		return nil, fmt.Errorf("%s: before the attack: %w", a.Name, err)
	}
	counted := a.Counters
	if a.Reaches != "" {
		counted = append(append([]string(nil), counted...), a.Reaches)
	}
	countBase, err := readMetrics(ctx, srv, counted)
	if err != nil {
		return nil, fmt.Errorf("%s: before the attack: %w", a.Name, err)
	}

	// The server is this harness's child: the kernel's high-water mark
	// of its RSS, reset here and read after the recovery, sees the peaks
	// the monitor's samples miss. Where it cannot be reset the samples
	// alone count.
	highWater := srv.ResetRSSPeak() == nil
	attackStart := time.Now()
	r.Baseline = worst(good.kafka.window(t0, attackStart), good.kgo.window(t0, attackStart))
	mon := startMonitor(ctx, srv, a.Held)
	watch := watchMachine(ctx, srv)
	actx, stopAttack := context.WithTimeout(ctx, cfg.Duration)
	runErr := runAttack(actx, a, t, cfg.Duration)
	stopAttack()
	leave := time.Now()
	r.PeakRSS, r.BudgetPeak, r.BudgetUnread, r.HeldPeak = mon.stop()
	// The watch's last read of the server runs alongside the recovery
	// watch: the harness's own reads do not delay the first probe.
	machine := watch.stop(ctx, srv)
	var slow []string
	for _, c := range []struct {
		name string
		r    *recorder
	}{{"kafka", &good.kafka}, {"kgo", &good.kgo}, {"health", &good.health}} {
		if s := slowSamples(c.r, attackStart, b.GoodP99/2); s != "" {
			slow = append(slow, c.name+": "+s)
		}
	}
	r.Slow = strings.Join(slow, "; ")
	if runErr != nil {
		return nil, fmt.Errorf("%s: %w", a.Name, runErr)
	}

	r.Kafka = good.kafka.window(attackStart, leave)
	r.Kgo = good.kgo.window(attackStart, leave)
	r.Health = good.health.window(attackStart, leave)
	r.Recovery, r.Recovered, r.RecoveryState = watchRecovery(ctx, srv, r.BudgetBase, heldBase, b, leave, cfg.Watch)
	if highWater {
		if v, err := srv.RSSPeak(); err == nil {
			r.RSSHighWater = v
			r.PeakRSS = max(r.PeakRSS, v)
		}
	}
	r.Machine = machine()
	if counts, err := readMetrics(ctx, srv, counted); err == nil {
		for name, v := range counts {
			counts[name] = v - countBase[name]
		}
		r.Counters = counts
	} else {
		r.fail("after the attack: %v", err)
	}
	if a.Reaches != "" && r.Counters != nil && r.Counters[a.Reaches] <= 0 {
		r.fail("%s did not grow during the attack: it does not reach the path it aims at", a.Reaches)
	}
	if r.Recovered {
		r.checkAfter(ctx, &good, t, b, leave.Add(max(r.Recovery, b.Recovery)))
	}
	stopGood()
	waitGood()

	if cfg.SIGTERM && srv.Alive() {
		exit, err := terminateDuring(ctx, a, srv, time.Second, cfg.Grace)
		r.SIGTERMExit = exit
		if err != nil {
			r.fail("%v", err)
		}
	}
	r.check(b, srv, t)
	return r, nil
}

// Measure runs attack a like Run; when the run broke only latency bounds,
// and each by less than 2x, it runs twice more and returns the median run
// (by the worst good client's p99 during the attack): a server that holds
// the bounds passes two runs of three however busy the machine, one that
// does not fails them; every broken bound beyond that margin, and every
// RSS or recovery failure, counts at once.
func Measure(ctx context.Context, cfg Config, a Attack, start Starter, scale float64) (*Result, error) {
	r, err := Run(ctx, cfg, a, start, scale)
	if err != nil || !r.marginal() {
		if r != nil {
			r.Runs = 1
		}
		return r, err
	}
	runs := []*Result{r}
	for len(runs) < 3 {
		r, err := Run(ctx, cfg, a, start, scale)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].score() < runs[j].score() })
	m := runs[1]
	m.Runs = len(runs)
	return m, nil
}

// score orders runs: failures first by how far over, then latency.
func (r *Result) score() float64 {
	w := worst(r.Kafka, r.Kgo, r.Health)
	return float64(r.hardFailures)*1e6 + float64(len(r.Failures))*1e3 + float64(w.P99)/float64(time.Second)
}

// TerminateDuring starts a fresh server, attacks it for warm, sends
// SIGTERM and returns how long the server took to exit; the error says
// when that was longer than grace.
func TerminateDuring(ctx context.Context, a Attack, start Starter, scale float64, warm, grace time.Duration) (time.Duration, error) {
	srv, stop, err := startFor(a, start)
	if err != nil {
		return 0, err
	}
	defer stop()
	srv.Scale = scale
	srv.KafkaProxyHeader = a.KafkaProxyHeader
	if a.Setup != nil {
		if err := a.Setup(ctx, &srv.Target); err != nil {
			return 0, fmt.Errorf("%s: setup: %w", a.Name, err)
		}
	}
	return terminateDuring(ctx, a, srv, warm, grace)
}

// terminateDuring attacks srv for warm, with the good clients running (a
// request parked for memory is part of what a shutdown must end), then
// sends SIGTERM while the attack goes on.
func terminateDuring(ctx context.Context, a Attack, srv *Server, warm, grace time.Duration) (time.Duration, error) {
	actx, stop := context.WithCancel(ctx)
	var good goodClients
	waitGood, err := good.run(actx, &srv.Target)
	if err != nil {
		stop()
		return 0, err
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(actx, &srv.Target) }()
	defer func() {
		stop()
		select { // as runAttack: an attack that ignores its end does not hang the run
		case <-done:
		case <-time.After(10 * time.Second):
		}
		waitGood()
	}()
	sleep(ctx, warm)
	exit, err := srv.Terminate(grace + 2*time.Second)
	if err == nil && exit > grace {
		err = fmt.Errorf("exited %v after SIGTERM", exit.Round(10*time.Millisecond))
	}
	if err != nil {
		return exit, fmt.Errorf("SIGTERM during the attack (grace %v): %w", grace, err)
	}
	return exit, nil
}

// afterWindow is how long the good clients that ran through the attack
// are watched once fresh requests are served again.
const afterWindow = 500 * time.Millisecond

// checkAfter checks that the good clients connected since before the
// attack are served normally again from the recovery bound on (or from
// recovery, when that was later): a connection left parked or stalled by
// the attack has no request completed in the window, or a slow one
// (a request still in flight at from counts with its whole latency).
func (r *Result) checkAfter(ctx context.Context, good *goodClients, t *Target, b Bounds, from time.Time) {
	sleep(ctx, time.Until(from.Add(afterWindow)))
	to := from.Add(afterWindow)
	clients := []struct {
		name  string
		rec   *recorder
		bound time.Duration
	}{{"kafka (ApiVersions/Metadata)", &good.kafka, b.GoodP99}, {"kgo (Produce acks=all/Fetch)", &good.kgo, b.GoodP99},
		{"GET /health", &good.health, b.HealthP99}}
	var ls []Latency
	for _, c := range clients {
		if c.rec != &good.health && t.KafkaAddr == "" {
			continue
		}
		l := c.rec.window(from, to)
		ls = append(ls, l)
		switch {
		case l.N == 0:
			r.fail("%s: the client connected before the attack completed no request in the %v after recovery", c.name, afterWindow)
		case l.P99 > c.bound:
			r.failLatency(l.P99, c.bound, "%s: p99 %v > %v in the %v after recovery", c.name, ms(l.P99), c.bound, afterWindow)
		}
	}
	r.After = worst(ls...)
}

// runAttack runs a until ctx ends and waits for it to close everything,
// at most 10 s beyond d.
func runAttack(ctx context.Context, a Attack, t *Target, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, t) }()
	select {
	case err := <-done:
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("attack failed: %w", err)
		}
		if ctx.Err() == nil {
			// It gave up early: the rest of the window is still measured.
			<-ctx.Done()
		}
		return nil
	case <-time.After(d + 10*time.Second):
		return errors.New("attack did not stop within 10 s of its end")
	}
}

// check compares the measurements with the bounds.
func (r *Result) check(b Bounds, srv *Server, t *Target) {
	if !srv.Alive() && r.SIGTERMExit == 0 {
		r.fail("the server exited during the attack")
	}
	clients := []struct {
		name  string
		l     Latency
		bound time.Duration
	}{{"kafka (ApiVersions/Metadata)", r.Kafka, b.GoodP99}, {"kgo (Produce acks=all/Fetch)", r.Kgo, b.GoodP99},
		{"GET /health", r.Health, b.HealthP99}}
	for _, c := range clients {
		if c.name != "GET /health" && t.KafkaAddr == "" {
			continue
		}
		switch {
		case c.l.N == 0:
			r.fail("%s: no request during the attack", c.name)
		case c.l.P99 > c.bound:
			r.failLatency(c.l.P99, c.bound, "%s: p99 %v > %v during the attack (%d of %d failed, max %v)", c.name, ms(c.l.P99), c.bound, c.l.Failed, c.l.N, ms(c.l.Max))
		}
	}
	if r.Health.N > 0 && r.Health.Failed == r.Health.N {
		r.fail("GET /health: no answer during the attack (%d tried)", r.Health.N)
	}
	if r.RSSBound > 0 && r.PeakRSS > r.RSSBound {
		r.fail("peak RSS %s > bound %s (memory limit + %s)", mib(r.PeakRSS), mib(r.RSSBound), mib(b.RSSOverLimit))
	}
	switch {
	case !r.Recovered:
		r.fail("not back to normal %v after the attacker left: %s", r.Recovery.Round(10*time.Millisecond), r.RecoveryState)
	case r.Recovery > b.Recovery:
		r.fail("back to normal only %v after the attacker left (bound %v)", r.Recovery.Round(10*time.Millisecond), b.Recovery)
	}
}

// worst returns the latency with the larger p99.
func worst(ls ...Latency) Latency {
	var w Latency
	for _, l := range ls {
		if l.N > 0 && (w.N == 0 || l.P99 > w.P99) {
			w = l
		}
	}
	return w
}

// monitor samples the server's RSS, memory budget and the attack's Held
// gauges during the attack.
type monitor struct {
	cancel            context.CancelFunc
	wg                sync.WaitGroup
	mu                sync.Mutex
	peakRSS, peakUsed int64
	unread            int
	peakHeld          map[string]float64
}

func startMonitor(ctx context.Context, srv *Server, held []string) *monitor {
	ctx, cancel := context.WithCancel(ctx)
	m := &monitor{cancel: cancel, peakUsed: -1}
	if len(held) > 0 {
		m.peakHeld = map[string]float64{}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			for ctx.Err() == nil {
				mctx, cancel := context.WithTimeout(ctx, time.Second)
				vs, err := readMetrics(mctx, srv, held)
				cancel()
				if err == nil {
					m.mu.Lock()
					for name, v := range vs {
						m.peakHeld[name] = max(m.peakHeld[name], v)
					}
					m.mu.Unlock()
				}
				sleep(ctx, 100*time.Millisecond)
			}
		}()
	}
	m.wg.Add(2)
	go func() {
		defer m.wg.Done()
		for ctx.Err() == nil {
			if v, err := srv.RSS(); err == nil {
				m.mu.Lock()
				m.peakRSS = max(m.peakRSS, v)
				m.mu.Unlock()
			}
			sleep(ctx, 20*time.Millisecond)
		}
	}()
	go func() {
		defer m.wg.Done()
		for ctx.Err() == nil {
			mctx, cancel := context.WithTimeout(ctx, time.Second)
			v, err := srv.Metric(mctx, "floodgate_memory_used_bytes")
			cancel()
			m.mu.Lock()
			if err == nil {
				m.peakUsed = max(m.peakUsed, int64(v))
			} else if !errors.Is(err, errNoMetrics) && ctx.Err() == nil {
				// (A read cut short by the monitor's own stop is not
				// one the server failed to answer.)
				m.unread++
			}
			m.mu.Unlock()
			sleep(ctx, 100*time.Millisecond)
		}
	}()
	return m
}

func (m *monitor) stop() (peakRSS, peakUsed int64, unread int, peakHeld map[string]float64) {
	m.cancel()
	m.wg.Wait()
	return m.peakRSS, m.peakUsed, m.unread, m.peakHeld
}

// readMetrics reads each of names from one read of srv's /metrics (nil
// for none).
func readMetrics(ctx context.Context, srv *Server, names []string) (map[string]float64, error) {
	if len(names) == 0 {
		return nil, nil
	}
	return srv.Metrics(ctx, names...)
}

// watchRecovery probes the server from fresh good connections until it is
// back to normal or watch has passed since leave: the memory budget back to
// its baseline, each gauge of heldBase back to at most its value there, an
// ApiVersions round trip and a GET /health each answered within their
// bounds. The recovery time runs until the start of the probe that found
// all that: the probe's read of /metrics is the harness's own work (and
// the fresh requests after it have bounds of their own), so its duration
// does not count against the recovery bound.
func watchRecovery(ctx context.Context, srv *Server, budgetBase int64, heldBase map[string]float64, b Bounds, leave time.Time, watch time.Duration) (time.Duration, bool, string) {
	state := ""
	for {
		at := time.Now()
		ok, why := probe(ctx, srv, budgetBase, heldBase, b)
		if ok {
			return at.Sub(leave), true, ""
		}
		state = why
		if time.Since(leave) >= watch || ctx.Err() != nil {
			return time.Since(leave), false, state
		}
		sleep(ctx, 50*time.Millisecond)
	}
}

// probe is one recovery check; why says what is not normal yet.
func probe(ctx context.Context, srv *Server, budgetBase int64, heldBase map[string]float64, b Bounds) (bool, string) {
	if !srv.Alive() {
		return false, "the server exited"
	}
	if ok, why := probeMetrics(ctx, srv, budgetBase, heldBase); !ok {
		return false, why
	}
	if srv.KafkaAddr != "" {
		start := time.Now()
		c, err := srv.dialKafka(ctx, goodIP(4), srv.KafkaAddr)
		if err != nil {
			return false, "new Kafka connection: " + err.Error()
		}
		kc := &kafkaConn{Conn: c}
		err = kc.roundTrip(kmsg.NewPtrApiVersionsRequest(), 1, time.Second)
		c.Close()
		if err != nil {
			return false, "ApiVersions on a new connection: " + err.Error()
		}
		if d := time.Since(start); d > b.GoodP99 {
			return false, fmt.Sprintf("ApiVersions on a new connection took %v", ms(d))
		}
	}
	start := time.Now()
	cl := httpClientFrom(goodIP(5), time.Second)
	err := getHealth(ctx, cl, srv.HTTPAddr)
	cl.CloseIdleConnections()
	if err != nil {
		return false, err.Error()
	}
	if d := time.Since(start); d > b.HealthP99 {
		return false, fmt.Sprintf("GET /health on a new connection took %v", ms(d))
	}
	return true, ""
}

// probeMetrics checks, in one read of /metrics, that each gauge of
// heldBase is back to at most its value there and the memory budget to
// budgetBase (-1: not checked).
func probeMetrics(ctx context.Context, srv *Server, budgetBase int64, heldBase map[string]float64) (bool, string) {
	names := slices.Sorted(maps.Keys(heldBase))
	if budgetBase >= 0 {
		names = append(names, "floodgate_memory_used_bytes")
	}
	if len(names) == 0 {
		return true, ""
	}
	mctx, cancel := context.WithTimeout(ctx, time.Second)
	vs, err := srv.Metrics(mctx, names...)
	cancel()
	if err != nil {
		return false, err.Error()
	}
	for _, name := range names {
		if base, held := heldBase[name]; held && vs[name] > base {
			return false, fmt.Sprintf("%s %v (before the attack %v)", name, vs[name], base)
		}
	}
	if v := int64(vs["floodgate_memory_used_bytes"]); budgetBase >= 0 && v > budgetBase+budgetSlack {
		return false, fmt.Sprintf("floodgate_memory_used_bytes %s (baseline %s)", mib(v), mib(budgetBase))
	}
	return true, ""
}

// ms rounds d for messages.
func ms(d time.Duration) time.Duration {
	if d > 10*time.Millisecond {
		return d.Round(time.Millisecond)
	}
	return d.Round(10 * time.Microsecond)
}

// mib formats bytes in MiB.
func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
