package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// HoldSpec says which idle connections one process opens.
type HoldSpec struct {
	// Target is the host:port to connect to.
	Target string
	// Count is the number of connections.
	Count int
	// FirstIndex numbers this process's first connection in the whole
	// run, so that processes use disjoint source addresses.
	FirstIndex int
	// PerIP is the number of connections per source address; addresses
	// are taken in order from 127.1.0.1 upward through 127.0.0.0/8.
	PerIP int
	// DialTimeout bounds one connect.
	DialTimeout time.Duration
	// Concurrency is the number of connects in flight.
	Concurrency int
	// OpenFor, when > 0, stops opening after this long (flood mode).
	OpenFor time.Duration
	// Targets, when set, spread the connections round robin over these
	// host:ports (connection i goes to Targets[i%len]) instead of Target.
	Targets []string
	// KafkaHello sends a Kafka Metadata request (v1, no topics) on each
	// connection and waits for its answer before counting it opened: a
	// gateway assigns an upstream connection on a client's first request.
	KafkaHello bool
	// TLSCAFile, when set, makes every connection a TLS one (handshake
	// done before it counts as opened), verified with these CAs.
	TLSCAFile string
	// Nice, when > 0, runs holder processes (not this process's own
	// holder) at this niceness (bench.LowerPriority).
	Nice int
}

// Validate checks the spec.
func (s *HoldSpec) Validate() error {
	if _, _, err := net.SplitHostPort(s.Target); err != nil {
		return fmt.Errorf("--target %q: %w", s.Target, err)
	}
	for _, t := range s.Targets {
		if _, _, err := net.SplitHostPort(t); err != nil {
			return fmt.Errorf("--targets: %q: %w", t, err)
		}
	}
	if s.Count < 1 || s.Count > 10_000_000 {
		return fmt.Errorf("--count=%d: must be between 1 and 10000000", s.Count)
	}
	if s.PerIP < 1 || s.PerIP > 60000 {
		return fmt.Errorf("--per-ip=%d: must be between 1 and 60000", s.PerIP)
	}
	if (s.FirstIndex+s.Count)/s.PerIP >= 250*65536 {
		return fmt.Errorf("%d connections at %d per address do not fit in 127.1.0.0-127.250.255.255", s.FirstIndex+s.Count, s.PerIP)
	}
	if s.Nice < 0 || s.Nice > 19 {
		return fmt.Errorf("--nice=%d: must be between 0 and 19", s.Nice)
	}
	if s.Concurrency < 1 {
		return fmt.Errorf("--concurrency=%d: must be at least 1", s.Concurrency)
	}
	return nil
}

// SourceIP returns the source address of connection i: PerIP connections
// per address, from 127.1.0.1 upward.
func SourceIP(i, perIP int) net.IP {
	n := i/perIP + 1
	return net.IPv4(127, byte(1+n/65536), byte(n/256%256), byte(n%256))
}

// holder opens and holds idle connections in this process.
type holder struct {
	spec           HoldSpec
	mu             sync.Mutex
	conns          []net.Conn
	opened, failed atomic.Int64
	firstErr       atomic.Value
	done           atomic.Bool // open has returned
	closed         bool        // under mu: close has run
}

// open connects spec.Count connections (or until OpenFor passes) and
// returns when every attempt has ended.
func (h *holder) open(ctx context.Context) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var deadline time.Time
	if h.spec.OpenFor > 0 {
		deadline = time.Now().Add(h.spec.OpenFor)
	}
	h.mu.Lock()
	h.conns = make([]net.Conn, 0, min(h.spec.Count, 1<<16))
	h.mu.Unlock()
	tlsCfg, err := tlsClientConfig(h.spec.TLSCAFile)
	if err != nil {
		h.failed.Add(int64(h.spec.Count))
		h.firstErr.CompareAndSwap(nil, err)
		return
	}
	for w := 0; w < h.spec.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= h.spec.Count || (!deadline.IsZero() && time.Now().After(deadline)) {
					return
				}
				d := net.Dialer{Timeout: h.spec.DialTimeout,
					LocalAddr: &net.TCPAddr{IP: SourceIP(h.spec.FirstIndex+i, h.spec.PerIP)}}
				target := h.spec.Target
				if len(h.spec.Targets) > 0 {
					target = h.spec.Targets[(h.spec.FirstIndex+i)%len(h.spec.Targets)]
				}
				c, err := d.DialContext(ctx, "tcp", target)
				if err == nil && tlsCfg != nil {
					c, err = tlsHandshake(ctx, c, tlsCfg, h.spec.DialTimeout)
				}
				if err == nil && h.spec.KafkaHello {
					if err = kafkaHello(c, int32(i), h.spec.DialTimeout); err != nil {
						_ = c.Close()
					}
				}
				if err != nil {
					h.failed.Add(1)
					h.firstErr.CompareAndSwap(nil, err)
					continue
				}
				h.mu.Lock()
				if h.closed {
					h.mu.Unlock()
					_ = c.Close()
					return
				}
				h.conns = append(h.conns, c)
				h.mu.Unlock()
				h.opened.Add(1)
			}
		}()
	}
	wg.Wait()
}

func (h *holder) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, c := range h.conns {
		_ = c.Close()
	}
	h.conns = nil
}

// RunHoldChild is the body of a child process: it opens the connections
// of spec, writes "progress OPENED FAILED" lines and a final
// "ready OPENED FAILED" line to out, holds the connections until in reaches
// EOF (the parent closed it or died) and closes them.
func RunHoldChild(ctx context.Context, spec HoldSpec, in io.Reader, out io.Writer) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	if _, err := RaiseNoFile(); err != nil {
		return err
	}
	if spec.Nice > 0 {
		if err := LowerPriority(os.Getpid(), spec.Nice); err != nil {
			return err
		}
	}
	h := &holder{spec: spec}
	stop := make(chan struct{})
	var wmu sync.Mutex
	write := func(s string) {
		wmu.Lock()
		fmt.Fprintln(out, s)
		wmu.Unlock()
	}
	go every(stop, 200*time.Millisecond, func() {
		write(fmt.Sprintf("progress %d %d", h.opened.Load(), h.failed.Load()))
	})
	h.open(ctx)
	close(stop)
	msg := ""
	if e, ok := h.firstErr.Load().(error); ok {
		msg = " " + strings.ReplaceAll(e.Error(), "\n", " ")
	}
	write(fmt.Sprintf("ready %d %d%s", h.opened.Load(), h.failed.Load(), msg))
	_, _ = io.Copy(io.Discard, in)
	h.close()
	return nil
}

// Flags renders spec as child-process flags (the inverse of the flags of
// the hidden "bench conns-child" command).
func (s HoldSpec) Flags() []string {
	f := []string{
		"--target", s.Target, "--count", strconv.Itoa(s.Count), "--first-index", strconv.Itoa(s.FirstIndex),
		"--per-ip", strconv.Itoa(s.PerIP), "--dial-timeout", s.DialTimeout.String(),
		"--concurrency", strconv.Itoa(s.Concurrency), "--open-for", s.OpenFor.String(),
	}
	if len(s.Targets) > 0 {
		f = append(f, "--targets", strings.Join(s.Targets, ","))
	}
	if s.KafkaHello {
		f = append(f, "--kafka-hello")
	}
	if s.TLSCAFile != "" {
		f = append(f, "--tls-ca-file", s.TLSCAFile)
	}
	if s.Nice > 0 {
		f = append(f, "--nice", strconv.Itoa(s.Nice))
	}
	return f
}

// tlsClientConfig returns a client configuration trusting the CAs in
// caFile, or nil for plaintext ("").
func tlsClientConfig(caFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--tls-ca-file %s: no PEM certificate", caFile)
	}
	// X25519 first, as OpenSSL 3.0 (nginx's) offers it: Go's default
	// X25519MLKEM768 costs both sides more, and servers compared side by
	// side must do the same key exchange.
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256}}, nil
}

// tlsHandshake runs a client handshake on c within timeout; c is closed on
// failure. The server name is the target's host.
func tlsHandshake(ctx context.Context, c net.Conn, cfg *tls.Config, timeout time.Duration) (net.Conn, error) {
	timeout = PositiveOr(timeout, 5*time.Second)
	host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	cc := cfg.Clone()
	cc.ServerName = host
	tc := tls.Client(c, cc)
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}

// kafkaHello sends a Metadata v1 request asking for no topics and reads the
// answer (any answer counts).
func kafkaHello(c net.Conn, corr int32, timeout time.Duration) error {
	timeout = PositiveOr(timeout, 5*time.Second)
	_ = c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	const clientID = "bench"
	req := make([]byte, 0, 32)
	req = binary.BigEndian.AppendUint32(req, uint32(2+2+4+2+len(clientID)+4))
	req = binary.BigEndian.AppendUint16(req, 3) // Metadata
	req = binary.BigEndian.AppendUint16(req, 1) // v1
	req = binary.BigEndian.AppendUint32(req, uint32(corr))
	req = binary.BigEndian.AppendUint16(req, uint16(len(clientID)))
	req = append(req, clientID...)
	req = binary.BigEndian.AppendUint32(req, 0) // topics: none
	if _, err := c.Write(req); err != nil {
		return fmt.Errorf("kafka hello: %w", err)
	}
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		return fmt.Errorf("kafka hello answer: %w", err)
	}
	n := binary.BigEndian.Uint32(size[:])
	if n < 4 || n > 1<<20 {
		return fmt.Errorf("kafka hello answer: size %d", n)
	}
	if _, err := io.CopyN(io.Discard, c, int64(n)); err != nil {
		return fmt.Errorf("kafka hello answer: %w", err)
	}
	return nil
}

// Fleet is a set of connection holders: in this process, or in child
// processes when the count exceeds one process's share.
type Fleet struct {
	local    *holder
	children []*child
}

type child struct {
	cmd            *exec.Cmd
	stdin          io.WriteCloser
	opened, failed atomic.Int64
	ready          chan struct{}
	errText        atomic.Value
}

// StartFleet opens spec.Count connections: in this process when Count is
// at most perProcess or childCmd is empty, else split over
// ceil(Count/perProcess) children started as childCmd + spec flags.
func StartFleet(ctx context.Context, spec HoldSpec, perProcess int, childCmd []string) (*Fleet, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	f := &Fleet{}
	if spec.Count <= perProcess || len(childCmd) == 0 {
		if _, err := RaiseNoFile(); err != nil {
			return nil, err
		}
		f.local = &holder{spec: spec}
		go func() { f.local.open(ctx); f.local.done.Store(true) }()
		return f, nil
	}
	n := (spec.Count + perProcess - 1) / perProcess
	each := (spec.Count + n - 1) / n
	idx := spec.FirstIndex
	for left := spec.Count; left > 0; left -= each {
		cs := spec
		cs.Count = min(each, left)
		// Align each child to a fresh source address.
		cs.FirstIndex = (idx + spec.PerIP - 1) / spec.PerIP * spec.PerIP
		idx = cs.FirstIndex + cs.Count
		ch, err := startChild(childCmd, cs)
		if err != nil {
			f.Close()
			return nil, err
		}
		f.children = append(f.children, ch)
	}
	return f, nil
}

func startChild(childCmd []string, spec HoldSpec) (*child, error) {
	args := append(append([]string(nil), childCmd[1:]...), spec.Flags()...)
	cmd := exec.Command(childCmd[0], args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("child stdin: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("child stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start connection holder %s: %w", childCmd[0], err)
	}
	ch := &child{cmd: cmd, stdin: stdin, ready: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		readyClosed := false
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 3 {
				continue
			}
			o, _ := strconv.ParseInt(f[1], 10, 64)
			fl, _ := strconv.ParseInt(f[2], 10, 64)
			ch.opened.Store(o)
			ch.failed.Store(fl)
			if f[0] == "ready" && !readyClosed {
				if len(f) > 3 {
					ch.errText.Store(strings.Join(f[3:], " "))
				}
				readyClosed = true
				close(ch.ready)
			}
		}
		if !readyClosed {
			ch.errText.Store("holder process exited before it was ready")
			close(ch.ready)
		}
	}()
	return ch, nil
}

// Counts returns the connections opened and failed so far.
func (f *Fleet) Counts() (opened, failed int64) {
	if f.local != nil {
		return f.local.opened.Load(), f.local.failed.Load()
	}
	for _, c := range f.children {
		opened += c.opened.Load()
		failed += c.failed.Load()
	}
	return
}

// Ready reports whether every holder has finished opening.
func (f *Fleet) Ready() bool {
	if f.local != nil {
		return f.local.done.Load()
	}
	for _, c := range f.children {
		select {
		case <-c.ready:
		default:
			return false
		}
	}
	return true
}

// FirstError returns the first connect error seen, if any.
func (f *Fleet) FirstError() string {
	if f.local != nil {
		if e, ok := f.local.firstErr.Load().(error); ok {
			return e.Error()
		}
		return ""
	}
	for _, c := range f.children {
		if s, ok := c.errText.Load().(string); ok && s != "" {
			return s
		}
	}
	return ""
}

// Processes is the number of client processes holding connections.
func (f *Fleet) Processes() int {
	if f.local != nil {
		return 1
	}
	return len(f.children)
}

// Close closes every connection and waits for the children to exit.
func (f *Fleet) Close() {
	if f.local != nil {
		f.local.close()
	}
	for _, c := range f.children {
		_ = c.stdin.Close()
	}
	for _, c := range f.children {
		done := make(chan struct{})
		go func() { _ = c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
			<-done
		}
	}
	f.children = nil
}

// ConnsConfig configures an idle-connection run.
type ConnsConfig struct {
	Hold HoldSpec
	// PerProcess is the most connections one client process holds.
	PerProcess int
	// ChildCommand starts a holder process (the hidden conns-child
	// command); empty holds everything in this process.
	ChildCommand []string
	// Server is where RSS, connections and CPU are read.
	Server ServerProbe
	// HoldFor is how long the connections are held once open; the
	// server's CPU use is measured over it.
	HoldFor time.Duration
	// Timeout bounds the opening and accepting of all connections.
	Timeout  time.Duration
	Progress *Progress
}

// ConnsResult is the outcome of an idle-connection run.
type ConnsResult struct {
	Target    string `json:"target"`
	Requested int    `json:"requested"`
	Opened    int64  `json:"opened"`
	Failed    int64  `json:"failed"`
	FirstErr  string `json:"first_error,omitempty"`
	Processes int    `json:"client_processes"`
	// Accepted is the server's own count (its /admin/stats connections or
	// open descriptors) minus the count before the run.
	Accepted int64 `json:"accepted"`
	// AcceptS is the time from the first connect until the server
	// counted all connections (or the client side finished when the
	// server cannot be asked).
	AcceptS float64 `json:"accept_s"`
	// RSS before and while holding, and the difference per connection.
	RSSBeforeBytes int64   `json:"rss_before_bytes"`
	RSSHeldBytes   int64   `json:"rss_held_bytes"`
	RSSPerConn     float64 `json:"rss_per_conn_bytes"`
	// CPUPercent is the server's CPU use (100 = one core) while the
	// connections were held idle; -1 when unknown.
	CPUPercent float64 `json:"cpu_percent_idle"`
	HoldS      float64 `json:"hold_s"`
}

// Table returns the summary table.
func (r *ConnsResult) Table() *Table {
	t := &Table{Header: []string{"target", "requested", "opened", "failed", "accepted", "accept time", "RSS before", "RSS held", "RSS/conn", "idle CPU%"}}
	cpu := "-"
	if r.CPUPercent >= 0 {
		cpu = FormatFloat(r.CPUPercent)
	}
	t.Add(r.Target, r.Requested, r.Opened, r.Failed, r.Accepted, fmt.Sprintf("%.2f s", r.AcceptS),
		MiB(r.RSSBeforeBytes), MiB(r.RSSHeldBytes), fmt.Sprintf("%.0f B", r.RSSPerConn), cpu)
	return t
}

// MiB formats bytes as MiB.
func MiB(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func (c *ConnsConfig) defaults() {
	if c.PerProcess == 0 {
		c.PerProcess = 15000
	}
	if c.Hold.PerIP == 0 {
		c.Hold.PerIP = 50
	}
	if c.Hold.DialTimeout == 0 {
		c.Hold.DialTimeout = 5 * time.Second
	}
	if c.Hold.Concurrency == 0 {
		c.Hold.Concurrency = 64
	}
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Minute
	}
}

// RunConns opens, holds and measures idle connections.
func RunConns(ctx context.Context, cfg ConnsConfig) (*ConnsResult, error) {
	cfg.defaults()
	if err := cfg.Hold.Validate(); err != nil {
		return nil, err
	}
	if cfg.PerProcess < 1 {
		return nil, fmt.Errorf("--per-process=%d: must be at least 1", cfg.PerProcess)
	}
	if cfg.Hold.Count > cfg.PerProcess && len(cfg.ChildCommand) == 0 {
		return nil, fmt.Errorf("--count=%d is over --per-process=%d and no holder command is set", cfg.Hold.Count, cfg.PerProcess)
	}
	res := &ConnsResult{Target: cfg.Hold.Target, Requested: cfg.Hold.Count, CPUPercent: -1}
	baseConns, canCount := cfg.Server.Connections()
	if cfg.Server.Enabled() {
		rss, err := cfg.Server.RSS()
		if err != nil {
			return nil, err
		}
		res.RSSBeforeBytes = rss
	}
	start := time.Now()
	fleet, err := StartFleet(ctx, cfg.Hold, cfg.PerProcess, cfg.ChildCommand)
	if err != nil {
		return nil, err
	}
	defer fleet.Close()
	res.Processes = fleet.Processes()
	deadline := start.Add(cfg.Timeout)
	// The server's count stops short of the opened connections when it
	// refuses some (a connection limit): give up after it stalls.
	lastN, lastChange := int64(-1), time.Now()
	for {
		ready := fleet.Ready() // before the counts, which may still move until then
		o, fl := fleet.Counts()
		srvN := int64(-1)
		if canCount {
			if n, ok := cfg.Server.Connections(); ok {
				srvN = n - baseConns
			}
		}
		cfg.Progress.Update("conns %s: %.1fs opened %d failed %d server %d", cfg.Hold.Target, time.Since(start).Seconds(), o, fl, srvN)
		if ready && (!canCount || srvN >= o) {
			res.Accepted = srvN
			break
		}
		if srvN != lastN {
			lastN, lastChange = srvN, time.Now()
		}
		stalled := ready && time.Since(lastChange) > 3*time.Second
		if stalled || time.Now().After(deadline) || ctx.Err() != nil {
			res.Accepted = srvN
			if stalled {
				// The server's count stopped moving: it was done then.
				res.AcceptS = lastChange.Sub(start).Seconds()
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if res.AcceptS == 0 {
		res.AcceptS = time.Since(start).Seconds()
	}
	res.Opened, res.Failed = fleet.Counts()
	res.FirstErr = fleet.FirstError()
	// Let the server settle (GC, lazily touched pages) before reading.
	time.Sleep(time.Second)
	var cpu0 time.Duration
	cpuOK := cfg.Server.PID > 0
	if cpuOK {
		if cpu0, err = cfg.Server.CPU(); err != nil {
			cpuOK = false
		}
	}
	t0 := time.Now()
	hold := cfg.HoldFor
	for time.Since(t0) < hold && ctx.Err() == nil {
		cfg.Progress.Update("conns %s: holding %d for %.0fs", cfg.Hold.Target, res.Opened, hold.Seconds()-time.Since(t0).Seconds())
		time.Sleep(100 * time.Millisecond)
	}
	res.HoldS = time.Since(t0).Seconds()
	if cpuOK {
		if cpu1, err := cfg.Server.CPU(); err == nil && res.HoldS > 0 {
			res.CPUPercent = round3(100 * (cpu1 - cpu0).Seconds() / res.HoldS)
		}
	}
	if cfg.Server.Enabled() {
		rss, err := cfg.Server.RSS()
		if err != nil {
			return nil, err
		}
		res.RSSHeldBytes = rss
		held := res.Opened
		if canCount && res.Accepted > 0 && res.Accepted < held {
			held = res.Accepted
		}
		if held > 0 {
			res.RSSPerConn = math1(float64(rss-res.RSSBeforeBytes) / float64(held))
		}
	}
	cfg.Progress.Done()
	if res.Opened == 0 {
		return res, fmt.Errorf("no connection to %s could be opened: %s", cfg.Hold.Target, res.FirstErr)
	}
	return res, nil
}

func math1(f float64) float64 { return float64(int64(f*10)) / 10 }

// ErrNoProbe is returned by RunFlood without a probe URL.
var ErrNoProbe = errors.New("--probe-url is needed: the established client's requests")
