package httpapi_test

import (
	"bufio"
	"flag"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/floodgate/floodgate/httpapi"
	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
)

var updateREADME = flag.Bool("update", false, "rewrite README.md's table of the documents' metrics")

// sample returns the value of the series named exactly series in /metrics.
func sample(t *testing.T, body, series string) float64 {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no series %s", series)
	return 0
}

// TestMetricsHaveTheDocumentsMeanings: connections_active is the current
// count (it falls when connections leave), connection_limit_reached_total
// counts refused connections (not refused requests, which have a series
// of their own), and the documented families carry their meaning in HELP.
func TestMetricsHaveTheDocumentsMeanings(t *testing.T) {
	t.Parallel()
	srv := startHTTP(t, func(c *limits.HTTPConfig) {}, withConnLimit(3))
	metricsNow := func(addr string) string {
		return rawExchange(t, addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").body
	}
	var conns []net.Conn
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", srv.KafkaAddr())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	time.Sleep(100 * time.Millisecond)
	// 3 Kafka connections and the one asking for /metrics.
	if v := sample(t, metricsNow(srv.HTTPAddr()), "floodgate_connections_active"); v != 4 {
		t.Fatalf("floodgate_connections_active = %v with 4 connections open", v)
	}
	// A fourth Kafka connection is over --max-connections (3; HTTP has its
	// reserve): refused, and counted as a refused connection.
	extra, err := net.Dial("tcp", srv.KafkaAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	reached := srv.Metrics.GetOrCreateCounter(`floodgate_connection_limit_reached_total{reason="max_connections"}`)
	for deadline := time.Now().Add(3 * time.Second); reached.Get() == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	for _, c := range conns {
		c.Close()
	}
	time.Sleep(200 * time.Millisecond)
	m := metricsNow(srv.HTTPAddr())
	if v := sample(t, m, "floodgate_connections_active"); v > 2 {
		t.Fatalf("floodgate_connections_active = %v after the connections closed: not the current count", v)
	}
	if v := sample(t, m, `floodgate_connection_limit_reached_total{reason="max_connections"}`); v != 1 {
		t.Fatalf(`connection_limit_reached_total{reason="max_connections"} = %v, want 1`, v)
	}
	if v := sample(t, m, "floodgate_connections_accepted_total"); v < 4 {
		t.Fatalf("floodgate_connections_accepted_total = %v", v)
	}
	for _, want := range []string{
		"# HELP floodgate_connections_active Current client connections",
		"# TYPE floodgate_connections_active gauge",
		"# HELP floodgate_connection_limit_reached_total Connections refused because a connection limit was reached",
		"DEPRECATED reasons in_flight",
	} {
		if !strings.Contains(m, want) {
			t.Fatalf("/metrics lacks %q", want)
		}
	}
	if strings.Count(m, "# HELP floodgate_connection_limit_reached_total ") != 1 {
		t.Fatal("HELP written more than once for a family")
	}

	// Over the process memory limit: a refused Kafka connection is a
	// connection at its limit; a refused HTTP request is a refused request
	// (and, for one release, still under the deprecated series).
	over := startHTTP(t, func(c *limits.HTTPConfig) { c.MaxMemoryBytes = 1 << 20 })
	k, err := net.Dial("tcp", over.KafkaAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if a := do(t, client(), "GET", "http://"+over.HTTPAddr()+"/topics", "", nil); a.status != 503 {
		t.Fatalf("/topics: %d", a.status)
	}
	time.Sleep(100 * time.Millisecond)
	m = metricsNow(over.HTTPAddr())
	for series, want := range map[string]float64{
		`floodgate_connection_limit_reached_total{reason="process_memory"}`: 1,
		`floodgate_http_requests_refused_total{reason="memory"}`:            1,
		`floodgate_connection_limit_reached_total{reason="memory"}`:         1, // deprecated
	} {
		if v := sample(t, m, series); v != want {
			t.Fatalf("%s = %v, want %v", series, v, want)
		}
	}
}

const (
	metricsBegin = "<!-- metrics:begin (generated from httpapi.MetricDocs: go test ./httpapi -run TestREADME -update) -->\n"
	metricsEnd   = "<!-- metrics:end -->"
)

// TestREADMEMetricsTableMatchesMetricDocs keeps README's table of the
// documents' metrics equal to MetricDocs.
func TestREADMEMetricsTableMatchesMetricDocs(t *testing.T) {
	const path = "../README.md"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	i, j := strings.Index(doc, metricsBegin), strings.Index(doc, metricsEnd)
	if i < 0 || j < i {
		t.Fatal("README.md lacks the metrics table markers")
	}
	want := httpapi.MetricDocsMarkdown()
	if doc[i+len(metricsBegin):j] == want {
		return
	}
	if !*updateREADME {
		t.Fatal("README.md's metrics table is out of date; run: go test ./httpapi -run TestREADME -update")
	}
	doc = doc[:i+len(metricsBegin)] + want + doc[j:]
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
}

// withConnLimit sets --max-connections.
func withConnLimit(n int) testserver.Option {
	return testserver.WithLimits(func(l *limits.Config) { l.MaxConnections = n })
}
