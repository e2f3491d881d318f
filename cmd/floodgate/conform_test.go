package main

import (
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// getFrom sends GET path to addr from the local IP src with one extra
// header, and returns the status and body.
func getFrom(t *testing.T, src, addr, path, header, value string) (int, string) {
	t.Helper()
	d := &net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	cl := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, DialContext: d.DialContext}}
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	if header != "" {
		req.Header.Set(header, value)
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestLimitsProfileSetsTheDocumentsPresetInTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	big := strings.Repeat("v", 3000) // over production's 2048-byte header value, under the default 4096
	tests := []struct {
		name          string
		args          []string
		maxConns      float64
		bigHeaderCode int
	}{
		{"no profile keeps the defaults", nil, 10000, 200},
		{"production sets the document's values", []string{"--limits-profile", "production"}, 5000, 431},
		{"an explicit flag wins over the profile", []string{"--limits-profile", "production", "--max-header-value-bytes", "4096", "--max-connections", "6000"}, 6000, 200},
		{"high-traffic sets the document's values", []string{"--limits-profile", "high-traffic"}, 0, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startFloodgate(t, 16384, append([]string{"--in-memory"}, tt.args...)...)
			if tt.maxConns > 0 {
				if v := metricValue(t, p.http, "floodgate_max_connections"); v != tt.maxConns {
					t.Fatalf("floodgate_max_connections = %v, want %v", v, tt.maxConns)
				}
			}
			if code, body := getFrom(t, "127.0.0.1", p.http, "/health", "X-Big", big); code != tt.bigHeaderCode {
				t.Fatalf("3000-byte header: %d %s, want %d", code, body, tt.bigHeaderCode)
			}
			_, stats, _ := get(p.http, "/admin/stats")
			if len(tt.args) > 0 && !strings.Contains(stats, tt.args[1]) {
				t.Fatalf("/admin/stats does not name the profile %s:\n%s", tt.args[1], stats)
			}
		})
	}
}

// TestRefusedConnectionsAreAnsweredByTheBinary: production's 50
// connections per client, reached by one IP, refuse its 51st connection
// with THROTTLING_QUOTA_EXCEEDED for kgo and a 503 naming the limit for
// HTTP, while other IPs are served.
func TestRefusedConnectionsAreAnsweredByTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	p := startFloodgate(t, 16384, "--in-memory", "--limits-profile", "production")
	const src = "127.0.0.5"
	var held []net.Conn
	d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	for i := 0; i < 50; i++ {
		c, err := d.Dial("tcp", p.kafka)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	defer closeAll(held)
	time.Sleep(200 * time.Millisecond) // every held connection admitted

	code, body := getFrom(t, src, p.http, "/health", "", "")
	var v struct {
		Limit      string `json:"limit"`
		Configured int64  `json:"configured"`
	}
	if err := json.Unmarshal([]byte(body), &v); code != 503 || err != nil || v.Limit != "max-connections-per-ip" || v.Configured != 50 {
		t.Fatalf("51st connection over HTTP: %d %s", code, body)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.kafka), kgo.RequestRetries(0),
		kgo.Dialer((&net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl); !errors.Is(err, kerr.ThrottlingQuotaExceeded) {
		t.Fatalf("51st connection for kgo: %v, want THROTTLING_QUOTA_EXCEEDED", err)
	}
	if code, _ := getFrom(t, "127.0.0.6", p.http, "/health", "", ""); code != 200 {
		t.Fatalf("another IP: %d", code)
	}
	if n := metricValue(t, p.http, "floodgate_connections_refused_answered_total"); n < 2 {
		t.Fatalf("refused connections answered: %v", n)
	}
	// The documents' meanings: the current count, and refused connections.
	if v := metricValue(t, p.http, "floodgate_connections_active "); v < 50 {
		t.Fatalf("floodgate_connections_active = %v with 50 connections held", v)
	}
	if v := metricValue(t, p.http, `floodgate_connection_limit_reached_total{reason="max_connections_per_ip"}`); v < 2 {
		t.Fatalf("connection_limit_reached_total{max_connections_per_ip} = %v", v)
	}
	if _, body, _ := get(p.http, "/metrics"); !strings.Contains(body, "# TYPE floodgate_connections_active gauge") {
		t.Fatal("/metrics does not type floodgate_connections_active as a gauge")
	}
}

// TestProcessMemoryLimitRefusesKafkaInTheBinary runs the binary over its
// process memory limit from the start, set by the former flag name
// --max-memory-bytes: new Kafka connections are refused with
// THROTTLING_QUOTA_EXCEEDED, HTTP requests with 503 naming the limit as
// --help shows it (max-process-memory-bytes), and the probes still answer.
func TestProcessMemoryLimitRefusesKafkaInTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	p := startFloodgate(t, 16384, "--in-memory", "--max-memory-bytes", "1048576") // healthy: /health answers
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.kafka), kgo.RequestRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl); !errors.Is(err, kerr.ThrottlingQuotaExceeded) {
		t.Fatalf("kgo over the process memory limit: %v, want THROTTLING_QUOTA_EXCEEDED", err)
	}
	if code, body := getFrom(t, "127.0.0.1", p.http, "/topics", "", ""); code != 503 || !strings.Contains(body, `"limit":"max-process-memory-bytes"`) {
		t.Fatalf("/topics over the limit: %d %s", code, body)
	}
	if code, _ := getFrom(t, "127.0.0.1", p.http, "/health", "", ""); code != 200 {
		t.Fatalf("/health over the limit: %d", code)
	}
	if v := metricValue(t, p.http, `floodgate_connections_rejected_total{reason="process_memory"}`); v == 0 {
		t.Fatal("refused Kafka connection not counted")
	}
	if !strings.Contains(p.stderr.String(), "process memory limit reached") {
		t.Fatalf("no WARN:\n%s", p.stderr.String())
	}
}

// TestHTTPViolationsAreLoggedByTheBinary: a 429 of the binary is logged
// at WARN with the limit, its values, the client's IP and the route.
func TestHTTPViolationsAreLoggedByTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	p := startFloodgate(t, 16384, "--in-memory", "--max-requests-per-second-per-client", "1")
	refused := 0
	for i := 0; i < 15; i++ {
		if code, _ := getFrom(t, "127.0.0.7", p.http, "/topics", "", ""); code == 429 {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("no 429")
	}
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(p.stderr.String(), "limit=max-requests-per-second-per-client") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{"level=WARN", "limit=max-requests-per-second-per-client", "configured=1", "client_ip=127.0.0.7", "route=topics"} {
		if !strings.Contains(p.stderr.String(), want) {
			t.Fatalf("log lacks %s:\n%s", want, p.stderr.String())
		}
	}
}

// TestByteRateAndQuotaKeyInTheBinary: the default quota key is client id
// and IP, and --produce-byte-rate slows a kgo producer to the rate.
func TestByteRateAndQuotaKeyInTheBinary(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	p := startFloodgate(t, 16384, "--in-memory", "--produce-byte-rate", "262144", "--produce-rate-limit", "0")
	if _, stats, _ := get(p.http, "/admin/stats"); !strings.Contains(stats, "client-id-and-ip") {
		t.Fatalf("the default quota key is not client-id-and-ip:\n%s", stats)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.kafka), kgo.DefaultProduceTopic("bytes"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	value := make([]byte, 64<<10)
	_, _ = crand.Read(value)
	start := time.Now()
	for i := 0; i < 16; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 2500*time.Millisecond {
		t.Fatalf("1 MiB produced in %v at 256 KiB/s", d)
	}
	if v := metricValue(t, p.http, `floodgate_byte_rate_throttled_total{api="Produce"}`); v == 0 {
		t.Fatal("byte-rate throttling not counted")
	}
}
