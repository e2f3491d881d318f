package attack

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestSelectTakesAWholeNameAlone: --only with a substring selects every
// attack containing it; with an attack's whole name, that attack alone
// (TestAttacks runs each attack by its name in a child process).
func TestSelectTakesAWholeNameAlone(t *testing.T) {
	attacks := []Attack{{Name: "http-abandoned-body"}, {Name: "http-abandoned-body-closed"}, {Name: "kafka-garbage"}}
	tests := []struct {
		only []string
		want []string
	}{
		{nil, []string{"http-abandoned-body", "http-abandoned-body-closed", "kafka-garbage"}},
		{[]string{"http-abandoned-body"}, []string{"http-abandoned-body"}},
		{[]string{"http-abandoned"}, []string{"http-abandoned-body", "http-abandoned-body-closed"}},
		{[]string{"garbage", "http-abandoned-body-closed"}, []string{"http-abandoned-body-closed", "kafka-garbage"}},
		{[]string{"nothing"}, nil},
	}
	for _, tt := range tests {
		var got []string
		for _, a := range Select(attacks, tt.only) {
			got = append(got, a.Name)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Select(%q) = %q, want %q", tt.only, got, tt.want)
		}
	}
}

// TestSlowSamplesNamesTheSlowRequestsAfterTheStart: the diagnosis lists
// the requests over the bound that began after the attack started, with
// their latency and start.
func TestSlowSamplesNamesTheSlowRequestsAfterTheStart(t *testing.T) {
	start := time.Now()
	var r recorder
	r.s = []sample{
		{start: start.Add(-time.Second), lat: 500 * time.Millisecond, ok: true}, // before the attack
		{start: start.Add(100 * time.Millisecond), lat: 5 * time.Millisecond, ok: true},
		{start: start.Add(300 * time.Millisecond), lat: 250 * time.Millisecond, ok: true},
	}
	got := slowSamples(&r, start, 100*time.Millisecond)
	if !strings.Contains(got, "at +300ms") || strings.Contains(got, "+100ms") || strings.Contains(got, "-1s") || strings.Count(got, " at ") != 1 {
		t.Fatalf("slowSamples = %q, want only the 250 ms request begun at +300ms", got)
	}
}

// TestMachineWatchCountsThisProcessesCPU: a watch over a stretch in which
// this process computes shows that CPU time, and the machine's line.
func TestMachineWatchCountsThisProcessesCPU(t *testing.T) {
	w := &machineWatch{cpu0: readCPUTimes(), gc0: gcPauseTotal(), self0: selfCPU(), start: time.Now(), cancel: func() {}}
	deadline := time.Now().Add(200 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	got := w.stop(t.Context(), &Server{})
	if !strings.Contains(got, "machine over") || !strings.Contains(got, "this process") || strings.Contains(got, "CPU 0.00 s, GC") {
		t.Fatalf("watch = %q after 200 ms of computing (%d loops), want the machine's line and a CPU time", got, x)
	}
}
