package attack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/floodgate/floodgate/bench"
	"github.com/floodgate/floodgate/internal/testcerts"
)

// Server is a server process started for one attack.
type Server struct {
	Target
	proc *bench.Proc
	// metrics reads /metrics from a good client's address (floodgate
	// only; nil for nginx).
	metrics *http.Client
}

// StartFloodgate starts bin (a floodgate binary) with default flags: only
// its two ports on 127.0.0.1, its data dir under dir, and --log-level warn;
// extra are more flags (an attack's ServerArgs).
// The child binds port 0 and prints the ports it got
// (--print-listen-addresses), so no other process can take a port between
// a look-up and the bind.
func StartFloodgate(bin, dir string, extra ...string) (*Server, error) {
	// The Kafka TLS listener too, for the TLS attacks (catalogue_tls.go),
	// except in gateway mode, which has none (its per-broker listeners
	// are plaintext).
	certs, err := testcerts.Generate(dir, "attack suite CA")
	if err != nil {
		return nil, err
	}
	flags := []string{"--data-dir", filepath.Join(dir, "data"), "--print-listen-addresses"}
	if !gatewayMode(extra) {
		flags = append(flags, "--kafka-tls-listen", "127.0.0.1:0", "--tls-cert-file", certs.CertFile, "--tls-key-file", certs.KeyFile)
	}
	args := bench.FloodgateArgs(bin, 0, 0, false, append(flags, extra...)...)
	p, err := bench.StartProc("floodgate", filepath.Join(dir, "floodgate.log"), args...)
	if err != nil {
		return nil, err
	}
	kafka, httpAddr, err := listenAddrs(p, 20*time.Second)
	if err != nil {
		p.Stop()
		return nil, err
	}
	s := &Server{
		Target: Target{Name: "floodgate", KafkaAddr: kafka, HTTPAddr: httpAddr, PID: p.PID(),
			KafkaTLSAddr: printedAddr(p, "kafka_tls"), TLS: certs.ClientConfig(false)},
		proc:    p,
		metrics: httpClientFrom(goodIP(3), 2*time.Second),
	}
	if err := bench.WaitHTTP("http://"+s.HTTPAddr+"/health", 20*time.Second); err != nil {
		s.Stop()
		return nil, fmt.Errorf("floodgate did not start: %w\n%s", err, s.Log())
	}
	if err := bench.WaitTCP(s.KafkaAddr, 5*time.Second); err != nil {
		s.Stop()
		return nil, fmt.Errorf("floodgate's Kafka port: %w", err)
	}
	return s, nil
}

// listenAddrs waits for the "floodgate listening kafka=… http=…" line that
// --print-listen-addresses writes to p's log once both listeners are bound.
func listenAddrs(p *bench.Proc, timeout time.Duration) (kafka, httpAddr string, err error) {
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(p.Log)
		addrs := printedAddrs(b)
		if addrs["kafka"] != "" && addrs["http"] != "" {
			return addrs["kafka"], addrs["http"], nil
		}
		if syscall.Kill(p.PID(), 0) != nil {
			return "", "", fmt.Errorf("floodgate exited before it listened:\n%s", b)
		}
		if time.Now().After(deadline) {
			return "", "", fmt.Errorf("floodgate did not print its listen addresses within %v:\n%s", timeout, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// printedAddr returns the address of listener (kafka_tls, ...) on the line
// --print-listen-addresses wrote (read by listenAddrs already), or "".
func printedAddr(p *bench.Proc, listener string) string {
	b, _ := os.ReadFile(p.Log)
	return printedAddrs(b)[listener]
}

// printedAddrs reads the listener=address fields of the "floodgate
// listening" lines of a log (the first address of each listener).
func printedAddrs(log []byte) map[string]string {
	addrs := map[string]string{}
	for _, line := range strings.Split(string(log), "\n") {
		rest, ok := strings.CutPrefix(line, "floodgate listening ")
		if !ok {
			continue
		}
		for _, f := range strings.Fields(rest) {
			if k, v, ok := strings.Cut(f, "="); ok && addrs[k] == "" {
				addrs[k] = v
			}
		}
	}
	return addrs
}

// StartNginx starts nginx on a free port with bench's generated
// configuration (2 workers, `return 200` on every path: request bodies are
// read and discarded by nginx itself).
func StartNginx(dir string) (*Server, error) {
	port, err := bench.FreePort()
	if err != nil {
		return nil, err
	}
	p, _, err := bench.StartNginx(dir, bench.NginxConfig{Port: port, Workers: 2})
	if err != nil {
		return nil, err
	}
	return &Server{Target: Target{Name: "nginx", HTTPAddr: fmt.Sprintf("127.0.0.1:%d", port), PID: p.PID()}, proc: p}, nil
}

// Stop ends the server and its workers at once (SIGKILL): a wedged server
// would only spend the grace period of a SIGTERM; Terminate measures that.
func (s *Server) Stop() {
	_ = syscall.Kill(-s.PID, syscall.SIGKILL)
	for i := 0; i < 200 && s.Alive(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

// Log returns the end of the server's output.
func (s *Server) Log() string {
	b, err := os.ReadFile(s.proc.Log)
	if err != nil {
		return ""
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Alive reports whether the server process still runs.
func (s *Server) Alive() bool { return bench.ServerProbe{PID: s.PID}.Alive() }

// RSS returns the server's resident set size (with nginx's workers).
func (s *Server) RSS() (int64, error) { return bench.ServerProbe{PID: s.PID}.RSS() }

// ResetRSSPeak resets the kernel's high-water mark of the server's
// resident set (bench.ServerProbe.ResetRSSPeak): the server is this
// harness's own child, so RSSPeak then sees every peak since, one between
// two samples of RSS or after the sampling stopped included.
func (s *Server) ResetRSSPeak() error { return bench.ServerProbe{PID: s.PID}.ResetRSSPeak() }

// RSSPeak returns the server's resident set high-water mark (VmHWM, with
// nginx's workers) since ResetRSSPeak.
func (s *Server) RSSPeak() (int64, error) { return bench.ServerProbe{PID: s.PID}.RSSPeak() }

// Terminate sends SIGTERM and returns how long the process took to exit,
// or an error when it had not exited after wait.
func (s *Server) Terminate(wait time.Duration) (time.Duration, error) {
	start := time.Now()
	if err := syscall.Kill(s.PID, syscall.SIGTERM); err != nil {
		return 0, fmt.Errorf("SIGTERM %d: %w", s.PID, err)
	}
	for time.Since(start) < wait {
		if !s.Alive() {
			return time.Since(start), nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start), fmt.Errorf("still running %v after SIGTERM", wait)
}

// errNoMetrics is returned by Metric for a server without floodgate's
// /metrics.
var errNoMetrics = errors.New("no /metrics")

// Metric returns the sum of the series of a metric (name, optionally with
// labels) from /metrics.
func (s *Server) Metric(ctx context.Context, name string) (float64, error) {
	vs, err := s.Metrics(ctx, name)
	if err != nil {
		return 0, err
	}
	return vs[name], nil
}

// Metrics reads /metrics once and returns the sum of the series of each of
// names (a name, optionally with labels): one read gives values of one
// moment, and costs the server one answer however many are wanted.
func (s *Server) Metrics(ctx context.Context, names ...string) (map[string]float64, error) {
	if s.metrics == nil {
		return nil, errNoMetrics
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.HTTPAddr+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("read /metrics: %w", err)
	}
	resp, err := s.metrics.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read /metrics: status %d", resp.StatusCode)
	}
	sums := make(map[string]float64, len(names))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, name := range names {
			if !strings.HasPrefix(line, name) || len(line) == len(name) || (line[len(name)] != ' ' && line[len(name)] != '{') {
				continue
			}
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				return nil, fmt.Errorf("metric %s: %q: %w", name, line, err)
			}
			sums[name] += v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read /metrics: %w", err)
	}
	for _, name := range names {
		if _, found := sums[name]; !found {
			return nil, fmt.Errorf("metric %s not in /metrics", name)
		}
	}
	return sums, nil
}

// httpClientFrom returns an HTTP client whose connections come from ip,
// keeping one connection alive.
func httpClientFrom(ip net.IP, timeout time.Duration) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: timeout}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext: d.DialContext, MaxIdleConns: 1, MaxIdleConnsPerHost: 1, DisableCompression: true,
	}}
}
