package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/floodgate/floodgate/internal/testserver"
)

// runBenchCLI runs `floodgate bench args...` and returns stdout.
func runBenchCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := &cli.App{Name: "floodgate", Writer: &out, ErrWriter: &errOut, Commands: []*cli.Command{benchCommand()}}
	err := app.Run(append([]string{"floodgate", "bench"}, args...))
	return out.String(), err
}

func TestBenchArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"kafka bad acks", []string{"kafka", "produce", "--acks", "2", "--records", "1"}, "--acks"},
		{"kafka bad clients", []string{"kafka", "produce", "--clients", "1,x", "--records", "1"}, "--clients"},
		{"kafka no amount", []string{"kafka", "produce"}, "--records or --duration"},
		{"kafka bad compression", []string{"kafka", "produce", "--records", "1", "--compression", "br"}, "--compression"},
		{"kafka consume needs records", []string{"kafka", "consume", "--duration", "1s"}, "--records"},
		{"http bad url", []string{"http", "--url", "ftp://x"}, "--url"},
		{"http bad rate", []string{"http", "--rate", "-5"}, "--rate"},
		{"http zero conns", []string{"http", "--connections", "0"}, "--connections"},
		{"conns bad count", []string{"conns", "--count", "0"}, "--count"},
		{"conns flood two counts", []string{"conns", "--flood", "--count", "1,2"}, "one --count"},
		{"conns flood no probe", []string{"conns", "--flood", "--count", "10", "--target", "127.0.0.1:1"}, "--probe-url"},
		{"conns bad target", []string{"conns", "--count", "1", "--target", "nope"}, "--target"},
		{"overload no limit", []string{"overload"}, "--limit"},
		{"overload bad kind", []string{"overload", "--limit", "10", "--kind", "x"}, "--kind"},
		{"overload bad multipliers", []string{"overload", "--limit", "10", "--multipliers", "0"}, "--multipliers"},
		{"bad plot", []string{"http", "--url", "http://127.0.0.1:1/", "--rate", "1", "--duration", "1ms", "--plot", "x.txt", "--quiet"}, ".json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runBenchCLI(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one naming %q", err, tt.wantErr)
			}
		})
	}
}

func TestBenchCLISmoke(t *testing.T) {
	srv := testserver.Start(t)
	dir := t.TempDir()
	url := "http://" + srv.HTTPAddr() + "/health"
	tests := []struct {
		name   string
		args   []string
		plot   string
		expect string // a JSON key in the output
	}{
		{"http", []string{"http", "--url", url, "--connections", "2", "--rate", "100,200", "--duration", "200ms"}, "http.json", "achieved_rps"},
		{"kafka", []string{"kafka", "produce", "--brokers", srv.KafkaAddr(), "--clients", "1,2", "--records", "300"}, "kafka.json", "records_per_s"},
		{"conns", []string{"conns", "--target", srv.KafkaAddr(), "--count", "20", "--hold", "50ms",
			"--stats-url", "http://" + srv.HTTPAddr() + "/admin/stats"}, "conns.json", "rss_per_conn_bytes"},
		{"flood", []string{"conns", "--flood", "--target", srv.KafkaAddr(), "--count", "30", "--probe-url", url,
			"--before", "100ms", "--during", "100ms"}, "flood.json", "new_client_served_after_ms"},
		{"overload", []string{"overload", "--url", url, "--limit", "100", "--multipliers", "1", "--step", "200ms", "--connections", "2"}, "overload.json", "goodput_rps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plot := filepath.Join(dir, tt.plot)
			out, err := runBenchCLI(t, append(tt.args, "--json", "--plot", plot)...)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid([]byte(out)) || !strings.Contains(out, tt.expect) {
				t.Fatalf("output is not the expected JSON:\n%s", out)
			}
			if st, err := os.Stat(plot); err != nil || st.Size() == 0 {
				t.Fatalf("no chart: %v", err)
			}
		})
	}
	// The table form.
	out, err := runBenchCLI(t, "http", "--url", url, "--connections", "1", "--rate", "50", "--duration", "100ms", "--quiet")
	if err != nil || !strings.Contains(out, "achieved/s") {
		t.Fatalf("table output %q, %v", out, err)
	}
}
