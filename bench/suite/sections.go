package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/floodgate/floodgate/bench"
	"github.com/floodgate/floodgate/bench/chart"
)

// kafkaCase is one Kafka measurement.
type kafkaCase struct {
	mode    string
	size    int
	records int64
	clients int
}

// standardKafkaCases are the four cells of the Kafka tables (produce and
// consume, 100 B and 10 KB records, 4 clients), a tenth of the records with
// --quick.
func (s *suite) standardKafkaCases() []kafkaCase {
	scale := int64(1)
	if s.o.quick {
		scale = 10
	}
	return []kafkaCase{
		{"produce", 100, 400_000 / scale, 4},
		{"produce", 10_000, 30_000 / scale, 4},
		{"consume", 100, 400_000 / scale, 4},
		{"consume", 10_000, 30_000 / scale, 4},
	}
}

func (c kafkaCase) command(brokers string) string {
	return fmt.Sprintf("floodgate bench kafka %s --brokers %s --clients %d --record-size %d --records %d --acks 1",
		c.mode, brokers, c.clients, c.size, c.records)
}

func (s *suite) runKafka(ctx context.Context, sv *server, c kafkaCase) (*bench.KafkaResult, error) {
	return bench.RunKafka(ctx, bench.KafkaConfig{Mode: c.mode, Brokers: []string{sv.kafka}, Clients: c.clients,
		RecordSize: c.size, Records: c.records, Acks: 1, Progress: s.progress})
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func (s *suite) kafka(ctx context.Context) (string, error) {
	fg, err := s.startFloodgate("floodgate")
	if err != nil {
		return "", err
	}
	kf, err := s.startKfake()
	if err != nil {
		return "", err
	}
	servers := []*server{fg, kf}
	cases := s.standardKafkaCases()
	t := &bench.Table{Header: []string{"case", "floodgate records/s", "floodgate MB/s", "floodgate p99", "kfake records/s", "kfake MB/s", "kfake p99", "floodgate / kfake"}}
	for _, c := range cases {
		rps := map[string][]float64{}
		mbs := map[string][]float64{}
		p99 := map[string][]float64{}
		for r := 0; r < s.o.runs; r++ {
			for _, sv := range servers {
				res, err := s.runKafka(ctx, sv, c)
				if err != nil {
					return "", fmt.Errorf("%s %s %d B: %w", sv.name, c.mode, c.size, err)
				}
				rps[sv.name] = append(rps[sv.name], res.RecordsPerSec)
				mbs[sv.name] = append(mbs[sv.name], res.MBPerSec)
				p99[sv.name] = append(p99[sv.name], res.Latency.P99MS)
			}
		}
		lat := func(name string) string {
			if c.mode == "consume" {
				return "-"
			}
			return fmt.Sprintf("%.2f ms", bench.Median(p99[name]))
		}
		t.Add(fmt.Sprintf("%s %s, %d clients", c.mode, sizeName(c.size), c.clients),
			bench.Median(rps["floodgate"]), bench.Median(mbs["floodgate"]), lat("floodgate"),
			bench.Median(rps["kfake"]), bench.Median(mbs["kfake"]), lat("kfake"),
			ratio(bench.Median(rps["floodgate"]), bench.Median(rps["kfake"])))
	}
	// Throughput vs clients (one run each, 100 B produce).
	ch := bench.Chart{Title: "Kafka produce throughput vs clients (100 B records, acks=1)", XLabel: "clients (one partition each)", YLabel: "records/s"}
	for _, sv := range servers {
		ser := bench.Series{Name: sv.name}
		for _, n := range []int{1, 2, 4, 8} {
			res, err := s.runKafka(ctx, sv, kafkaCase{"produce", 100, cases[0].records / 2, n})
			if err != nil {
				return "", fmt.Errorf("%s produce with %d clients: %w", sv.name, n, err)
			}
			ser.X, ser.Y = append(ser.X, float64(n)), append(ser.Y, res.RecordsPerSec)
		}
		ch.Series = append(ch.Series, ser)
	}
	if err := chart.Draw(ch, filepath.Join(s.o.charts, "kafka_throughput_vs_clients.png")); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Servers: `%s`; kfake: %s. Both in their own process, the load generator in a third, all on the same 2 cores.\n\n", fg.cmdString, kf.cmdString)
	fmt.Fprintf(&b, "Commands (BROKER is each server's address in turn): `%s`, `%s`, `%s`, `%s`.\n\n",
		cases[0].command("BROKER"), cases[1].command("BROKER"), cases[2].command("BROKER"), cases[3].command("BROKER"))
	b.WriteString(t.Markdown())
	if s.ceiling > 0 {
		fmt.Fprintf(&b, "\nLoopback ceiling in this run: %s MB/s.\n", bench.FormatFloat(s.ceiling))
	}
	b.WriteString("\n![Kafka produce throughput vs clients](bench/charts/kafka_throughput_vs_clients.png)\n")
	return b.String(), nil
}

func sizeName(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return fmt.Sprintf("%d KB", n/1000)
	}
	return fmt.Sprintf("%d B", n)
}

// wrkResult is what wrk printed.
type wrkResult struct {
	rps, p50, p99 float64 // req/s, ms
	errors        int64
}

var (
	wrkRPS  = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	wrkPct  = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)
	wrkNon2 = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	wrkSock = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func wrkCommand(conns int, d time.Duration, url string) []string {
	return []string{"wrk", "-t2", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(d.Seconds())) + "s", "--latency", url}
}

func (s *suite) wrk(ctx context.Context, conns int, d time.Duration, url string) (wrkResult, error) {
	argv := wrkCommand(conns, d, url)
	s.progress.Update("wrk -c%d %s", conns, url)
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	var r wrkResult
	m := wrkRPS.FindSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk printed no Requests/sec:\n%s", out)
	}
	r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	for _, pm := range wrkPct.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(pm[2]), 64)
		switch string(pm[3]) {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		if string(pm[1]) == "50" {
			r.p50 = v
		} else {
			r.p99 = v
		}
	}
	if m := wrkNon2.FindSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(string(m[1]), 10, 64)
		r.errors += n
	}
	if m := wrkSock.FindSubmatch(out); m != nil {
		for _, g := range m[1:] {
			n, _ := strconv.ParseInt(string(g), 10, 64)
			r.errors += n
		}
	}
	return r, nil
}

func (s *suite) limitsCost(ctx context.Context) (string, error) {
	def, err := s.startFloodgate("floodgate-defaults")
	if err != nil {
		return "", err
	}
	off, err := s.startFloodgate("floodgate-limits-off", limitsOff...)
	if err != nil {
		return "", err
	}
	scale := int64(1)
	d := 5 * time.Second
	if s.o.quick {
		scale, d = 10, 2*time.Second
	}
	kc := kafkaCase{"produce", 100, 400_000 / scale, 4}
	cc := kafkaCase{"consume", 100, 400_000 / scale, 4}
	vals := map[string][]float64{}
	for r := 0; r < s.o.runs; r++ {
		for _, sv := range []*server{def, off} {
			pr, err := s.runKafka(ctx, sv, kc)
			if err != nil {
				return "", fmt.Errorf("%s: %w", sv.name, err)
			}
			cr, err := s.runKafka(ctx, sv, cc)
			if err != nil {
				return "", fmt.Errorf("%s: %w", sv.name, err)
			}
			w, err := s.wrk(ctx, 50, d, sv.url)
			if err != nil {
				return "", err
			}
			vals[sv.name+" produce"] = append(vals[sv.name+" produce"], pr.RecordsPerSec)
			vals[sv.name+" consume"] = append(vals[sv.name+" consume"], cr.RecordsPerSec)
			vals[sv.name+" http"] = append(vals[sv.name+" http"], w.rps)
			vals[sv.name+" http p99"] = append(vals[sv.name+" http p99"], w.p99)
		}
	}
	s.progress.Done()
	throttled := throttledRequests(strings.TrimSuffix(def.url, "/health") + "/metrics")
	t := &bench.Table{Header: []string{"measurement", "limits at defaults", "limits off", "cost of the limits"}}
	cost := func(on, offv float64) string {
		if offv == 0 {
			return "-"
		}
		return fmt.Sprintf("%+.1f%%", 100*(offv-on)/offv)
	}
	for _, k := range []struct{ key, label string }{
		{"produce", "Kafka produce 100 B, 4 clients (records/s)"},
		{"consume", "Kafka consume 100 B, 4 clients (records/s)"},
		{"http", "HTTP GET /health, wrk 50 connections (req/s)"},
	} {
		on, o := bench.Median(vals[def.name+" "+k.key]), bench.Median(vals[off.name+" "+k.key])
		t.Add(k.label, on, o, cost(on, o))
	}
	t.Add("HTTP p99, wrk 50 connections (ms)", bench.Median(vals[def.name+" http p99"]), bench.Median(vals[off.name+" http p99"]), "-")
	var b strings.Builder
	fmt.Fprintf(&b, "Both servers ran side by side in this run, measured alternately (%d runs, medians).\n\n", s.o.runs)
	fmt.Fprintf(&b, "* defaults: `%s`\n* off: `%s`\n* load: `%s`, `%s`, `%s`\n\n", def.cmdString, off.cmdString,
		kc.command("BROKER"), cc.command("BROKER"), strings.Join(wrkCommand(50, d, "URL"), " "))
	b.WriteString(t.Markdown())
	fmt.Fprintf(&b, "\nCost = (off − defaults) / off; negative means the run with limits was faster (noise). Requests the defaults server throttled during these runs (`floodgate_requests_throttled_total`, all APIs): %s. franz-go clients all send the client id `kgo` unless told otherwise, so the 4 producers share one `--produce-rate-limit` bucket.\n", throttled)
	return b.String(), nil
}

// limitsOff turns every floodgate limit off or out of reach.
var limitsOff = []string{
	"--max-connections", "100000", "--max-connections-per-ip", "100000",
	"--memory-limit-bytes", strconv.Itoa(64 << 30), "--max-inflight-requests", "1000000",
	"--max-queued-requests", "1000000", "--produce-rate-limit", "0", "--fetch-rate-limit", "0",
	"--max-in-flight-requests", "0", "--max-in-flight-requests-per-worker", "0", "--max-connections-per-route", "0",
}

func (s *suite) http(ctx context.Context) (string, error) {
	fg, err := s.startFloodgate("floodgate", "--max-connections-per-ip", "2000")
	if err != nil {
		return "", err
	}
	ng, err := s.startNginx(2, 0)
	if err != nil {
		return "", err
	}
	nh, err := s.startNetHTTP()
	if err != nil {
		return "", err
	}
	rg, err := s.startRawGnet()
	if err != nil {
		return "", err
	}
	servers := []*server{fg, ng, rg, nh}
	d := 5 * time.Second
	od := 4 * time.Second
	if s.o.quick {
		d, od = 2*time.Second, 2*time.Second
	}
	const openRate = 20000
	t := &bench.Table{Header: []string{"server", "connections", "wrk req/s", "wrk p50", "wrk p99", "wrk errors", "open-loop 20k/s: achieved", "open-loop p99", "req/s vs floodgate"}}
	wrkRPSMed := map[string]float64{}
	// The servers take turns within each run (interleaved, not one after
	// the other), so a burst of load from elsewhere on this shared
	// machine hits them alike; medians of the runs.
	type samples struct {
		rps, p50, p99, orps, op99 []float64
		errs                      int64
	}
	for _, conns := range []int{50, 1000} {
		got := make([]samples, len(servers))
		for r := 0; r < s.o.runs; r++ {
			for i, sv := range servers {
				g := &got[i]
				w, err := s.wrk(ctx, conns, d, sv.url)
				if err != nil {
					return "", fmt.Errorf("%s: %w", sv.name, err)
				}
				g.rps, g.p50, g.p99 = append(g.rps, w.rps), append(g.p50, w.p50), append(g.p99, w.p99)
				g.errs += w.errors
				o, err := bench.RunHTTP(ctx, bench.HTTPConfig{URL: sv.url, Connections: conns, Rate: openRate, Duration: od, Pipeline: 1, Progress: s.progress})
				if err != nil {
					return "", fmt.Errorf("%s open loop: %w", sv.name, err)
				}
				g.orps, g.op99 = append(g.orps, o.AchievedRPS), append(g.op99, o.Latency.P99MS)
				g.errs += o.ErrorCount()
			}
		}
		for i, sv := range servers {
			rps, p50, p99, orps, op99, errs := got[i].rps, got[i].p50, got[i].p99, got[i].orps, got[i].op99, got[i].errs
			key := fmt.Sprintf("%s/%d", sv.name, conns)
			wrkRPSMed[key] = bench.Median(rps)
			t.Add(sv.name, conns, bench.Median(rps), fmt.Sprintf("%.2f ms", bench.Median(p50)), fmt.Sprintf("%.2f ms", bench.Median(p99)), errs,
				bench.Median(orps), fmt.Sprintf("%.2f ms", bench.Median(op99)), ratio(bench.Median(rps), wrkRPSMed[fmt.Sprintf("floodgate/%d", conns)]))
		}
	}
	// Latency vs offered load (open loop, 50 connections, one run each).
	ch := bench.Chart{Title: "HTTP p99 latency vs offered load (open loop, 50 connections)", XLabel: "offered requests/s", YLabel: "p99 (ms)", LogY: true}
	rates := []float64{5000, 10000, 20000, 40000, 60000}
	if s.o.quick {
		rates = []float64{5000, 20000}
	}
	for _, sv := range servers {
		ser := bench.Series{Name: sv.name}
		// A short warm-up at the lowest rate, so no server's first
		// second (page faults, GC sizing) lands in the sweep.
		if _, err := bench.RunHTTP(ctx, bench.HTTPConfig{URL: sv.url, Connections: 50, Rate: rates[0], Duration: time.Second, Pipeline: 1, Progress: s.progress}); err != nil {
			return "", err
		}
		for _, rate := range rates {
			o, err := bench.RunHTTP(ctx, bench.HTTPConfig{URL: sv.url, Connections: 50, Rate: rate, Duration: 2 * time.Second, Pipeline: 1, Timeout: 5 * time.Second, Progress: s.progress})
			if err != nil {
				return "", err
			}
			ser.X, ser.Y = append(ser.X, rate), append(ser.Y, o.Latency.P99MS)
		}
		ch.Series = append(ch.Series, ser)
	}
	if err := chart.Draw(ch, filepath.Join(s.o.charts, "http_latency_vs_load.png")); err != nil {
		return "", err
	}
	s.progress.Done()
	var b strings.Builder
	fmt.Fprintf(&b, "Servers: `%s` (the per-IP limit is raised because wrk connects from one address); %s; %s; %s. Each run takes the servers in turn (interleaved); medians of %d runs.\n\n", fg.cmdString, ng.cmdString, rg.cmdString, nh.cmdString, s.o.runs)
	fmt.Fprintf(&b, "Commands: `%s` and `floodgate bench http --url URL --connections N --rate %d --duration %s` (open loop: latency counts from each request's intended start).\n\n",
		strings.Replace(strings.Join(wrkCommand(0, d, "URL"), " "), "-c0", "-cN", 1), openRate, od)
	b.WriteString(t.Markdown())
	b.WriteString("\n![HTTP p99 vs offered load](bench/charts/http_latency_vs_load.png)\n")
	return b.String(), nil
}

func (s *suite) conns(ctx context.Context) (string, error) {
	counts := []int{1000, 10000, 19000}
	if s.o.quick {
		counts = []int{1000, 5000}
	}
	child := []string{s.o.floodgate, "bench", "conns-child"}
	type row struct {
		perConn, rssMB, acceptS, cpu []float64
		opened, accepted             int64
	}
	results := map[string]map[int]*row{}
	names := []string{"floodgate", "nginx", "net/http"}
	cmdOf := map[string]string{}
	for _, n := range counts {
		runs := s.o.runs
		if n > 10000 {
			runs = 1
		}
		for r := 0; r < runs; r++ {
			for _, name := range names {
				var sv *server
				var err error
				switch name {
				case "floodgate":
					sv, err = s.startFloodgate("floodgate", "--max-connections", "100000")
				case "nginx":
					sv, err = s.startNginx(1, 0)
				default:
					sv, err = s.startNetHTTP()
				}
				if err != nil {
					return "", err
				}
				cmdOf[name] = sv.cmdString
				target := strings.TrimSuffix(strings.TrimPrefix(sv.url, "http://"), "/health")
				if sv.kafka != "" {
					target = sv.kafka
				}
				res, err := bench.RunConns(ctx, bench.ConnsConfig{Hold: bench.HoldSpec{Target: target, Count: n},
					PerProcess: 10000, ChildCommand: child, Server: sv.probe(), HoldFor: 3 * time.Second, Progress: s.progress})
				s.stopAll()
				if err != nil {
					return "", fmt.Errorf("%s %d connections: %w", name, n, err)
				}
				if results[name] == nil {
					results[name] = map[int]*row{}
				}
				rw := results[name][n]
				if rw == nil {
					rw = &row{}
					results[name][n] = rw
				}
				rw.perConn = append(rw.perConn, res.RSSPerConn)
				rw.rssMB = append(rw.rssMB, float64(res.RSSHeldBytes)/(1<<20))
				rw.acceptS = append(rw.acceptS, res.AcceptS)
				rw.cpu = append(rw.cpu, res.CPUPercent)
				rw.opened, rw.accepted = res.Opened, res.Accepted
			}
		}
	}
	t := &bench.Table{Header: []string{"server", "connections held", "accepted (server count)", "accept time", "RSS held", "RSS per connection", "idle CPU% (3 s)", "RSS/conn vs floodgate"}}
	ch := bench.Chart{Title: "Server RSS vs idle connections", XLabel: "idle connections", YLabel: "RSS (MiB)"}
	for _, name := range names {
		ser := bench.Series{Name: name}
		for _, n := range counts {
			rw := results[name][n]
			fgRow := results["floodgate"][n]
			t.Add(name, rw.opened, rw.accepted, fmt.Sprintf("%.2f s", bench.Median(rw.acceptS)), fmt.Sprintf("%.1f MiB", bench.Median(rw.rssMB)),
				fmt.Sprintf("%.0f B", bench.Median(rw.perConn)), fmt.Sprintf("%.2f", bench.Median(rw.cpu)),
				ratio(bench.Median(rw.perConn), bench.Median(fgRow.perConn)))
			ser.X, ser.Y = append(ser.X, float64(rw.opened)), append(ser.Y, bench.Median(rw.rssMB))
		}
		ch.Series = append(ch.Series, ser)
	}
	if err := chart.Draw(ch, filepath.Join(s.o.charts, "rss_vs_connections.png")); err != nil {
		return "", err
	}
	largest := counts[len(counts)-1]
	fgl := results["floodgate"][largest]
	per := bench.Median(fgl.perConn)
	base := bench.Median(fgl.rssMB)*(1<<20) - per*float64(fgl.opened)
	million := (base + per*1e6) / 1e9
	var b strings.Builder
	fmt.Fprintf(&b, "Servers (a fresh process for every count): `%s` (clamped to what the open-files limit allows); %s; %s.\n",
		cmdOf["floodgate"], cmdOf["nginx"], cmdOf["net/http"])
	fmt.Fprintf(&b, "floodgate is held on its Kafka port, nginx and net/http on their HTTP port. The clients are `floodgate bench conns` holder processes (at most 10,000 connections each, 50 per source address in 127.0.0.0/8), so the server alone is bound by its 20,000 open files.\n\n")
	fmt.Fprintf(&b, "Command: `floodgate bench conns --target ADDR --count N --per-process 10000 --pid PID --hold 3s` (RSS per connection = (RSS held − RSS before) / connections; idle CPU%% is the server's user+system time over the 3 s hold; medians of %d runs at 1k and 10k, one run at %d).\n\n", s.o.runs, largest)
	b.WriteString(t.Markdown())
	fmt.Fprintf(&b, "\n**1,000,000 idle connections, projected from the %d-connection run:** %.0f MiB base + 1,000,000 × %.0f B = **%.2f GB of floodgate RSS** (target: under 4 GB). The kernel adds its socket memory on top (about 10 KB per loopback connection, both ends; see ../shared/ARCHITECTURE.md), and the deployment needs `ulimit -n` above 1,000,000 (README, Sizing).\n",
		largest, base/(1<<20), per, million)
	fmt.Fprintf(&b, "\n**Nothing is O(connections) per tick:** idle CPU stays flat from 1k to %d connections (table above). The idle reaper walks a per-loop list ordered by last activity and stops at the first connection that is not idle, so a tick costs O(connections that expired), not a scan.\n", largest)
	b.WriteString("\n![RSS vs connections](bench/charts/rss_vs_connections.png)\n")
	return b.String(), nil
}

func (s *suite) flood(ctx context.Context) (string, error) {
	count := 60000
	if s.o.quick {
		count = 6000
	}
	var serverCPUs, loadCPUs []int
	rounds := 1
	if s.o.floodPin != "" {
		sc, lc, ok := strings.Cut(s.o.floodPin, "/")
		var err error
		if serverCPUs, err = bench.ParseCPUs(sc); ok && err == nil {
			loadCPUs, err = bench.ParseCPUs(lc)
		}
		if !ok || err != nil {
			return "", fmt.Errorf("--flood-pin %q: want SERVER-CPUS/LOAD-CPUS (%v)", s.o.floodPin, err)
		}
		rounds = s.o.runs
	}
	// Each server starts with the suite's CPUs (sized by them, as a server
	// pinned after its start is) and is then confined to the server CPUs;
	// the suite's own threads (the probe) and the holder processes it
	// starts run on the load CPUs during the flood only, and get the
	// suite's CPUs back after it.
	var suiteCPUs []int
	if serverCPUs != nil {
		var err error
		if suiteCPUs, err = bench.AffinityOf(os.Getpid()); err != nil {
			return "", err
		}
	}
	child := []string{s.o.floodgate, "bench", "conns-child"}
	t := &bench.Table{Header: []string{"server", "round", "flood offered", "opened", "failed", "established p99 before", "during", "during/before", "established errors during", "new client served after flood", "alive"}}
	var cmds []string
	ratios := map[string][]float64{}
	ch := bench.Chart{Title: "Established client p99 before vs during a connection flood", YLabel: "p99 (ms)", Categories: []string{"before", "during"}}
	for round := 1; round <= rounds; round++ {
		for _, name := range []string{"floodgate", "nginx"} {
			var sv *server
			var err error
			if name == "floodgate" {
				sv, err = s.startFloodgate("floodgate", "--max-connections", "100000")
			} else {
				sv, err = s.startNginx(1, 0)
			}
			if err == nil && serverCPUs != nil {
				// The suite first (its children, the server too, go
				// along), then the server to its own CPUs.
				if err = bench.PinTree(os.Getpid(), loadCPUs); err == nil {
					err = bench.PinTree(sv.proc.PID(), serverCPUs)
				}
			}
			if err != nil {
				return "", err
			}
			if round == 1 {
				cmds = append(cmds, sv.cmdString)
			}
			target := strings.TrimSuffix(strings.TrimPrefix(sv.url, "http://"), "/health")
			r, err := bench.RunFlood(ctx, bench.FloodConfig{Flood: bench.HoldSpec{Target: target, Count: count, OpenFor: 15 * time.Second, Nice: bench.FloodHolderNice},
				PerProcess: 15000, ChildCommand: child, ProbeURL: sv.url, ProbeRate: 200, Before: 3 * time.Second, During: 3 * time.Second,
				Server: sv.probe(), Progress: s.progress})
			s.stopAll()
			if suiteCPUs != nil {
				if perr := bench.PinTree(os.Getpid(), suiteCPUs); perr != nil && err == nil {
					err = perr
				}
			}
			if err != nil {
				return "", fmt.Errorf("%s flood: %w", name, err)
			}
			rec := "never (30 s)"
			if r.Recovered {
				rec = fmt.Sprintf("%.1f ms", r.RecoveryMS)
			}
			t.Add(name, round, r.FloodOffered, r.FloodOpened, r.FloodFailed, fmt.Sprintf("%.2f ms", r.Before.P99MS), fmt.Sprintf("%.2f ms", r.During.P99MS),
				fmt.Sprintf("%.2fx", r.P99Ratio), r.DuringErrors, rec, r.ServerAlive)
			ratios[name] = append(ratios[name], r.P99Ratio)
			if round == 1 {
				ch.Series = append(ch.Series, bench.Series{Name: name, Y: []float64{r.Before.P99MS, r.During.P99MS}})
			}
		}
	}
	if err := chart.Draw(ch, filepath.Join(s.o.charts, "flood_p99.png")); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Each server alone at the machine's real limit (one process, 20,000 open files): `%s`; %s. The flood hits the HTTP port from holder processes (15,000 connections each, 50 per source address) while an established keep-alive client requests GET /health 200 times a second; after the flood closes, new clients (a new connection each try) poll until one is served. ", cmds[0], cmds[1])
	if serverCPUs != nil {
		fmt.Fprintf(&b, "The server runs on CPU %v only, the flood's holders and the probe on CPU %v (`--flood-pin %s`), so the probe's latency is the server's, not the load generator's; %d rounds, the servers alternating.\n\n", serverCPUs, loadCPUs, s.o.floodPin, rounds)
	} else {
		b.WriteString("One run each, server and load sharing the CPUs.\n\n")
	}
	fmt.Fprintf(&b, "Command: `floodgate bench conns --flood --target ADDR --count %d --per-process 15000 --probe-url URL --probe-rate 200 --before 3s --during 3s --open-for 15s --pid PID`\n\n", count)
	b.WriteString(t.Markdown())
	if rounds > 1 {
		fmt.Fprintf(&b, "\nMedian during/before p99 ratio over the rounds: floodgate %.2fx, nginx %.2fx.\n", bench.Median(ratios["floodgate"]), bench.Median(ratios["nginx"]))
	}
	b.WriteString("\n![flood p99](bench/charts/flood_p99.png)\n")
	return b.String(), nil
}

func (s *suite) overload(ctx context.Context) (string, error) {
	const limit = 2000
	fg, err := s.startFloodgate("floodgate", "--max-requests-per-second-global", strconv.Itoa(limit))
	if err != nil {
		return "", err
	}
	ng, err := s.startNginx(2, limit)
	if err != nil {
		return "", err
	}
	step := 3 * time.Second
	if s.o.quick {
		step = time.Second
	}
	type target struct {
		sv    *server
		url   string
		burst float64 // seconds of the limit the server lets through at once
	}
	targets := []target{{fg, fg.url, 10}, {ng, strings.TrimSuffix(ng.url, "/health") + "/limited", 0.1}}
	t := &bench.Table{Header: []string{"server", "offered", "offered/s", "goodput/s", "rejected/s", "not served", "admitted p50", "admitted p99", "peak RSS", "errors"}}
	p99c := bench.Chart{Title: fmt.Sprintf("Admitted p99 vs offered load (limit %d req/s)", limit), XLabel: "offered load (multiple of the limit)", YLabel: "p99 of 2xx answers (ms)"}
	goodc := bench.Chart{Title: fmt.Sprintf("Goodput vs offered load (limit %d req/s)", limit), XLabel: "offered load (multiple of the limit)", YLabel: "2xx answers/s"}
	for _, tg := range targets {
		ps, gs := bench.Series{Name: tg.sv.name}, bench.Series{Name: tg.sv.name}
		for _, m := range []float64{1, 2, 5, 10} {
			if m > 1 {
				// Drain the server's burst allowance first, so the
				// step measures the steady state.
				warm := time.Duration(tg.burst/(m-1)*float64(time.Second)) + 500*time.Millisecond
				if _, err := bench.RunHTTP(ctx, bench.HTTPConfig{URL: tg.url, Connections: 50, Rate: m * limit, Duration: warm, Pipeline: 1, Timeout: 5 * time.Second, Progress: s.progress}); err != nil {
					return "", err
				}
			}
			r, err := bench.RunOverload(ctx, bench.OverloadConfig{URL: tg.url, Kind: "rate", Limit: limit, Multipliers: []float64{m},
				Connections: 50, Step: step, Server: tg.sv.probe(), Progress: s.progress})
			if err != nil {
				return "", err
			}
			st := r.Steps[0]
			t.Add(tg.sv.name, fmt.Sprintf("%gx", m), st.OfferedRPS, st.GoodputRPS, st.RejectedRPS, fmt.Sprintf("%.1f%%", 100*st.RejectRate),
				fmt.Sprintf("%.2f ms", st.AdmittedP50MS), fmt.Sprintf("%.2f ms", st.AdmittedP99MS), bench.MiB(st.PeakRSSBytes), st.Errors)
			ps.X, ps.Y = append(ps.X, m), append(ps.Y, st.AdmittedP99MS)
			gs.X, gs.Y = append(gs.X, m), append(gs.Y, st.GoodputRPS)
		}
		p99c.Series, goodc.Series = append(p99c.Series, ps), append(goodc.Series, gs)
	}
	s.progress.Done()
	if err := chart.Draw(p99c, filepath.Join(s.o.charts, "overload_p99.png")); err != nil {
		return "", err
	}
	if err := chart.Draw(goodc, filepath.Join(s.o.charts, "overload_goodput.png")); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Both servers limit HTTP to %d req/s: `%s` (token bucket, burst 10 s of rate, 429 beyond) and nginx `limit_req rate=%dr/s burst=%d nodelay` with `limit_req_status 429`, 2 workers. Each step first drains the server's burst allowance, then offers the load for %s, open loop, 50 connections.\n\n",
		limit, fg.cmdString, limit, limit/10, step)
	fmt.Fprintf(&b, "Command: `floodgate bench overload --url URL --kind rate --limit %d --multipliers 1,2,5,10 --connections 50 --step %s --pid PID`\n\n", limit, step)
	b.WriteString(t.Markdown())
	b.WriteString("\n![admitted p99 vs offered load](bench/charts/overload_p99.png) ![goodput vs offered load](bench/charts/overload_goodput.png)\n")
	return b.String(), nil
}

// rewriteMarkdown replaces the text between <!-- bench:NAME:begin --> and
// <!-- bench:NAME:end --> for every section measured.
func rewriteMarkdown(path string, sections map[string]string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	text := string(b)
	for name, body := range sections {
		begin, end := "<!-- bench:"+name+":begin -->", "<!-- bench:"+name+":end -->"
		i := strings.Index(text, begin)
		j := strings.Index(text, end)
		if i < 0 || j < i {
			fmt.Fprintf(os.Stderr, "bench suite: %s has no %s ... %s markers; section %s not written\n", path, begin, end, name)
			continue
		}
		text = text[:i+len(begin)] + "\n" + strings.TrimRight(body, "\n") + "\n" + text[j:]
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// throttledRequests sums floodgate_requests_throttled_total from a
// /metrics page ("unknown" when it cannot be read).
func throttledRequests(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return "unknown"
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "unknown"
	}
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "floodgate_requests_throttled_total") {
			f := strings.Fields(line)
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				sum += v
			}
		}
	}
	return bench.FormatFloat(sum)
}
