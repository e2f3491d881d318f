package attack

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/floodgate/floodgate/bench"
)

// Table returns the results as a table: per attack and server, the good
// clients' p50/p99 during the attack (the worse of the Kafka clients),
// /health's p99 and failures, peak RSS, the memory budget's peak, the
// recovery time and whether every bound held.
func Table(rs []*Result) *bench.Table {
	t := &bench.Table{Header: []string{"attack", "server", "good p50 / p99", "/health p99 (failed/sent)",
		"peak RSS", "budget peak", "recovery", "SIGTERM exit", "result"}}
	for _, r := range rs {
		good := "-"
		if k := worst(r.Kafka, r.Kgo); k.N > 0 {
			good = fmt.Sprintf("%s / %s", fmtMS(k.P50), fmtMS(k.P99))
		}
		budget := "-"
		if r.BudgetPeak >= 0 {
			budget = mib(r.BudgetPeak)
			if r.BudgetUnread > 0 {
				budget = fmt.Sprintf("≥ %s (%d reads timed out)", budget, r.BudgetUnread)
			}
		}
		rec := fmtMS(r.Recovery)
		if !r.Recovered {
			rec = "> " + r.Recovery.Round(100*time.Millisecond).String()
		}
		term := "-"
		if r.SIGTERMExit > 0 {
			term = r.SIGTERMExit.Round(10 * time.Millisecond).String()
		}
		result := "pass"
		if !r.Passed() {
			result = fmt.Sprintf("**FAIL** (%d)", len(r.Failures))
		}
		if r.Runs > 1 {
			result += fmt.Sprintf(", median of %d runs", r.Runs)
		}
		t.Add(r.Attack, r.Server, good, fmt.Sprintf("%s (%d/%d)", fmtMS(r.Health.P99), r.Health.Failed, r.Health.N),
			mib(r.PeakRSS), budget, rec, term, result)
	}
	return t
}

// Markdown renders the results as a Markdown table followed by the broken
// bounds, one line each.
func Markdown(rs []*Result) string {
	var b strings.Builder
	b.WriteString(Table(rs).Markdown())
	b.WriteString("\nGood p50 / p99: the worse of the two Kafka clients (raw ApiVersions/Metadata; franz-go Produce acks=all + Fetch) " +
		"during the attack; 2,000 ms is the 2 s request timeout (no answer). Budget: floodgate_memory_used_bytes. " +
		"Peak RSS: the larger of VmRSS sampled every 20 ms during the attack and VmHWM from the attack's start until recovery. " +
		"Recovery: from the attacker's last close until the start of the first probe that finds the budget back to its baseline " +
		"(the probe's own read of /metrics not counted) and fresh Kafka and /health requests answered in time.\n\n")
	for _, r := range rs {
		for _, f := range r.Failures {
			fmt.Fprintf(&b, "- %s on %s: %s\n", r.Attack, r.Server, f)
		}
		if len(r.Failures) > 0 {
			fmt.Fprintf(&b, "  - %s\n", r.Diagnosis())
		}
	}
	return b.String()
}

// Diagnosis says what the machine, the server and the harness did during
// the attack, and when its slowest good requests began.
func (r *Result) Diagnosis() string {
	slow := r.Slow
	if slow == "" {
		slow = "none"
	}
	return r.Machine + "; good requests slower than half the bound (taken, and begun when after the attack's start): " + slow
}

// Row is one result on one line.
func Row(r *Result) string {
	k := worst(r.Kafka, r.Kgo)
	rec := fmtMS(r.Recovery)
	if !r.Recovered {
		rec = "not within " + r.Recovery.Round(100*time.Millisecond).String()
	}
	return fmt.Sprintf("%s on %s: good p50/p99 %s/%s (baseline p99 %s), /health p99 %s (%d/%d failed), peak RSS %s (bound %s), budget %s -> peak %s (%d reads timed out), recovery %s, after it p99 %s",
		r.Attack, r.Server, fmtMS(k.P50), fmtMS(k.P99), fmtMS(r.Baseline.P99), fmtMS(r.Health.P99), r.Health.Failed, r.Health.N,
		mib(r.PeakRSS), mib(r.RSSBound), mibOrDash(r.BudgetBase), mibOrDash(r.BudgetPeak), r.BudgetUnread, rec, fmtMS(r.After.P99)) +
		fmtMetrics("; peak during the attack: ", r.HeldPeak) + fmtMetrics("; grew by: ", r.Counters)
}

// fmtMetrics lists metrics and their values after prefix, by name; "" for
// none.
func fmtMetrics(prefix string, vs map[string]float64) string {
	if len(vs) == 0 {
		return ""
	}
	names := make([]string, 0, len(vs))
	for name := range vs {
		names = append(names, name)
	}
	sort.Strings(names)
	for i, name := range names {
		names[i] = fmt.Sprintf("%s %v", name, vs[name])
	}
	return prefix + strings.Join(names, ", ")
}

// fmtMS prints a duration in milliseconds.
func fmtMS(d time.Duration) string {
	return bench.Cell(d)
}

// mibOrDash formats bytes in MiB, or "-" for a value not read (-1).
func mibOrDash(b int64) string {
	if b < 0 {
		return "-"
	}
	return mib(b)
}
