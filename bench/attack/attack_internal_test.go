package attack

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
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
	got := w.stop(t.Context(), &Server{})()
	if !strings.Contains(got, "machine over") || !strings.Contains(got, "this process") || strings.Contains(got, "CPU 0.00 s, GC") {
		t.Fatalf("watch = %q after 200 ms of computing (%d loops), want the machine's line and a CPU time", got, x)
	}
}

// TestRecorderCountsAStallInEveryRequestDueDuringIt: a good client's
// requests are due on a schedule, so one request that stalls 300 ms makes
// the requests due meanwhile late too, each counted from when it was due.
// (Waiting for each answer and then pausing recorded the stall once, and a
// p99 over a few hundred samples did not see it.)
func TestRecorderCountsAStallInEveryRequestDueDuringIt(t *testing.T) {
	var r recorder
	ctx := context.Background()
	from := time.Now()
	for i := 0; i < 20; i++ {
		start := r.begin(ctx)
		if i == 3 {
			time.Sleep(300 * time.Millisecond) // the stall
		}
		r.add(start, true)
	}
	l := r.window(from, time.Now())
	slow := 0
	for _, s := range r.s {
		if s.lat >= 100*time.Millisecond {
			slow++
		}
	}
	// The stall's own request, and those due in the first 200 ms of it.
	if slow < 5 || l.N != 20 {
		t.Errorf("%d of %d requests took 100 ms or more after a 300 ms stall, want at least 5", slow, l.N)
	}
}

// TestRecorderCountsAFailedRequestAsTimedOut: an error answered fast is no
// better for the client than no answer.
func TestRecorderCountsAFailedRequestAsTimedOut(t *testing.T) {
	var r recorder
	from := time.Now()
	for i := 0; i < 10; i++ {
		start := r.beginNow()
		r.add(start, i != 4)
	}
	l := r.window(from, time.Now().Add(time.Second))
	if l.Failed != 1 || l.Max != goodTimeout {
		t.Errorf("failed %d, max %v; want 1 failed counted as %v", l.Failed, l.Max, goodTimeout)
	}
}

// TestAnswerErrorFindsTheErrorCode: the raw good client's answers count as
// successes only without an error code.
func TestAnswerErrorFindsTheErrorCode(t *testing.T) {
	okMeta := kmsg.NewPtrMetadataResponse()
	okMeta.Brokers = append(okMeta.Brokers, kmsg.NewMetadataResponseBroker())
	badTopic := kmsg.NewPtrMetadataResponse()
	badTopic.Brokers = okMeta.Brokers
	mt := kmsg.NewMetadataResponseTopic()
	mt.ErrorCode = 5 // LEADER_NOT_AVAILABLE
	badTopic.Topics = append(badTopic.Topics, mt)
	badVersions := kmsg.NewPtrApiVersionsResponse()
	badVersions.ErrorCode = 35
	tests := []struct {
		name string
		resp kmsg.Response
		bad  bool
	}{
		{"api versions", kmsg.NewPtrApiVersionsResponse(), false},
		{"api versions error", badVersions, true},
		{"metadata", okMeta, false},
		{"metadata without brokers", kmsg.NewPtrMetadataResponse(), true},
		{"metadata topic error", badTopic, true},
	}
	for _, tt := range tests {
		if err := answerError(tt.resp); (err != nil) != tt.bad {
			t.Errorf("%s: error %v, want an error: %t", tt.name, err, tt.bad)
		}
	}
}
