// Package deploy_test checks the deployment files in deploy/: the alert
// rules pass promtool, the dashboard parses, every metric they query is
// one floodgate exposes, and the systemd unit and Dockerfile only use
// flags the binary has.
package deploy_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/floodgate/floodgate/internal/testproc"
)

// TestAlertRulesPassPromtool runs Prometheus' own checker on the rules.
func TestAlertRulesPassPromtool(t *testing.T) {
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Skip("SKIPPED LOUDLY: promtool not installed (make deps-test installs Debian's prometheus package)")
	}
	out, err := exec.Command("promtool", "check", "rules", "prometheus/alerts.yml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Title  string `json:"title"`
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// TestDashboardParsesAndQueriesRealMetrics: the dashboard is JSON with
// panels for what an operator watches, each with a query.
func TestDashboardParsesAndQueriesRealMetrics(t *testing.T) {
	raw, err := os.ReadFile("grafana/floodgate-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	for _, want := range []string{"Connections", "refused", "budget", "Throttled", "p99", "parked"} {
		found := false
		for _, p := range d.Panels {
			found = found || strings.Contains(p.Title, want)
			for _, tg := range p.Targets {
				found = found || strings.Contains(tg.Expr, want)
			}
		}
		if !found {
			t.Errorf("no panel for %q", want)
		}
	}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 || p.Targets[0].Expr == "" {
			t.Errorf("panel %q has no query", p.Title)
		}
	}
}

// metricName matches the floodgate and process metric families a query names.
var metricName = regexp.MustCompile(`\b(floodgate|process)_[a-z_]+`)

// TestQueriedMetricsExist: every metric the dashboard and the alert rules
// query is one floodgate's source registers (a renamed metric breaks the
// test, not an operator's dashboard).
func TestQueriedMetricsExist(t *testing.T) {
	source := goSource(t, "..")
	for _, file := range []string{"grafana/floodgate-dashboard.json", "prometheus/alerts.yml"} {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range metricName.FindAllString(string(raw), -1) {
			if strings.HasPrefix(name, "process_") {
				continue // the metrics library's process collector
			}
			family := strings.TrimSuffix(name, "_bucket")
			if !strings.Contains(source, `"`+family) && !strings.Contains(source, "`"+family) {
				t.Errorf("%s queries %s, which no Go source of floodgate registers", file, name)
			}
		}
	}
}

// goSource returns the non-test Go source under root, concatenated.
func goSource(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "deploy" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			raw, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			b.Write(raw)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// build builds the floodgate binary into a temporary directory.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "floodgate")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/floodgate").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// serveHelp returns `floodgate serve --help` of a freshly built binary.
func serveHelp(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(build(t), "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("serve --help: %v\n%s", err, out)
	}
	return string(out)
}

// TestServiceFilesUseRealFlags: the systemd unit reloads with SIGHUP,
// raises the descriptor limit and uses an absolute data directory, and
// every flag the unit and the Dockerfile pass (or set through a
// FLOODGATE_ variable) is one `floodgate serve` has.
func TestServiceFilesUseRealFlags(t *testing.T) {
	unit, err := os.ReadFile("systemd/floodgate.service")
	if err != nil {
		t.Fatal(err)
	}
	docker, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ExecReload=/bin/kill -HUP $MAINPID", "LimitNOFILE=", "--data-dir /var/lib/floodgate"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("systemd unit lacks %q", want)
		}
	}
	help := serveHelp(t)
	// The lines that run floodgate: the unit's ExecStart and the
	// Dockerfile's docker run example (continued over two lines).
	var runs string
	for _, line := range strings.Split(string(unit)+string(docker), "\n") {
		if strings.HasPrefix(line, "ExecStart=") || strings.Contains(line, "floodgate serve") || strings.Contains(line, "serve --") {
			runs += line + "\n"
		}
	}
	flags := regexp.MustCompile(`--([a-z][a-z0-9-]+)`).FindAllStringSubmatch(runs, -1)
	for _, env := range regexp.MustCompile(`FLOODGATE_([A-Z0-9_]+)=`).FindAllStringSubmatch(string(docker), -1) {
		flags = append(flags, []string{"", strings.ToLower(strings.ReplaceAll(env[1], "_", "-"))})
	}
	for _, f := range flags {
		if !strings.Contains(help, "--"+f[1]+" ") && !strings.Contains(help, "--"+f[1]+"=") && !strings.Contains(help, "--"+f[1]+",") {
			t.Errorf("deploy files use --%s, which `floodgate serve --help` does not list", f[1])
		}
	}
}

// TestExampleConfigStartsTheServer: the binary starts with deploy's
// example config file (its listeners moved to port 0 on loopback by flags,
// which win over the file) and serves.
func TestExampleConfigStartsTheServer(t *testing.T) {
	bin := build(t)
	cmd := exec.Command(bin, "serve", "--config", "floodgate.yaml", "--data-dir", t.TempDir(),
		"--kafka-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--print-listen-addresses")
	out := &testproc.Buffer{} // written by the process, read by the test
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() { _ = cmd.Process.Kill(); <-exited }()
	deadline := time.After(20 * time.Second)
	for !strings.Contains(out.String(), "floodgate listening") {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("floodgate exited with the example config: %v\n%s", err, out.String())
		case <-deadline:
			t.Fatalf("floodgate did not start with the example config:\n%s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
