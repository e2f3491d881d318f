package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// HTTPConfig configures an open-loop HTTP/1.1 load run.
type HTTPConfig struct {
	// URL is the target (http:// only), e.g. http://127.0.0.1:9094/health.
	URL string
	// Connections is the number of keep-alive connections.
	Connections int
	// Rate is the offered load in requests/s (constant arrival rate).
	Rate float64
	// Duration is how long requests are offered.
	Duration time.Duration
	// Pipeline is the number of requests one connection may have
	// outstanding (1 = no pipelining).
	Pipeline int
	// Method is the request method (GET unless set).
	Method string
	// Timeout bounds one request (from its intended start); 0 means 10s.
	Timeout time.Duration
	// Progress, when set, receives a status line while the run goes on.
	Progress *Progress
}

// Validate checks the configuration.
func (c *HTTPConfig) Validate() error {
	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("--url %q: %w", c.URL, err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("--url %q: want http://host:port/path", c.URL)
	}
	if c.Connections < 1 || c.Connections > 1_000_000 {
		return fmt.Errorf("--connections=%d: must be between 1 and 1000000", c.Connections)
	}
	if c.Rate <= 0 {
		return fmt.Errorf("--rate=%v: must be > 0 requests/s", c.Rate)
	}
	if c.Duration <= 0 || c.Duration > time.Hour {
		return fmt.Errorf("--duration=%v: must be between 0 and 1h", c.Duration)
	}
	if c.Pipeline < 1 || c.Pipeline > 1024 {
		return fmt.Errorf("--pipeline=%d: must be between 1 and 1024", c.Pipeline)
	}
	return nil
}

// HTTPResult is the outcome of an HTTP run.
type HTTPResult struct {
	URL         string  `json:"url"`
	Connections int     `json:"connections"`
	Pipeline    int     `json:"pipeline"`
	OfferedRPS  float64 `json:"offered_rps"`
	DurationS   float64 `json:"duration_s"`
	// Sent is the number of requests written.
	Sent int64 `json:"sent"`
	// Completed is the number of responses of any status.
	Completed int64 `json:"completed"`
	// AchievedRPS is the responses that arrived within the run's Duration,
	// per second of it. Answers that arrive while the run drains after it
	// are in Completed and in the latency, not in the rate (else a backlog
	// an overloaded server clears late would be credited to the interval).
	AchievedRPS float64 `json:"achieved_rps"`
	// GoodputRPS is AchievedRPS counting only 2xx responses.
	GoodputRPS float64 `json:"goodput_rps"`
	// Latency is over every response; OK over 2xx responses only.
	// Latency runs from the request's intended start (open loop: queueing
	// in the client counts, so coordinated omission does not hide stalls).
	Latency Latency `json:"latency"`
	OK      Latency `json:"latency_2xx"`
	// Status counts responses by status code.
	Status map[int]int64 `json:"status"`
	// Errors counts requests without a response, by cause.
	Errors map[string]int64 `json:"errors"`
	// Unsent counts arrivals the generator could not send in time (every
	// connection was busy for longer than the timeout).
	Unsent int64 `json:"unsent"`
	// Reconnects counts connections re-established after a close.
	Reconnects int64 `json:"reconnects"`
}

// ErrorCount returns requests that did not end in 2xx.
func (r *HTTPResult) ErrorCount() int64 {
	var n int64
	for code, c := range r.Status {
		if code < 200 || code > 299 {
			n += c
		}
	}
	for _, c := range r.Errors {
		n += c
	}
	return n + r.Unsent
}

// Table returns the summary table.
func (r *HTTPResult) Table() *Table {
	t := &Table{Header: []string{"url", "conns", "offered/s", "achieved/s", "2xx/s", "p50", "p99", "p999", "errors"}}
	t.Add(r.URL, r.Connections, r.OfferedRPS, r.AchievedRPS, r.GoodputRPS,
		fmt.Sprintf("%.3f ms", r.Latency.P50MS), fmt.Sprintf("%.3f ms", r.Latency.P99MS),
		fmt.Sprintf("%.3f ms", r.Latency.P999MS), r.errorText())
	return t
}

func (r *HTTPResult) errorText() string {
	var parts []string
	codes := make([]int, 0, len(r.Status))
	for c := range r.Status {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		if c < 200 || c > 299 {
			parts = append(parts, fmt.Sprintf("%d:%d", c, r.Status[c]))
		}
	}
	keys := make([]string, 0, len(r.Errors))
	for k := range r.Errors {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s:%d", k, r.Errors[k]))
	}
	if r.Unsent > 0 {
		parts = append(parts, fmt.Sprintf("unsent:%d", r.Unsent))
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, " ")
}

// httpWorker is the state of one connection's goroutines.
type httpWorker struct {
	mu         sync.Mutex // status and errs: the reader and writer both count
	all, ok    Hist
	inTime     int64 // responses that arrived before the run's end
	okInTime   int64 // of those, 2xx
	status     map[int]int64
	errs       map[string]int64
	reconnects int64
}

func (w *httpWorker) fail(cause string) {
	w.mu.Lock()
	w.errs[cause]++
	w.mu.Unlock()
}

// RunHTTP offers cfg.Rate requests/s for cfg.Duration over
// cfg.Connections keep-alive connections and waits for the answers.
func RunHTTP(ctx context.Context, cfg HTTPConfig) (*HTTPResult, error) {
	if cfg.Pipeline == 0 {
		cfg.Pipeline = 1
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Method == "" {
		cfg.Method = "GET"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	u, _ := url.Parse(cfg.URL)
	path := u.RequestURI()
	req := []byte(fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: floodgate-bench\r\n\r\n", cfg.Method, path, u.Host))

	// Arrivals: one intended start time per request. The channel is the
	// client-side queue; arrivals that find it full are counted as unsent.
	qcap := int(cfg.Rate)
	qcap = min(max(qcap, 1024), 1<<20)
	arrivals := make(chan time.Time, qcap)
	var sent, done, unsent atomic.Int64

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	end := start.Add(cfg.Duration)
	workers := make([]*httpWorker, cfg.Connections)
	var wg sync.WaitGroup
	for i := range workers {
		w := &httpWorker{status: map[int]int64{}, errs: map[string]int64{}}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			runHTTPConn(ctx, u.Host, req, cfg, end, arrivals, w, &sent, &done)
		}()
	}

	var issued int64
	tick := time.NewTicker(time.Millisecond)
	for now := start; now.Before(end); now = <-tick.C {
		if ctx.Err() != nil {
			break
		}
		due := int64(now.Sub(start).Seconds() * cfg.Rate)
		for ; issued < due; issued++ {
			at := start.Add(time.Duration(float64(issued) / cfg.Rate * 1e9))
			select {
			case arrivals <- at:
			default:
				unsent.Add(1)
			}
		}
		cfg.Progress.Update("http %s: %.0fs/%.0fs offered %d sent %d done %d",
			cfg.URL, now.Sub(start).Seconds(), cfg.Duration.Seconds(), issued, sent.Load(), done.Load())
	}
	tick.Stop()
	close(arrivals)
	waitCh := make(chan struct{})
	go func() { wg.Wait(); close(waitCh) }()
	select {
	case <-waitCh:
	case <-time.After(cfg.Timeout + time.Second):
		cancel()
		<-waitCh
	}
	// Arrivals still queued when the drain timed out were never sent.
	for range arrivals {
		unsent.Add(1)
	}
	cfg.Progress.Done()

	res := &HTTPResult{URL: cfg.URL, Connections: cfg.Connections, Pipeline: cfg.Pipeline,
		OfferedRPS: cfg.Rate, DurationS: cfg.Duration.Seconds(), Status: map[int]int64{},
		Errors: map[string]int64{}, Sent: sent.Load(), Unsent: unsent.Load()}
	var all, ok Hist
	var inTime, okInTime int64
	for _, w := range workers {
		all.Merge(&w.all)
		ok.Merge(&w.ok)
		for k, v := range w.status {
			res.Status[k] += v
		}
		for k, v := range w.errs {
			res.Errors[k] += v
		}
		res.Reconnects += w.reconnects
		inTime += w.inTime
		okInTime += w.okInTime
	}
	res.Completed = int64(all.Count())
	res.AchievedRPS = float64(inTime) / cfg.Duration.Seconds()
	res.GoodputRPS = float64(okInTime) / cfg.Duration.Seconds()
	res.Latency = all.Summary()
	res.OK = ok.Summary()
	return res, nil
}

// runHTTPConn serves arrivals on one connection, reconnecting when the
// server closes it.
func runHTTPConn(ctx context.Context, addr string, req []byte, cfg HTTPConfig, end time.Time, arrivals <-chan time.Time, w *httpWorker, sent, done *atomic.Int64) {
	var d net.Dialer
	first := true
	var pending *time.Time // an arrival taken but not sent (connection broke)
	for {
		if ctx.Err() != nil {
			return
		}
		if !first {
			w.reconnects++
		}
		first = false
		dctx, dcancel := context.WithTimeout(ctx, cfg.Timeout)
		c, err := d.DialContext(dctx, "tcp", addr)
		dcancel()
		if err != nil {
			if pending != nil {
				w.fail("dial")
				pending = nil
			}
			// Take one arrival to report the failure, so a refused
			// server does not look like an idle one.
			select {
			case at, ok := <-arrivals:
				if !ok {
					return
				}
				_ = at
				w.fail("dial")
			case <-ctx.Done():
				return
			}
			select {
			case <-time.After(10 * time.Millisecond):
			case <-ctx.Done():
				return
			}
			continue
		}
		more := serveConn(ctx, c, req, cfg, end, arrivals, w, sent, done, &pending)
		c.Close()
		if !more {
			return
		}
	}
}

// serveConn runs one connection until the arrivals end (false) or the
// connection breaks (true).
func serveConn(ctx context.Context, c net.Conn, req []byte, cfg HTTPConfig, end time.Time, arrivals <-chan time.Time, w *httpWorker, sent, done *atomic.Int64, pending **time.Time) bool {
	// slots holds one token per request on the wire: the writer takes one
	// before it writes, the reader gives it back once the response is read
	// (or the request failed), so at most Pipeline requests are
	// outstanding. (A channel of the requests alone let one more out: the
	// reader takes a request off it before reading its response.)
	slots := make(chan struct{}, cfg.Pipeline)
	inflight := make(chan time.Time, cfg.Pipeline)
	readerDone := make(chan struct{})
	var closed atomic.Bool
	head := strings.EqualFold(cfg.Method, "HEAD")
	readOne := func(br *bufio.Reader, at time.Time) {
		if closed.Load() {
			w.fail("conn_closed")
			return
		}
		_ = c.SetReadDeadline(at.Add(cfg.Timeout))
		code, keep, err := readResponseTo(br, head)
		if err != nil {
			closed.Store(true)
			_ = c.Close()
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				w.fail("timeout")
			case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
				w.fail("conn_closed")
			default:
				w.fail("read")
			}
			return
		}
		now := time.Now()
		lat := now.Sub(at)
		ok := code >= 200 && code <= 299
		w.all.Record(lat)
		if ok {
			w.ok.Record(lat)
		}
		if now.Before(end) {
			w.inTime++
			if ok {
				w.okInTime++
			}
		}
		w.mu.Lock()
		w.status[code]++
		w.mu.Unlock()
		done.Add(1)
		if !keep {
			closed.Store(true)
			_ = c.Close()
		}
	}
	go func() {
		defer close(readerDone)
		br := bufio.NewReaderSize(c, 16<<10)
		for at := range inflight {
			readOne(br, at)
			<-slots
		}
	}()
	finish := func(more bool) bool {
		close(inflight)
		<-readerDone
		return more
	}
	for {
		var at time.Time
		if *pending != nil {
			at, *pending = **pending, nil
		} else {
			var ok bool
			select {
			case at, ok = <-arrivals:
				if !ok {
					return finish(false)
				}
			case <-ctx.Done():
				return finish(false)
			}
		}
		if closed.Load() {
			*pending = &at
			return finish(true)
		}
		if time.Since(at) > cfg.Timeout {
			w.fail("timeout")
			continue
		}
		// Blocks while Pipeline requests are outstanding.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return finish(false)
		}
		inflight <- at // never blocks: a slot bounds what it holds
		_ = c.SetWriteDeadline(at.Add(cfg.Timeout))
		if _, err := c.Write(req); err != nil {
			closed.Store(true)
			_ = c.Close()
			return finish(true)
		}
		sent.Add(1)
	}
}

// readResponse reads one HTTP/1.1 response and discards its body. It
// returns the status code and whether the connection stays open.
func readResponse(br *bufio.Reader) (code int, keepAlive bool, err error) {
	return readResponseTo(br, false)
}

// readResponseTo is readResponse for a response to a HEAD request when
// head is set: such a response has no body, whatever its Content-Length
// or Transfer-Encoding say.
func readResponseTo(br *bufio.Reader, head bool) (code int, keepAlive bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || string(line[:5]) != "HTTP/" {
		return 0, false, fmt.Errorf("bad status line %q", trimCRLF(line))
	}
	http10 := string(line[:8]) == "HTTP/1.0"
	code, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("bad status line %q", trimCRLF(line))
	}
	keepAlive = !http10
	length := int64(-1)
	chunked := false
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return code, false, err
		}
		h := trimCRLF(line)
		if len(h) == 0 {
			break
		}
		i := strings.IndexByte(h, ':')
		if i < 0 {
			continue
		}
		name, val := strings.ToLower(strings.TrimSpace(h[:i])), strings.TrimSpace(h[i+1:])
		switch name {
		case "content-length":
			length, err = strconv.ParseInt(val, 10, 64)
			if err != nil || length < 0 {
				return code, false, fmt.Errorf("bad Content-Length %q", val)
			}
		case "transfer-encoding":
			chunked = strings.Contains(strings.ToLower(val), "chunked")
		case "connection":
			v := strings.ToLower(val)
			if strings.Contains(v, "close") {
				keepAlive = false
			} else if strings.Contains(v, "keep-alive") {
				keepAlive = true
			}
		}
	}
	switch {
	case head:
		return code, keepAlive, nil
	case chunked:
		for {
			line, err = br.ReadSlice('\n')
			if err != nil {
				return code, false, err
			}
			sz := trimCRLF(line)
			if j := strings.IndexByte(sz, ';'); j >= 0 {
				sz = sz[:j]
			}
			n, perr := strconv.ParseInt(strings.TrimSpace(sz), 16, 64)
			if perr != nil {
				return code, false, fmt.Errorf("bad chunk size %q", sz)
			}
			if n == 0 {
				// trailers until an empty line
				for {
					line, err = br.ReadSlice('\n')
					if err != nil {
						return code, false, err
					}
					if len(trimCRLF(line)) == 0 {
						return code, keepAlive, nil
					}
				}
			}
			if _, err = br.Discard(int(n) + 2); err != nil {
				return code, false, err
			}
		}
	case length >= 0:
		_, err = br.Discard(int(length))
		return code, keepAlive, err
	case code == 204 || code == 304 || code < 200:
		return code, keepAlive, nil
	}
	// no length: body until close
	_, err = io.Copy(io.Discard, br)
	return code, false, err
}

func trimCRLF(b []byte) string {
	s := string(b)
	return strings.TrimRight(s, "\r\n")
}

// rawGnetAnswer is the raw gnet peer's answer to every request: the same
// JSON as floodgate's /health.
const rawGnetAnswer = "HTTP/1.1 200 OK\r\nServer: gnet\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"status\":\"ok\"}\n"

// rawGnet is a bare gnet v2 server: it answers every request head (up to
// its blank line) with rawGnetAnswer, without parsing or limits. It is
// the floor of what any HTTP server on gnet can cost on this machine.
type rawGnet struct {
	gnet.BuiltinEventEngine
	eng gnet.Engine
}

func (g *rawGnet) OnBoot(e gnet.Engine) gnet.Action {
	g.eng = e
	return gnet.None
}

func (g *rawGnet) OnTraffic(c gnet.Conn) gnet.Action {
	buf, _ := c.Peek(-1)
	n, used := 0, 0
	for {
		i := bytes.Index(buf[used:], []byte("\r\n\r\n"))
		if i < 0 {
			break
		}
		used += i + 4
		n++
	}
	if n == 0 {
		return gnet.None
	}
	_, _ = c.Discard(used)
	out := make([]byte, 0, n*len(rawGnetAnswer))
	for i := 0; i < n; i++ {
		out = append(out, rawGnetAnswer...)
	}
	_, _ = c.Write(out)
	return gnet.None
}

// ServeRawGnet runs the raw gnet peer on addr (event loops: one per
// core, as floodgate) until ctx ends.
func ServeRawGnet(ctx context.Context, addr string) error {
	if _, err := RaiseNoFile(); err != nil {
		return err
	}
	g := &rawGnet{}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = g.eng.Stop(sctx)
	}()
	if err := gnet.Run(g, "tcp://"+addr, gnet.WithMulticore(true), gnet.WithReusePort(false)); err != nil {
		return fmt.Errorf("raw gnet peer on %s: %w", addr, err)
	}
	return nil
}
