package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// OverloadConfig configures an overload sweep: the HTTP load generator
// offers each multiple of a server's configured limit in turn.
type OverloadConfig struct {
	// URL is the target.
	URL string
	// Kind is "rate" (Limit is the server's requests/s limit; offered
	// rate = m x Limit over Connections connections) or "connections"
	// (Limit is the server's connection limit; m x Limit connections
	// each offer PerConnRate requests/s).
	Kind string
	// Limit is the server's configured limit.
	Limit float64
	// Multipliers are the multiples to offer (1, 2, 5, 10 unless set).
	Multipliers []float64
	// Connections is the number of connections in rate mode.
	Connections int
	// PerConnRate is each connection's requests/s in connections mode.
	PerConnRate float64
	// Step is how long each multiple is offered.
	Step     time.Duration
	Server   ServerProbe
	Progress *Progress
}

// ParseMultipliers reads a comma-separated list such as "1,2,5,10".
func ParseMultipliers(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(f), "x"))
		if f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v <= 0 || v > 1000 {
			return nil, fmt.Errorf("--multipliers: %q is not a multiple between 0 and 1000", f)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--multipliers %q: no multiple given", s)
	}
	return out, nil
}

// OverloadStep is one offered multiple.
type OverloadStep struct {
	Multiple    float64 `json:"multiple"`
	Connections int     `json:"connections"`
	OfferedRPS  float64 `json:"offered_rps"`
	GoodputRPS  float64 `json:"goodput_rps"`
	// RejectedRPS counts answers that refused the request (non-2xx).
	RejectedRPS float64 `json:"rejected_rps"`
	// RejectRate is the share of offered requests not served (2xx).
	RejectRate float64 `json:"reject_rate"`
	// AdmittedP99MS is the p99 latency of 2xx answers.
	AdmittedP50MS float64 `json:"admitted_p50_ms"`
	AdmittedP99MS float64 `json:"admitted_p99_ms"`
	// PeakRSSBytes is the server's peak resident set while the step ran
	// (PeakRSSWatch; 0: not read).
	PeakRSSBytes int64  `json:"peak_rss_bytes"`
	Errors       string `json:"errors"`
}

// OverloadResult is the outcome of a sweep.
type OverloadResult struct {
	URL   string         `json:"url"`
	Kind  string         `json:"kind"`
	Limit float64        `json:"limit"`
	Steps []OverloadStep `json:"steps"`
}

// Table returns the summary table.
func (r *OverloadResult) Table() *Table {
	t := &Table{Header: []string{"offered", "conns", "offered/s", "goodput/s", "rejected/s", "not served", "admitted p50", "admitted p99", "peak RSS", "errors"}}
	for _, s := range r.Steps {
		t.Add(fmt.Sprintf("%gx", s.Multiple), s.Connections, s.OfferedRPS, s.GoodputRPS, s.RejectedRPS,
			fmt.Sprintf("%.1f%%", 100*s.RejectRate), fmt.Sprintf("%.3f ms", s.AdmittedP50MS),
			fmt.Sprintf("%.3f ms", s.AdmittedP99MS), MiB(s.PeakRSSBytes), s.Errors)
	}
	return t
}

// Chart returns admitted p99 and goodput against offered load.
func (r *OverloadResult) Chart(name string) Chart {
	var x, p99 []float64
	for _, s := range r.Steps {
		x = append(x, s.Multiple)
		p99 = append(p99, s.AdmittedP99MS)
	}
	return Chart{Title: "Admitted p99 latency vs offered load (" + name + ")", XLabel: "offered load (multiple of the limit)",
		YLabel: "p99 of 2xx answers (ms)", Series: []Series{{Name: name, X: x, Y: p99}}}
}

// RunOverload offers each multiple in turn.
func RunOverload(ctx context.Context, cfg OverloadConfig) (*OverloadResult, error) {
	if cfg.Kind == "" {
		cfg.Kind = "rate"
	}
	if cfg.Kind != "rate" && cfg.Kind != "connections" {
		return nil, fmt.Errorf("--kind=%q: want rate or connections", cfg.Kind)
	}
	if cfg.Limit <= 0 {
		return nil, fmt.Errorf("--limit=%v: must be > 0 (the server's configured limit)", cfg.Limit)
	}
	if len(cfg.Multipliers) == 0 {
		cfg.Multipliers = []float64{1, 2, 5, 10}
	}
	cfg.Step = PositiveOr(cfg.Step, 3*time.Second)
	cfg.Connections = PositiveOr(cfg.Connections, 50)
	cfg.PerConnRate = PositiveOr(cfg.PerConnRate, 10)
	res := &OverloadResult{URL: cfg.URL, Kind: cfg.Kind, Limit: cfg.Limit}
	for _, m := range cfg.Multipliers {
		hc := HTTPConfig{URL: cfg.URL, Duration: cfg.Step, Pipeline: 1, Timeout: 5 * time.Second, Progress: cfg.Progress}
		if cfg.Kind == "rate" {
			hc.Connections = cfg.Connections
			hc.Rate = m * cfg.Limit
		} else {
			hc.Connections = max(1, int(m*cfg.Limit))
			hc.Rate = float64(hc.Connections) * cfg.PerConnRate
		}
		rss := WatchPeakRSS(cfg.Server)
		r, err := RunHTTP(ctx, hc)
		peakRSS := rss.Stop()
		if err != nil {
			return nil, fmt.Errorf("overload %gx: %w", m, err)
		}
		st := OverloadStep{Multiple: m, Connections: hc.Connections, OfferedRPS: hc.Rate, GoodputRPS: r.GoodputRPS,
			AdmittedP50MS: r.OK.P50MS, AdmittedP99MS: r.OK.P99MS, PeakRSSBytes: peakRSS, Errors: r.errorText()}
		st.RejectedRPS = r.AchievedRPS - r.GoodputRPS
		offered := hc.Rate * cfg.Step.Seconds()
		if offered > 0 {
			st.RejectRate = round3(max(0, 1-float64(r.OK.Count)/offered))
		}
		res.Steps = append(res.Steps, st)
	}
	return res, nil
}
