package loop_test

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate/floodgate/internal/testserver"
)

// TestPerAPISeriesAppearOnFirstUse checks /metrics carries a per-API series
// only for APIs a client used: ~90 always-zero series for APIs nobody asked
// for are noise to every dashboard and scrape.
func TestPerAPISeriesAppearOnFirstUse(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	exposition := func() string {
		var b bytes.Buffer
		srv.Metrics.WritePrometheus(&b)
		return b.String()
	}
	cases := []struct {
		series string
		want   bool
	}{
		{`floodgate_requests_total{api="ApiVersions"}`, true},
		{`floodgate_requests_total{api="AddRaftVoter"}`, false},
		{`floodgate_requests_total{api="Produce"}`, false},
		{`floodgate_requests_throttled_total{api="ApiVersions",mode="delay"}`, false},
	}
	c := dialFrom(t, "127.0.0.1", srv.KafkaAddr())
	defer c.Close()
	expectServed(t, c)
	out := exposition()
	for _, tc := range cases {
		if got := bytes.Contains([]byte(out), []byte(tc.series+" ")); got != tc.want {
			t.Errorf("%s present: %v, want %v", tc.series, got, tc.want)
		}
	}
}

// TestFetchLatencyLeavesOutTheLongPollWait: a consumer long-polling an
// empty topic (500 ms waits) must not show 500 ms Fetches in
// floodgate_request_duration_seconds: the histogram measures serving, and
// the wait for data is the client's choice (it made every Fetch look slow).
func TestFetchLatencyLeavesOutTheLongPollWait(t *testing.T) {
	srv := testserver.Start(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.AllowAutoTopicCreation(),
		kgo.ConsumeTopics("empty"), kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 1800*time.Millisecond)
	defer cancel()
	for ctx.Err() == nil {
		cl.PollFetches(ctx)
	}
	var b bytes.Buffer
	srv.Metrics.WritePrometheus(&b)
	var sum, count float64
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, `floodgate_request_duration_seconds_sum{api="Fetch"} `); ok {
			sum, _ = strconv.ParseFloat(v, 64)
		}
		if v, ok := strings.CutPrefix(line, `floodgate_request_duration_seconds_count{api="Fetch"} `); ok {
			count, _ = strconv.ParseFloat(v, 64)
		}
	}
	if count < 1 {
		t.Fatalf("no Fetch observed:\n%s", b.String())
	}
	if mean := sum / count; mean > 0.1 {
		t.Fatalf("mean Fetch latency %.3f s over %v Fetches: the 500 ms long-poll wait is counted", mean, count)
	}
}
