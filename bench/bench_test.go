package bench

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHistQuantiles(t *testing.T) {
	var h Hist
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 500 * time.Microsecond},
		{0.99, 990 * time.Microsecond},
		{0.999, 999 * time.Microsecond},
		{1, 1000 * time.Microsecond},
	}
	for _, tt := range tests {
		got := h.Quantile(tt.q)
		if d := float64(got-tt.want) / float64(tt.want); d < -0.04 || d > 0.04 {
			t.Errorf("Quantile(%v) = %v, want %v within 4%%", tt.q, got, tt.want)
		}
	}
	var empty Hist
	if empty.Quantile(0.99) != 0 || empty.Summary().Count != 0 {
		t.Error("an empty histogram reports non-zero")
	}
	var m Hist
	m.Merge(&h)
	m.Merge(&h)
	if m.Count() != 2000 || m.Quantile(0.5) != h.Quantile(0.5) {
		t.Errorf("merge: count %d p50 %v", m.Count(), m.Quantile(0.5))
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0}, {[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		if got := Median(tt.in); got != tt.want {
			t.Errorf("Median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestFormatFloat(t *testing.T) {
	tests := map[float64]string{0: "0", 0.1234: "0.123", 12.345: "12.35", 123.45: "123.5", 1234567.8: "1,234,568", -2500: "-2,500"}
	for in, want := range tests {
		if got := FormatFloat(in); got != want {
			t.Errorf("FormatFloat(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestHTTPConfigValidate(t *testing.T) {
	ok := HTTPConfig{URL: "http://127.0.0.1:1/health", Connections: 1, Rate: 1, Duration: time.Second, Pipeline: 1}
	tests := []struct {
		name    string
		mod     func(*HTTPConfig)
		wantErr string
	}{
		{"ok", func(*HTTPConfig) {}, ""},
		{"https", func(c *HTTPConfig) { c.URL = "https://x/" }, "--url"},
		{"no host", func(c *HTTPConfig) { c.URL = "http:///x" }, "--url"},
		{"zero conns", func(c *HTTPConfig) { c.Connections = 0 }, "--connections"},
		{"zero rate", func(c *HTTPConfig) { c.Rate = 0 }, "--rate"},
		{"zero duration", func(c *HTTPConfig) { c.Duration = 0 }, "--duration"},
		{"pipeline", func(c *HTTPConfig) { c.Pipeline = 0 }, "--pipeline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			checkErr(t, c.Validate(), tt.wantErr)
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Fatalf("error %v, want one naming %q", err, want)
	}
}

func TestKafkaConfigValidate(t *testing.T) {
	ok := KafkaConfig{Mode: "produce", Brokers: []string{"127.0.0.1:1"}, Clients: 1, RecordSize: 100, Records: 10, Acks: 1}
	tests := []struct {
		name    string
		mod     func(*KafkaConfig)
		wantErr string
	}{
		{"ok", func(*KafkaConfig) {}, ""},
		{"mode", func(c *KafkaConfig) { c.Mode = "x" }, "mode"},
		{"brokers", func(c *KafkaConfig) { c.Brokers = nil }, "--brokers"},
		{"clients", func(c *KafkaConfig) { c.Clients = 0 }, "--clients"},
		{"size", func(c *KafkaConfig) { c.RecordSize = -1 }, "--record-size"},
		{"roundtrip size", func(c *KafkaConfig) { c.Mode, c.RecordSize = "roundtrip", 4 }, "--record-size"},
		{"neither", func(c *KafkaConfig) { c.Records = 0 }, "--records or --duration"},
		{"consume needs records", func(c *KafkaConfig) { c.Mode, c.Records, c.Duration = "consume", 0, time.Second }, "--records"},
		{"acks", func(c *KafkaConfig) { c.Acks = 2 }, "--acks"},
		{"compression", func(c *KafkaConfig) { c.Compression = "brotli" }, "--compression"},
		{"zstd", func(c *KafkaConfig) { c.Compression = "zstd" }, ""},
		{"rate", func(c *KafkaConfig) { c.Rate = -1 }, "--rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			checkErr(t, c.Validate(), tt.wantErr)
		})
	}
}

func TestParseAcksAndMultipliers(t *testing.T) {
	for in, want := range map[string]int{"0": 0, "1": 1, "-1": -1, "all": -1} {
		if got, err := ParseAcks(in); err != nil || got != want {
			t.Errorf("ParseAcks(%q) = %d, %v", in, got, err)
		}
	}
	if _, err := ParseAcks("2"); err == nil {
		t.Error("ParseAcks(2) accepted")
	}
	tests := []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"1,2,5,10", 4, false}, {"2x, 5x", 2, false}, {"", 0, true}, {"0", 0, true}, {"a", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseMultipliers(tt.in)
		if (err != nil) != tt.wantErr || len(got) != tt.want {
			t.Errorf("ParseMultipliers(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func TestHoldSpecAndSourceIP(t *testing.T) {
	tests := []struct {
		name    string
		spec    HoldSpec
		wantErr string
	}{
		{"ok", HoldSpec{Target: "127.0.0.1:1", Count: 10, PerIP: 5, Concurrency: 1}, ""},
		{"target", HoldSpec{Target: "nope", Count: 10, PerIP: 5, Concurrency: 1}, "--target"},
		{"count", HoldSpec{Target: "127.0.0.1:1", Count: 0, PerIP: 5, Concurrency: 1}, "--count"},
		{"per-ip", HoldSpec{Target: "127.0.0.1:1", Count: 1, PerIP: 0, Concurrency: 1}, "--per-ip"},
		{"too many", HoldSpec{Target: "127.0.0.1:1", Count: 1_000_000, FirstIndex: 16_000_000, PerIP: 1, Concurrency: 1}, "do not fit"},
		{"concurrency", HoldSpec{Target: "127.0.0.1:1", Count: 1, PerIP: 1}, "--concurrency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkErr(t, tt.spec.Validate(), tt.wantErr) })
	}
	ips := map[int]string{0: "127.1.0.1", 49: "127.1.0.1", 50: "127.1.0.2", 50 * 255: "127.1.1.0", 50 * 65534: "127.1.255.255", 50 * 65535: "127.2.0.0"}
	for i, want := range ips {
		if got := SourceIP(i, 50).String(); got != want {
			t.Errorf("SourceIP(%d, 50) = %s, want %s", i, got, want)
		}
	}
}

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		code     int
		keep     bool
		wantErr  bool
		leftover string
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokNEXT", 200, true, false, "NEXT"},
		{"close", "HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 503, false, false, ""},
		{"http10", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 200, false, false, ""},
		{"http10 keep", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", 200, true, false, ""},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nNEXT", 200, true, false, "NEXT"},
		{"204", "HTTP/1.1 204 No Content\r\n\r\nNEXT", 204, true, false, "NEXT"},
		{"garbage", "SSH-2.0\r\n", 0, false, true, ""},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", 200, false, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tt.in))
			code, keep, err := readResponse(br)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			if tt.wantErr {
				return
			}
			rest, _ := br.Peek(br.Buffered())
			if code != tt.code || keep != tt.keep || string(rest) != tt.leftover {
				t.Errorf("got %d keep=%v rest %q", code, keep, rest)
			}
		})
	}
}

func TestChartSaveWritesJSONData(t *testing.T) {
	dir := t.TempDir()
	c := Chart{Title: "t", Series: []Series{{Name: "a", X: []float64{1, 2}, Y: []float64{1, 10}}}}
	if err := c.Save(filepath.Join(dir, "c.json")); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dir, "c.json")); err != nil || st.Size() == 0 {
		t.Fatalf("chart data not written: %v", err)
	}
	if err := c.Save(filepath.Join(dir, "c.png")); err == nil || !strings.Contains(err.Error(), "bench/suite chart") {
		t.Fatalf("a picture asked of the server binary: %v", err)
	}
}

func TestRewriteTableOutput(t *testing.T) {
	tb := &Table{Header: []string{"a", "b"}}
	tb.Add("x", 1.5)
	var sb strings.Builder
	tb.Fprint(&sb)
	if !strings.Contains(sb.String(), "x  1.50") {
		t.Errorf("table:\n%s", sb.String())
	}
	if md := tb.Markdown(); !strings.Contains(md, "| x | 1.50 |") {
		t.Errorf("markdown:\n%s", md)
	}
	var js strings.Builder
	if err := (Output{Stdout: &js, JSON: true}).Emit(map[string]int{"n": 1}, tb); err != nil || !strings.Contains(js.String(), `"n": 1`) {
		t.Errorf("JSON %q, %v", js.String(), err)
	}
}

func TestRunConnsNeedsHolderBeyondPerProcess(t *testing.T) {
	_, err := RunConns(context.Background(), ConnsConfig{Hold: HoldSpec{Target: "127.0.0.1:1", Count: 20}, PerProcess: 10})
	checkErr(t, err, "--per-process")
}

func TestPositiveOrKeepsPositiveValuesAndDefaultsTheRest(t *testing.T) {
	if got := PositiveOr(3*time.Second, time.Second); got != 3*time.Second {
		t.Errorf("positive duration: %v", got)
	}
	for _, v := range []time.Duration{0, -time.Second} {
		if got := PositiveOr(v, time.Second); got != time.Second {
			t.Errorf("%v: got %v, want the default", v, got)
		}
	}
	if got := PositiveOr(0.0, 2.5); got != 2.5 {
		t.Errorf("zero float: %v", got)
	}
}
