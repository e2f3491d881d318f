package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/floodgate/floodgate/bench"
)

type options struct {
	floodgate, md, charts, gobench, only string
	runs                                 int
	quick                                bool
	// floodPin is "SERVER-CPUS/LOAD-CPUS" (e.g. "0/1"): the flood section
	// pins each server to the first CPUs and itself, its flood holders and
	// its probe to the others; empty: no pinning.
	floodPin string
}

// suite is one run of the standard suite.
type suite struct {
	o        options
	dir      string
	self     string
	inMemory bool
	sections map[string]string
	procs    []*bench.Proc
	progress *bench.Progress
	// ceiling is the loopback iperf3 figure (MB/s), 0 when unmeasured.
	ceiling float64
}

func (s *suite) want(name string) bool {
	if s.o.only == "" {
		return true
	}
	for _, n := range strings.Split(s.o.only, ",") {
		if strings.TrimSpace(n) == name {
			return true
		}
	}
	return false
}

func (s *suite) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench suite: "+format+"\n", args...)
}

func run(ctx context.Context, o options) error {
	if o.runs < 1 {
		return fmt.Errorf("--runs=%d: must be at least 1", o.runs)
	}
	fg, err := filepath.Abs(o.floodgate)
	if err != nil {
		return err
	}
	if _, err := os.Stat(fg); err != nil {
		return fmt.Errorf("--floodgate %s: %w (run make build)", o.floodgate, err)
	}
	o.floodgate = fg
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("own executable: %w", err)
	}
	dir, err := os.MkdirTemp("", "floodgate-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// nginx workers run as nobody and read their body file from here.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	if _, err := bench.RaiseNoFile(); err != nil {
		return err
	}
	if err := os.MkdirAll(o.charts, 0o755); err != nil {
		return fmt.Errorf("charts dir: %w", err)
	}
	s := &suite{o: o, dir: dir, self: self, sections: map[string]string{}, progress: bench.NewProgress(os.Stderr)}
	s.inMemory = bench.HasFlag(fg, "--in-memory")
	defer s.stopAll()
	steps := []struct {
		name string
		fn   func(context.Context) (string, error)
	}{
		{"iperf", s.iperf},
		{"gobench", s.goBench},
		{"kafka", s.kafka},
		{"limits", s.limitsCost},
		{"http", s.http},
		{"conns", s.conns},
		{"flood", s.flood},
		{"overload", s.overload},
		{"gateway", s.gateway},
	}
	start := time.Now()
	for _, st := range steps {
		if !s.want(st.name) || ctx.Err() != nil {
			continue
		}
		t0 := time.Now()
		s.logf("%s ...", st.name)
		md, err := st.fn(ctx)
		s.stopAll()
		if err != nil {
			s.logf("%s failed: %v", st.name, err)
			md = fmt.Sprintf("_Not measured in this run: %s._\n", err)
		}
		s.sections[st.name] = md
		s.logf("%s done in %.0fs", st.name, time.Since(t0).Seconds())
	}
	if o.only == "" {
		// A partial run (--only) leaves the record of the last full run.
		s.sections["run"] = s.runInfo(time.Since(start))
	}
	if err := rewriteMarkdown(o.md, s.sections); err != nil {
		return err
	}
	s.logf("wrote %s and %s in %.0fs", o.md, o.charts, time.Since(start).Seconds())
	return ctx.Err()
}

func (s *suite) runInfo(took time.Duration) string {
	host, _ := os.Hostname()
	_ = host
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	nginxV, _ := exec.Command("nginx", "-v").CombinedOutput()
	wrkV, _ := exec.Command("wrk", "--version").CombinedOutput()
	wv := strings.SplitN(strings.TrimSpace(string(wrkV)), "\n", 2)[0]
	var b strings.Builder
	fmt.Fprintf(&b, "Last run: %s, %d CPUs, Linux %s, %s, floodgate storage: %s, %d runs per comparison (medians), %.0f s in all.\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), strings.TrimSpace(string(kernel)), runtime.Version(),
		map[bool]string{true: "`--in-memory`", false: "default"}[s.inMemory], s.o.runs, took.Seconds())
	fmt.Fprintf(&b, "Peers: %s; %s; franz-go kfake (in-memory Go broker, own process); Go net/http (own process).\n",
		strings.TrimSpace(string(nginxV)), wv)
	fmt.Fprintf(&b, "\nCommand: `make bench` (= `go build -o bin/bench-suite ./bench/suite && bin/bench-suite --floodgate bin/floodgate --runs %d`).\n", s.o.runs)
	return b.String()
}

// track remembers a process so the suite always stops it.
func (s *suite) track(p *bench.Proc) *bench.Proc {
	s.procs = append(s.procs, p)
	return p
}

func (s *suite) stopAll() {
	for _, p := range s.procs {
		p.Stop()
	}
	s.procs = nil
}

func port() int {
	p, err := bench.FreePort()
	if err != nil {
		panic(err)
	}
	return p
}

// server is one started server under test.
type server struct {
	name      string
	proc      *bench.Proc
	kafka     string // host:port, Kafka servers
	url       string // http URL of its 200 route, HTTP servers
	statsURL  string
	cmdString string
}

func (sv *server) probe() bench.ServerProbe { return bench.ServerProbe{PID: sv.proc.PID()} }

// floodgate starts the floodgate binary with extra flags.
func (s *suite) startFloodgate(name string, extra ...string) (*server, error) {
	kp, hp := port(), port()
	argv := bench.FloodgateArgs(s.o.floodgate, kp, hp, s.inMemory, extra...)
	p, err := bench.StartProc(name, filepath.Join(s.dir, name+"-"+strconv.Itoa(hp)+".log"), argv...)
	if err != nil {
		return nil, err
	}
	s.track(p)
	sv := &server{name: name, proc: p, kafka: fmt.Sprintf("127.0.0.1:%d", kp),
		url:       fmt.Sprintf("http://127.0.0.1:%d/health", hp),
		statsURL:  fmt.Sprintf("http://127.0.0.1:%d/admin/stats", hp),
		cmdString: "floodgate " + strings.Join(argv[1:], " ")}
	if err := bench.WaitHTTP(sv.url, 15*time.Second); err != nil {
		log, _ := os.ReadFile(p.Log)
		return nil, fmt.Errorf("%s: %w\n%s", name, err, log)
	}
	return sv, nil
}

func (s *suite) startKfake() (*server, error) {
	kp := port()
	p, err := bench.StartProc("kfake", filepath.Join(s.dir, "kfake.log"), s.self, "peer", "kfake", strconv.Itoa(kp))
	if err != nil {
		return nil, err
	}
	s.track(p)
	addr := fmt.Sprintf("127.0.0.1:%d", kp)
	if err := bench.WaitTCP(addr, 10*time.Second); err != nil {
		return nil, fmt.Errorf("kfake: %w", err)
	}
	return &server{name: "kfake", proc: p, kafka: addr, cmdString: "kfake.NewCluster(kfake.Ports(PORT), kfake.NumBrokers(1)) in its own process"}, nil
}

func (s *suite) startNetHTTP() (*server, error) {
	return s.startHTTPPeer("nethttp", "net/http", "http.Server (Go "+runtime.Version()+") in its own process")
}

func (s *suite) startRawGnet() (*server, error) {
	return s.startHTTPPeer("gnet", "raw gnet", "a bare gnet v2 server answering every request head with a fixed 200 (bench.ServeRawGnet), in its own process")
}

// startHTTPPeer starts the HTTP peer kind (`suite peer KIND ADDR`) on a
// free port and waits until it answers /health; name labels its tables,
// cmd says what it runs.
func (s *suite) startHTTPPeer(kind, name, cmd string) (*server, error) {
	addr := fmt.Sprintf("127.0.0.1:%d", port())
	p, err := bench.StartProc(kind, filepath.Join(s.dir, kind+".log"), s.self, "peer", kind, addr)
	if err != nil {
		return nil, err
	}
	s.track(p)
	url := "http://" + addr + "/health"
	if err := bench.WaitHTTP(url, 10*time.Second); err != nil {
		return nil, fmt.Errorf("%s peer: %w", name, err)
	}
	return &server{name: name, proc: p, url: url, cmdString: cmd}, nil
}

func (s *suite) startNginx(workers, limitRate int) (*server, error) {
	hp := port()
	d := filepath.Join(s.dir, fmt.Sprintf("nginx-%d", hp))
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, err
	}
	p, url, err := bench.StartNginx(d, bench.NginxConfig{Port: hp, Workers: workers, LimitRate: limitRate})
	if err != nil {
		return nil, err
	}
	s.track(p)
	return &server{name: "nginx", proc: p, url: url,
		cmdString: fmt.Sprintf("nginx, worker_processes %d, `return 200` (config generated by bench.WriteNginx)", workers)}, nil
}

// iperf measures the loopback ceiling with iperf3.
func (s *suite) iperf(ctx context.Context) (string, error) {
	bin, err := exec.LookPath("iperf3")
	if err != nil {
		return "", fmt.Errorf("iperf3 is not installed (apt-get install -y iperf3)")
	}
	p := port()
	srv, err := bench.StartProc("iperf3", filepath.Join(s.dir, "iperf3.log"), bin, "-s", "-B", "127.0.0.1", "-p", strconv.Itoa(p))
	if err != nil {
		return "", err
	}
	s.track(srv)
	if err := bench.WaitTCP(fmt.Sprintf("127.0.0.1:%d", p), 5*time.Second); err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, bin, "-c", "127.0.0.1", "-p", strconv.Itoa(p), "-t", "3", "-J").Output()
	if err != nil {
		return "", fmt.Errorf("iperf3 client: %w", err)
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return "", fmt.Errorf("iperf3 JSON: %w", err)
	}
	bps := r.End.SumReceived.BitsPerSecond
	s.ceiling = bps / 8 / 1e6
	return fmt.Sprintf("Loopback ceiling, this run: **%.1f Gbit/s (%s MB/s)**, one TCP stream (`iperf3 -c 127.0.0.1 -t 3`). No throughput figure below can exceed it.\n",
		bps/1e9, bench.FormatFloat(s.ceiling)), nil
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+([\d.]+) ns/op(.*)$`)

// goBench tabulates `go test -bench` output (medians over -count).
func (s *suite) goBench(ctx context.Context) (string, error) {
	var out []byte
	cmd := "go test -run '^$' -bench . -benchmem -count 5 ./codec/... ./loop/ ./limits/"
	if s.o.gobench != "" {
		b, err := os.ReadFile(s.o.gobench)
		if err != nil {
			return "", fmt.Errorf("--gobench: %w", err)
		}
		out = b
	} else {
		count := "3"
		if s.o.quick {
			count = "1"
		}
		cmd = "go test -run '^$' -bench . -benchmem -count " + count + " ./codec/... ./loop/"
		b, err := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", ".", "-benchmem", "-count", count, "./codec/...", "./loop/").CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("go test -bench: %v\n%s", err, b)
		}
		out = b
	}
	type agg struct {
		pkg           string
		ns, by, alloc []float64
		extra         string
	}
	var order []string
	m := map[string]*agg{}
	pkg := ""
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimPrefix(rest, "github.com/floodgate/floodgate/")
			continue
		}
		mm := benchLine.FindStringSubmatch(line)
		if mm == nil {
			continue
		}
		key := pkg + " " + mm[1]
		a := m[key]
		if a == nil {
			a = &agg{pkg: pkg}
			m[key] = a
			order = append(order, key)
		}
		ns, _ := strconv.ParseFloat(mm[3], 64)
		a.ns = append(a.ns, ns)
		f := strings.Fields(mm[4])
		for i := 0; i+1 < len(f); i += 2 {
			v, _ := strconv.ParseFloat(f[i], 64)
			switch f[i+1] {
			case "B/op":
				a.by = append(a.by, v)
			case "allocs/op":
				a.alloc = append(a.alloc, v)
			case "MB/s":
				a.extra = fmt.Sprintf("%s MB/s", f[i])
			}
		}
	}
	if len(order) == 0 {
		return "", fmt.Errorf("no benchmark lines in the go test output")
	}
	t := &bench.Table{Header: []string{"package", "benchmark", "ns/op (median)", "B/op", "allocs/op", "throughput"}}
	for _, k := range order {
		a := m[k]
		t.Add(a.pkg, strings.TrimPrefix(strings.Fields(k)[1], "Benchmark"), bench.Median(a.ns), bench.Median(a.by), bench.Median(a.alloc), a.extra)
	}
	return fmt.Sprintf("Command: `%s`\n\n%s", cmd, t.Markdown()), nil
}
