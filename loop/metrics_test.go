package loop_test

import (
	"bytes"
	"testing"

	"github.com/floodgate/floodgate/internal/testserver"
)

// TestPerAPISeriesAppearOnFirstUse checks /metrics carries a per-API series
// only for APIs a client used: ~90 always-zero series for APIs nobody asked
// for are noise to every dashboard and scrape.
func TestPerAPISeriesAppearOnFirstUse(t *testing.T) {
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
