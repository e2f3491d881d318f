package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate/floodgate/internal/testproc"
)

func floodgateBinary(t *testing.T) string { return testproc.Binary(t) }

func TestMain(m *testing.M) { testproc.Main(m) }

// process is a floodgate child process.
type process struct {
	cmd    *exec.Cmd
	kafka  string
	http   string
	stderr *testproc.Buffer
	exited <-chan struct{} // closed once the child was reaped
}

// startFloodgate runs the binary under a shell that sets `ulimit -n`. The
// child binds 127.0.0.1:0 for both listeners and the test reads the ports it
// got from the line it prints (testproc.ListenArgs), so parallel packages cannot
// take a port between a look-up and the bind.
func startFloodgate(t *testing.T, nofile int, args ...string) *process {
	t.Helper()
	bin := floodgateBinary(t)
	p := &process{stderr: &testproc.Buffer{}}
	cmdline := fmt.Sprintf("ulimit -n %d && exec %q serve %s %s",
		nofile, bin, strings.Join(testproc.ListenArgs, " "), strings.Join(args, " "))
	p.cmd = exec.Command("bash", "-c", cmdline)
	p.cmd.Stderr = p.stderr
	p.cmd.Stdout = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("floodgate output:\n%s", p.stderr.String())
		}
	})
	var err error
	if p.kafka, p.http, err = testproc.ListenAddrs(p.stderr, exited, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	p.exited = exited
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := http.Get("http://" + p.http + "/health"); err == nil {
			resp.Body.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("floodgate did not become healthy:\n%s", p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *process) alive(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		t.Fatalf("floodgate exited:\n%s", p.stderr.String())
	default:
	}
	if p.cmd.Process.Signal(syscall.Signal(0)) != nil {
		t.Fatalf("floodgate exited:\n%s", p.stderr.String())
	}
}

// get fetches an HTTP path with a short timeout.
func get(addr, path string) (int, string, error) {
	cl := http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// metricValue returns the sum of the series of a metric whose line starts with prefix.
func metricValue(t *testing.T, addr, prefix string) float64 {
	t.Helper()
	_, body, err := get(addr, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, prefix) {
			var v float64
			fields := strings.Fields(line)
			fmt.Sscan(fields[len(fields)-1], &v)
			sum += v
		}
	}
	return sum
}

// flood opens n connections to addr from 127.0.0.2.. and holds them, 64
// connects at a time. A connect that does not complete within 300 ms is
// given up: at capacity floodgate stops accepting and cuts its backlog,
// so the kernel drops the flood's further SYNs, as at nginx's limit.
func flood(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
		next  atomic.Int64
	)
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				src := net.IPv4(127, 0, 0, byte(2+i%8))
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 300 * time.Millisecond}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					continue // the backlog may be full: that is part of a flood
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return conns
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

func produceAndFetch(t *testing.T, cl *kgo.Client, topic string, val string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(val)}).FirstErr(); err != nil {
		t.Fatalf("produce during flood: %v", err)
	}
}

func TestConnectionFloodNeverStopsFloodgate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and floods a child process")
	}
	const nofile = 256
	for _, target := range []string{"kafka", "http"} {
		t.Run(target, func(t *testing.T) {
			p := startFloodgate(t, nofile, "--max-connections", "100000", "--max-connections-per-ip", "1000", "--in-memory")
			if !strings.Contains(p.stderr.String(), "clamped") {
				t.Fatalf("no clamp warning for --max-connections above the open-files limit:\n%s", p.stderr.String())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			before, err := kgo.NewClient(kgo.SeedBrokers(p.kafka), kgo.DefaultProduceTopic("flood"), kgo.AllowAutoTopicCreation(),
				kgo.ConsumeTopics("flood"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				t.Fatal(err)
			}
			defer before.Close()
			produceAndFetch(t, before, "flood", "before")

			addr := p.kafka
			if target == "http" {
				addr = p.http
			}
			conns := flood(t, addr, 3*nofile)
			t.Logf("flood of %s: %d connections opened", target, len(conns))
			p.alive(t)
			produceAndFetch(t, before, "flood", "during")
			// The client connected before the flood also fetches both records.
			seen := 0
			for seen < 2 {
				fs := before.PollFetches(ctx)
				if err := fs.Err0(); err != nil {
					t.Fatalf("fetch during the %s flood: %v", target, err)
				}
				seen += len(fs.Records())
			}
			if target == "kafka" {
				if code, _, err := get(p.http, "/health"); err != nil || code != 200 {
					t.Fatalf("/health during the flood: %d %v", code, err)
				}
				if code, body, err := get(p.http, "/metrics"); err != nil || code != 200 || !strings.Contains(body, "floodgate_connections_rejected_total") {
					t.Fatalf("/metrics during the flood: %d %v", code, err)
				}
			}
			closeAll(conns)
			p.alive(t)

			deadline := time.Now().Add(15 * time.Second)
			for {
				after, err := kgo.NewClient(kgo.SeedBrokers(p.kafka), kgo.DefaultProduceTopic("flood"))
				if err == nil {
					pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
					err = after.ProduceSync(pctx, &kgo.Record{Value: []byte("after")}).FirstErr()
					pcancel()
					after.Close()
				}
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no new client served after the flood: %v", err)
				}
				time.Sleep(200 * time.Millisecond)
			}
			rejected := metricValue(t, p.http, "floodgate_connections_rejected_total")
			acceptErrs := metricValue(t, p.http, "floodgate_accept_errors_total")
			waits := metricValue(t, p.http, "floodgate_accept_waits_total")
			t.Logf("rejected=%v accept_errors=%v accept_waits=%v", rejected, acceptErrs, waits)
			if rejected == 0 && acceptErrs == 0 && waits == 0 {
				t.Fatal("neither rejected connections, accept errors nor accept waits were counted")
			}
			if _, body, _ := get(p.http, "/admin/stats"); !strings.Contains(body, `"max-connections"`) {
				t.Fatalf("admin stats lack the effective max-connections: %s", body)
			}
		})
	}
}

func TestMaxConnectionsAboveDescriptorLimitIsClamped(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a child process")
	}
	p := startFloodgate(t, 512, "--max-connections", "5000", "--in-memory")
	out := p.stderr.String()
	if !strings.Contains(out, "clamped") || !strings.Contains(out, "need_ulimit_n=5144") {
		t.Fatalf("clamp warning missing or incomplete:\n%s", out)
	}
	// 512 - 128 reserved - 16 HTTP reserve = 368
	if v := metricValue(t, p.http, "floodgate_max_connections"); v != 368 {
		t.Fatalf("floodgate_max_connections = %v, want 368", v)
	}
	_, stats, _ := get(p.http, "/admin/stats")
	if !strings.Contains(stats, `"value": "368"`) {
		t.Fatalf("admin stats do not show the effective value:\n%s", stats)
	}
}
