package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate/floodgate/bench"
	"github.com/floodgate/floodgate/internal/loopback"
)

// The gateway section: franz-go's kfake (three brokers, its own process) as
// the upstream cluster and floodgate's gateway mode (the binary with
// --upstream-brokers) in front of it. The same clients run straight to
// kfake and through floodgate, alternately; floodgate's CPU comes from
// /proc. Then, with --max-upstream-connections-per-broker 4, 10,000 client
// connections each send a request to a per-broker listener and the
// gateway's upstream connections are counted.

const gatewayMaxUpstream = 4

// startKfakeCluster starts a three-broker kfake in its own process.
func (s *suite) startKfakeCluster() (*server, []string, error) {
	var ports []string
	var addrs []string
	for i := 0; i < 3; i++ {
		p := port()
		ports = append(ports, strconv.Itoa(p))
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
	}
	p, err := bench.StartProc("kfake-cluster", filepath.Join(s.dir, "kfake-cluster.log"), s.self, "peer", "kfake-cluster", strings.Join(ports, ","))
	if err != nil {
		return nil, nil, err
	}
	s.track(p)
	for _, a := range addrs {
		if err := bench.WaitTCP(a, 10*time.Second); err != nil {
			return nil, nil, fmt.Errorf("kfake cluster: %w", err)
		}
	}
	return &server{name: "kfake", proc: p, kafka: strings.Join(addrs, ","),
		cmdString: "kfake.NewCluster(kfake.Ports(P1, P2, P3), kfake.NumBrokers(3)) in its own process"}, addrs, nil
}

// startGatewayServer starts floodgate in gateway mode in front of upstream.
func (s *suite) startGatewayServer(name string, upstream []string, extra ...string) (*server, error) {
	first, err := loopback.FreePortRange(8)
	if err != nil {
		return nil, err
	}
	args := append([]string{"--upstream-brokers", strings.Join(upstream, ","),
		"--gateway-listen-ports", fmt.Sprintf("%d-%d", first, first+7), "--gateway-advertised-host", "127.0.0.1"}, extra...)
	sv, err := s.startFloodgate(name, args...)
	if err != nil {
		return nil, err
	}
	sv.cmdString = strings.Replace(sv.cmdString, strings.Join(upstream, ","), "KFAKE1,KFAKE2,KFAKE3", 1)
	sv.cmdString = strings.Replace(sv.cmdString, fmt.Sprintf("%d-%d", first, first+7), "P-P+7", 1)
	return sv, nil
}

// brokerListeners returns the per-broker listeners floodgate advertises.
func brokerListeners(ctx context.Context, seed string) ([]string, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seed))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	bs, err := kadm.NewClient(cl).ListBrokers(cctx)
	if err != nil {
		return nil, fmt.Errorf("metadata through %s: %w", seed, err)
	}
	var out []string
	for _, b := range bs {
		out = append(out, net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("metadata through %s names no broker", seed)
	}
	return out, nil
}

// metricValue sums the samples of one metric on a /metrics page.
func metricValue(url, name string) (float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var sum float64
	found := false
	for _, line := range strings.Split(string(body), "\n") {
		if line == name || strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			f := strings.Fields(line)
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				sum += v
				found = true
			}
		}
	}
	if !found {
		return 0, fmt.Errorf("%s not on %s", name, url)
	}
	return sum, nil
}

func (s *suite) gateway(ctx context.Context) (string, error) {
	kf, upstream, err := s.startKfakeCluster()
	if err != nil {
		return "", err
	}
	gw, err := s.startGatewayServer("floodgate-gateway", upstream)
	if err != nil {
		return "", err
	}
	direct := &server{name: "direct", proc: kf.proc, kafka: upstream[0]}
	cases := s.standardKafkaCases()
	t := &bench.Table{Header: []string{"case", "direct to kfake MB/s", "through floodgate MB/s", "floodgate / direct", "direct p99", "through floodgate p99", "added p99", "floodgate CPU s per GB", "each run, direct / floodgate (MB/s)"}}
	var ratios []float64
	var cpuPerGB []float64
	for _, c := range cases {
		mbs := map[string][]float64{}
		p99 := map[string][]float64{}
		var cpuS, gb float64
		for r := 0; r < s.o.runs; r++ {
			for _, sv := range []*server{direct, gw} {
				var cpu0 time.Duration
				if sv == gw {
					cpu0, _ = gw.probe().CPU()
				}
				res, err := s.runKafka(ctx, sv, c)
				if err != nil {
					return "", fmt.Errorf("%s %s %d B: %w", sv.name, c.mode, c.size, err)
				}
				if res.Errors > 0 {
					return "", fmt.Errorf("%s %s %d B: %d produce errors", sv.name, c.mode, c.size, res.Errors)
				}
				if sv == gw {
					cpu1, _ := gw.probe().CPU()
					cpuS += (cpu1 - cpu0).Seconds()
					moved := float64(res.Records) * float64(c.size)
					if c.mode == "consume" {
						moved *= 2 // the preload went through floodgate too
					}
					gb += moved / 1e9
				}
				mbs[sv.name] = append(mbs[sv.name], res.MBPerSec)
				p99[sv.name] = append(p99[sv.name], res.Latency.P99MS)
			}
		}
		rd := bench.Median(mbs[gw.name]) / bench.Median(mbs["direct"])
		ratios = append(ratios, rd)
		lat := func(name string) string {
			if c.mode == "consume" {
				return "-"
			}
			return fmt.Sprintf("%.2f ms", bench.Median(p99[name]))
		}
		added := "-"
		if c.mode == "produce" {
			added = fmt.Sprintf("%+.2f ms", bench.Median(p99[gw.name])-bench.Median(p99["direct"]))
		}
		cpg := cpuS / gb
		cpuPerGB = append(cpuPerGB, cpg)
		t.Add(fmt.Sprintf("%s %s, %d clients", c.mode, sizeName(c.size), c.clients), bench.Median(mbs["direct"]), bench.Median(mbs[gw.name]),
			fmt.Sprintf("%.2fx", rd), lat("direct"), lat(gw.name), added, fmt.Sprintf("%.2f", cpg),
			runList(mbs["direct"])+" / "+runList(mbs[gw.name]))
	}
	// Latency at a moderate, fixed rate (open loop): the hop's own cost,
	// without the queueing of a saturated run.
	const latRate, latSize = 5000, 1000
	latDur := 4 * time.Second
	if s.o.quick {
		latDur = 2 * time.Second
	}
	lt := &bench.Table{Header: []string{"path", "records/s offered", "p50", "p99", "p999"}}
	lat := map[string][3][]float64{}
	for r := 0; r < s.o.runs; r++ {
		for _, sv := range []*server{direct, gw} {
			res, err := bench.RunKafka(ctx, bench.KafkaConfig{Mode: "produce", Brokers: []string{sv.kafka}, Clients: 4, RecordSize: latSize,
				Duration: latDur, Rate: latRate, Acks: 1, Progress: s.progress})
			if err != nil {
				return "", fmt.Errorf("%s paced produce: %w", sv.name, err)
			}
			l := lat[sv.name]
			l[0], l[1], l[2] = append(l[0], res.Latency.P50MS), append(l[1], res.Latency.P99MS), append(l[2], res.Latency.P999MS)
			lat[sv.name] = l
		}
	}
	for _, sv := range []*server{direct, gw} {
		l := lat[sv.name]
		name := "direct to kfake"
		if sv == gw {
			name = "through floodgate"
		}
		lt.Add(name, latRate, fmt.Sprintf("%.2f ms", bench.Median(l[0])), fmt.Sprintf("%.2f ms", bench.Median(l[1])), fmt.Sprintf("%.2f ms", bench.Median(l[2])))
	}
	addedP99 := bench.Median(lat[gw.name][1]) - bench.Median(lat["direct"][1])
	addedP50 := bench.Median(lat[gw.name][0]) - bench.Median(lat["direct"][0])
	gwCmd := gw.cmdString
	s.stopAll()

	// Multiplexing: 10,000 client connections, 4 upstream connections per broker.
	held, err := s.gatewayConns(ctx)
	if err != nil {
		held = fmt.Sprintf("_Upstream connections for many clients not measured in this run: %s._\n", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Upstream: %s. Gateway: `%s`. kfake, floodgate and the load generator each in their own process, all on the same 2 cores. \"direct\" is the same client seeded with kfake's first broker (it finds the other two in Metadata); \"through floodgate\" seeds floodgate's Kafka port and is routed by the rewritten Metadata to floodgate's per-broker listeners. %d runs of each, alternating, medians.\n\n",
		kf.cmdString, gwCmd, s.o.runs)
	fmt.Fprintf(&b, "Commands (BROKER is kfake's brokers, then floodgate's Kafka port): `%s`, `%s`, `%s`, `%s`. CPU = floodgate's utime+stime (/proc/PID/stat) over each run through it, per GB of record values it moved (consume counts its preload too).\n\n",
		cases[0].command("BROKER"), cases[1].command("BROKER"), cases[2].command("BROKER"), cases[3].command("BROKER"))
	b.WriteString(t.Markdown())
	fmt.Fprintf(&b, "\nThroughput ratio floodgate / direct: %.2fx to %.2fx (target ≥ 0.9); floodgate CPU %.2f to %.2f s per GB moved.\n",
		minf(ratios), maxf(ratios), minf(cpuPerGB), maxf(cpuPerGB))
	fmt.Fprintf(&b, "\nAdded latency at a fixed load (`floodgate bench kafka produce --brokers BROKER --clients 4 --record-size %d --duration %s --rate %d --acks 1`, open loop, latency from enqueue to acknowledgement): **p50 %+.2f ms, p99 %+.2f ms** through floodgate.\n\n",
		latSize, latDur, latRate, addedP50, addedP99)
	b.WriteString(lt.Markdown())
	b.WriteString("\n")
	b.WriteString(held)
	return b.String(), nil
}

// runList renders every run's value, in run order.
func runList(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(parts, ", ")
}

func minf(v []float64) float64 {
	m := v[0]
	for _, x := range v[1:] {
		m = min(m, x)
	}
	return m
}

func maxf(v []float64) float64 {
	m := v[0]
	for _, x := range v[1:] {
		m = max(m, x)
	}
	return m
}

// gatewayConns holds 10,000 client connections on the per-broker listeners
// of a gateway bounded to gatewayMaxUpstream connections per broker and
// reports the upstream connections it holds.
func (s *suite) gatewayConns(ctx context.Context) (string, error) {
	count := 10000
	if s.o.quick {
		count = 1000
	}
	kf, upstream, err := s.startKfakeCluster()
	if err != nil {
		return "", err
	}
	gw, err := s.startGatewayServer("floodgate-gateway-mux", upstream, "--max-upstream-connections-per-broker", strconv.Itoa(gatewayMaxUpstream),
		"--max-connections", "100000")
	if err != nil {
		return "", err
	}
	metricsURL := strings.TrimSuffix(gw.url, "/health") + "/metrics"
	listeners, err := brokerListeners(ctx, gw.kafka)
	if err != nil {
		return "", err
	}
	kfFD0, _ := bench.FDs(kf.proc.PID())
	up0, _ := metricValue(metricsURL, "floodgate_gateway_upstream_connections")
	rss0, _ := gw.probe().RSS()
	spec := bench.HoldSpec{Target: listeners[0], Targets: listeners, Count: count, PerIP: 50, DialTimeout: 10 * time.Second,
		Concurrency: 64, KafkaHello: true}
	t0 := time.Now()
	fleet, err := bench.StartFleet(ctx, spec, 5000, []string{s.self, "peer", "holder"})
	if err != nil {
		return "", err
	}
	defer fleet.Close()
	deadline := time.Now().Add(2 * time.Minute)
	for !fleet.Ready() && time.Now().Before(deadline) && ctx.Err() == nil {
		o, f := fleet.Counts()
		s.progress.Update("gateway: %d client connections answered, %d failed", o, f)
		time.Sleep(200 * time.Millisecond)
	}
	s.progress.Done()
	openS := time.Since(t0).Seconds()
	opened, failed := fleet.Counts()
	if !fleet.Ready() {
		return "", fmt.Errorf("%d of %d client connections answered after 2 minutes", opened, count)
	}
	time.Sleep(500 * time.Millisecond)
	up, err := metricValue(metricsURL, "floodgate_gateway_upstream_connections")
	if err != nil {
		return "", err
	}
	clients, _ := bench.ServerProbe{StatsURL: gw.statsURL}.Connections()
	kfFD, _ := bench.FDs(kf.proc.PID())
	rss, _ := gw.probe().RSS()
	firstErr := fleet.FirstError()
	t := &bench.Table{Header: []string{"client connections (each sent Metadata to a per-broker listener)", "answered", "failed", "time to open and answer all", "upstream connections (floodgate_gateway_upstream_connections)", "kfake's open descriptors, before → during", "clients per upstream connection", "floodgate RSS, before → during"}}
	t.Add(count, opened, failed, fmt.Sprintf("%.1f s", openS), fmt.Sprintf("%.0f (before: %.0f)", up, up0), fmt.Sprintf("%d → %d", kfFD0, kfFD),
		fmt.Sprintf("%.0f", float64(opened)/max(up, 1)), fmt.Sprintf("%s → %s", bench.MiB(rss0), bench.MiB(rss)))
	var b strings.Builder
	fmt.Fprintf(&b, "**Upstream connections for %d client connections**, multiplexed: `%s` (same kfake cluster setup, a fresh one). The clients are %d holder processes (`bench-suite peer holder`, 5,000 connections each, 50 per source address in 127.0.0.0/8), spread round robin over floodgate's %d per-broker listeners; each connection sends one Metadata request (v1, no topics) and waits for its answer, so each is assigned an upstream connection, then stays open while the gauge is read.\n\n",
		count, gw.cmdString, fleet.Processes(), len(listeners))
	b.WriteString(t.Markdown())
	if clients > 0 {
		fmt.Fprintf(&b, "\nfloodgate's own count of client connections while held: %d.", clients)
	}
	if firstErr != "" {
		fmt.Fprintf(&b, " First client error: %s.", firstErr)
	}
	fmt.Fprintf(&b, "\nWithout the bound (default %s) each client connection gets its own upstream connection to each broker it talks to (1:1).\n", "`--max-upstream-connections-per-broker 1000`")
	return b.String(), nil
}
