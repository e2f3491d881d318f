package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/urfave/cli/v2"
)

// parseServe runs the serve command's start-up over args and environ as
// runServe does (loadConfig, then the limits read from the flags) and
// returns what it resolved.
func parseServe(t *testing.T, environ []string, args ...string) (resolved, error) {
	t.Helper()
	var res resolved
	var perr error
	cmd := serveCommand()
	cmd.Action = func(c *cli.Context) error {
		st, err := loadConfig(c, environ)
		if err != nil {
			perr = err
			return nil
		}
		lim, err := limitsFromFlags(c)
		if err != nil {
			perr = err
			return nil
		}
		hl, err := httpLimitsFromFlags(c)
		if err != nil {
			perr = err
			return nil
		}
		idx := indexFlags(c.Command.Flags)
		res = resolved{lim: lim, http: hl, flags: flagValues(c, idx), conf: st, idx: idx}
		return nil
	}
	app := &cli.App{Name: "floodgate", Commands: []*cli.Command{cmd}, Writer: io.Discard, ErrWriter: io.Discard,
		ExitErrHandler: func(*cli.Context, error) {}}
	if err := app.Run(append([]string{"floodgate", "serve"}, args...)); err != nil {
		return res, err
	}
	return res, perr
}

// writeConfig writes a config file into a fresh directory.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "floodgate.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// value returns a setting's resolved value: a limit's from the limits,
// another flag's as text.
func (r resolved) value(name string) string {
	if v := r.lim.Value(name); v != "" {
		return v
	}
	if v := r.http.Value(name); v != "" {
		return v
	}
	return r.flags[name]
}

// TestConfigFileTakesFlagNamesAliasesAndTheLimitsBlock: a file mixing the
// flag names at top level, an alias, the limits document's key names in a
// limits: block, a duration, a boolean and a list sets each flag.
func TestConfigFileTakesFlagNamesAliasesAndTheLimitsBlock(t *testing.T) {
	path := writeConfig(t, `# a proxy-style configuration, translated line by line
log-level: debug
auto-create-topics: false
max-connections-per-ip: 7
header-read-timeout: 3s
limits:
  max-total-connections: 500
  max-header-size-bytes: 4096
  max-requests-per-second-per-client: 100
route:
  - "api:/topics,rps=100"
  - bulk:/topics/bulk,max-body-size=500MB
`)
	res, err := parseServe(t, nil, "--config", path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"log-level": "debug", "auto-create-topics": "false", "max-connections-per-ip": "7", "header-read-timeout": "3000",
		"max-connections": "500", "max-header-size-bytes": "4096", "max-requests-per-second-per-client": "100",
	}
	for name, v := range want {
		if got := res.value(name); got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
		if src := res.conf.sources[name]; src != sourceFile {
			t.Errorf("%s came from %q, want file", name, src)
		}
	}
	if len(res.http.Routes) != 2 || res.http.Routes[0].Name != "api" || res.http.Routes[1].MaxBodyBytes != 500e6 {
		t.Errorf("routes = %+v, want api and bulk (500 MB)", res.http.Routes)
	}
	if src := res.conf.sources["max-request-size"]; src != sourceDefault {
		t.Errorf("max-request-size came from %q, want default", src)
	}
}

// TestEnvironmentSetsEveryFlag: FLOODGATE_<NAME> sets a flag by its name
// or an alias, FLOODGATE_CONFIG names the file, and a list flag takes its
// values separated by spaces.
func TestEnvironmentSetsEveryFlag(t *testing.T) {
	path := writeConfig(t, "max-header-count: 42\n")
	env := []string{
		"FLOODGATE_MAX_CONNECTIONS_PER_IP=9",
		"FLOODGATE_MAX_TOTAL_CONNECTIONS=321", // an alias of --max-connections
		"FLOODGATE_LOG_FORMAT=json",
		"FLOODGATE_HEADER_READ_TIMEOUT=2s",
		"FLOODGATE_ROUTE=a:/a,rps=5 b:/b",
		"FLOODGATE_CONFIG=" + path,
		"HOME=/nowhere", "FLOODGATE=ignored", // not ours
		"FLOODGATE_MAX_CONECTIONS=5", // a typo: warned about, sets nothing
	}
	res, err := parseServe(t, env)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"max-connections-per-ip": "9", "max-connections": "321", "log-format": "json",
		"header-read-timeout": "2000"} {
		if got := res.value(name); got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
		if src := res.conf.sources[name]; src != sourceEnv {
			t.Errorf("%s came from %q, want env", name, src)
		}
	}
	if got := res.value("max-header-count"); got != "42" || res.conf.sources["max-header-count"] != sourceFile {
		t.Errorf("max-header-count = %q from %q, want 42 from the file FLOODGATE_CONFIG names", got, res.conf.sources["max-header-count"])
	}
	if len(res.http.Routes) != 2 || res.http.Routes[0].RPS != 5 || res.http.Routes[1].Prefix != "/b" {
		t.Errorf("routes = %+v, want a (5 rps) and b", res.http.Routes)
	}
	if u := res.conf.unknownEnv; len(u) != 1 || u[0] != "FLOODGATE_MAX_CONECTIONS" {
		t.Errorf("unknown variables %v, want the typo FLOODGATE_MAX_CONECTIONS", u)
	}
	if _, err := parseServe(t, []string{"FLOODGATE_MAX_CONNECTIONS=1", "FLOODGATE_MAX_TOTAL_CONNECTIONS=2"}); err == nil ||
		!strings.Contains(err.Error(), "FLOODGATE_MAX_TOTAL_CONNECTIONS") {
		t.Errorf("a flag set to two values under two names: %v, want an error naming both", err)
	}
	if _, err := parseServe(t, []string{"FLOODGATE_MAX_CONNECTIONS=lots"}); err == nil || !strings.Contains(err.Error(), "FLOODGATE_MAX_CONNECTIONS") {
		t.Errorf("a bad value: %v, want an error naming the variable", err)
	}
}

// TestPrecedenceFlagEnvFileProfileDefault: each limit is given at some of
// the five levels; the highest wins and its source is recorded, for the
// Kafka-side and the HTTP limits alike (the profile is production).
func TestPrecedenceFlagEnvFileProfileDefault(t *testing.T) {
	tests := []struct {
		limit            string
		flag, env, file  string // "" = not given there
		inProfile        bool   // production sets it (documents the case)
		want, wantSource string
	}{
		{limit: "max-connections", flag: "11", env: "22", file: "33", inProfile: true, want: "11", wantSource: sourceFlag},
		{limit: "max-connections-per-ip", env: "22", file: "33", inProfile: true, want: "22", wantSource: sourceEnv},
		{limit: "max-header-size-bytes", file: "3000", inProfile: true, want: "3000", wantSource: sourceFile},
		{limit: "max-header-count", inProfile: true, want: "50", wantSource: sourceProfile},
		{limit: "max-request-size", want: "104857600", wantSource: sourceDefault},
		{limit: "max-body-size-bytes", flag: "2000", env: "3000", inProfile: true, want: "2000", wantSource: sourceFlag},
		{limit: "max-header-value-bytes", env: "1500", file: "1600", inProfile: true, want: "1500", wantSource: sourceEnv},
		{limit: "send-timeout", file: "1234", want: "1234", wantSource: sourceFile},
		{limit: "max-in-flight-requests", file: "77", inProfile: true, want: "77", wantSource: sourceFile},
	}
	args := []string{"--limits-profile", "production"}
	var env []string
	var file strings.Builder
	for _, tt := range tests {
		if tt.flag != "" {
			args = append(args, "--"+tt.limit, tt.flag)
		}
		if tt.env != "" {
			env = append(env, envName(tt.limit)+"="+tt.env)
		}
		if tt.file != "" {
			fmt.Fprintf(&file, "%s: %s\n", tt.limit, tt.file)
		}
	}
	args = append(args, "--config", writeConfig(t, file.String()))
	res, err := parseServe(t, env, args...)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.limit, func(t *testing.T) {
			if got := res.value(tt.limit); got != tt.want {
				t.Errorf("value %q, want %q", got, tt.want)
			}
			if got := res.conf.sources[tt.limit]; got != tt.wantSource {
				t.Errorf("source %q, want %q", got, tt.wantSource)
			}
		})
	}
	if res.conf.sources["limits-profile"] != sourceFlag {
		t.Errorf("limits-profile came from %q", res.conf.sources["limits-profile"])
	}
}

// TestConfigFileErrorsNameTheKeyAndLine: what cannot be a setting is
// refused with the file, the line and the key.
func TestConfigFileErrorsNameTheKeyAndLine(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string // in the error
	}{
		{"unknown top-level key", "log-level: info\n\nmax-conections: 5\n", []string{":3:", `"max-conections"`, `did you mean "max-connections"`}},
		{"unknown key in the limits block", "limits:\n  max-total-connections: 5\n  max-frobs: 1\n", []string{":3:", `"limits.max-frobs"`}},
		{"a flag twice under two names", "max-connections: 5\nlimits:\n  max-total-connections: 6\n", []string{":3:", "max-total-connections", "yaml:1)"}},
		{"a list for a single value", "max-connections:\n  - 5\n  - 6\n", []string{":1:", "max-connections", "not a list"}},
		{"a mapping for a value", "max-connections:\n  a: 1\n", []string{":1:", "max-connections", "single value"}},
		{"no value", "max-connections:\n", []string{":1:", "max-connections", "no value"}},
		{"a bad value", "log-level: info\nmax-connections: lots\n", []string{":2", "max-connections", "lots"}},
		{"limits is not a block", "limits: 5\n", []string{":1:", "limits"}},
		{"not YAML", "max-connections: [\n", []string{"yaml"}},
		{"a config naming a config", "config: other.yaml\n", []string{":1:", "config"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.text)
			_, err := parseServe(t, nil, "--config", path)
			if err == nil {
				t.Fatalf("accepted:\n%s", tt.text)
			}
			for _, w := range append(tt.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	if _, err := parseServe(t, nil, "--config", filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("a missing file was accepted")
	}
}

// startWithConfig starts the binary with a config file (and the process's
// environment, which t.Setenv changes).
func startWithConfig(t *testing.T, text string, args ...string) (*process, string) {
	t.Helper()
	path := writeConfig(t, text)
	return startFloodgate(t, 4096, append([]string{"--in-memory", "--config", path}, args...)...), path
}

// adminStats returns /admin/stats' limit rows (Kafka and HTTP) by flag.
func adminStats(t *testing.T, addr string) map[string]struct{ Value, Source string } {
	t.Helper()
	_, body, err := get(addr, "/admin/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Limits     []struct{ Flag, Value, Source string } `json:"limits"`
		HTTPLimits []struct{ Flag, Value, Source string } `json:"http_limits"`
		Sources    map[string]string                      `json:"limit_sources"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/admin/stats: %v\n%s", err, body)
	}
	out := map[string]struct{ Value, Source string }{}
	for _, l := range append(st.Limits, st.HTTPLimits...) {
		if st.Sources[l.Flag] != l.Source {
			t.Errorf("%s: row source %q, limit_sources %q", l.Flag, l.Source, st.Sources[l.Flag])
		}
		out[l.Flag] = struct{ Value, Source string }{l.Value, l.Source}
	}
	return out
}

// TestAdminStatsSaysWhereEachLimitCameFrom runs the binary with a limit
// at each of the five levels and reads /admin/stats.
func TestAdminStatsSaysWhereEachLimitCameFrom(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	t.Setenv("FLOODGATE_MAX_CONNECTIONS_PER_IP", "44")
	t.Setenv("FLOODGATE_MAX_HEADER_SIZE_BYTES", "5000") // under the file's value
	p, _ := startWithConfig(t, "limits:\n  max-header-size-bytes: 6000\n  max-total-connections: 3000\n  max-connections-per-client: 99\n",
		"--limits-profile", "production", "--send-timeout", "4321")
	got := adminStats(t, p.http)
	want := map[string]struct{ Value, Source string }{
		"send-timeout":           {"4321", sourceFlag},
		"max-connections-per-ip": {"44", sourceEnv},
		"max-header-size-bytes":  {"5000", sourceEnv},
		"max-connections":        {"3000", sourceFile},
		"max-header-count":       {"50", sourceProfile},
		"max-request-size":       {"104857600", sourceDefault},
	}
	for flag, w := range want {
		if got[flag] != w {
			t.Errorf("%s: %+v, want %+v", flag, got[flag], w)
		}
	}
}

// TestUnknownConfigKeyStopsTheBinaryNamingTheLine: a typo in the file is
// an error at start, naming the file's line and the key.
func TestUnknownConfigKeyStopsTheBinaryNamingTheLine(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	path := writeConfig(t, "log-level: info\nlimits:\n  max-total-conections: 10\n")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, floodgateBinary(t), "serve", "--in-memory", "--kafka-listen", "127.0.0.1:0",
		"--http-listen", "127.0.0.1:0", "--config", path).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("want exit status 1, got %v:\n%s", err, out)
	}
	if want := path + `:3: unknown key "limits.max-total-conections"`; !strings.Contains(string(out), want) {
		t.Fatalf("output does not name %q:\n%s", want, out)
	}
}

// apiVersionsOn sends an ApiVersions request on a raw Kafka connection and
// reads its answer: it fails if the connection was closed or refused.
func apiVersionsOn(c net.Conn, corr int32) error {
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 0
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("reload-test")).AppendRequest(nil, req, corr)
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write(frame); err != nil {
		return err
	}
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		return err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c, body); err != nil {
		return err
	}
	if got := int32(binary.BigEndian.Uint32(body)); got != corr {
		return fmt.Errorf("correlation id %d, want %d", got, corr)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	if err := resp.ReadFrom(body[4:]); err != nil {
		return err
	}
	if resp.ErrorCode != 0 {
		return kerr.ErrorForCode(resp.ErrorCode)
	}
	return nil
}

// waitFor waits until the process's output contains s.
func waitFor(t *testing.T, p *process, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.stderr.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output:\n%s", s, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSIGHUPLowersMaxConnectionsPerIPLive: three connections from one IP
// are open under max-connections-per-ip 4; the file lowers it to 2 and
// SIGHUP applies it: the IP's next connection is refused (Kafka:
// THROTTLING_QUOTA_EXCEEDED, HTTP: 503 naming the new value), the three
// open ones keep working, and the WARN names a setting that cannot change
// live. Before the reload the same connection was admitted.
func TestSIGHUPLowersMaxConnectionsPerIPLive(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	p, path := startWithConfig(t, "max-connections-per-ip: 4\n")
	const src = "127.0.0.9"
	d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	var held []net.Conn
	for i := 0; i < 3; i++ {
		c, err := d.Dial("tcp", p.kafka)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		if err := apiVersionsOn(c, int32(i)); err != nil {
			t.Fatalf("connection %d under the limit: %v", i, err)
		}
	}
	defer closeAll(held)
	if code, body := getFrom(t, src, p.http, "/health", "", ""); code != 200 {
		t.Fatalf("4th connection under max-connections-per-ip 4: %d %s", code, body)
	}

	if err := os.WriteFile(path, []byte("log-level: warn\nlimits:\n  max-connections-per-client: 2\n  max-partitions: 5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, p, "reload done")
	out := p.stderr.String()
	for _, want := range []string{`limit=max-connections-per-ip old=4 new=2`, `max-partitions: 20000 → 5`, `log-level: info → warn`} {
		if !strings.Contains(out, want) {
			t.Errorf("the reload log does not say %q:\n%s", want, out)
		}
	}

	code, body := getFrom(t, src, p.http, "/health", "", "")
	var v struct {
		Limit      string `json:"limit"`
		Configured int64  `json:"configured"`
	}
	if err := json.Unmarshal([]byte(body), &v); code != 503 || err != nil || v.Limit != "max-connections-per-ip" || v.Configured != 2 {
		t.Fatalf("a new connection over the lowered limit over HTTP: %d %s", code, body)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.kafka), kgo.RequestRetries(0), kgo.Dialer(d.DialContext))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl); !errors.Is(err, kerr.ThrottlingQuotaExceeded) {
		t.Fatalf("a new Kafka connection over the lowered limit: %v, want THROTTLING_QUOTA_EXCEEDED", err)
	}
	for i, c := range held {
		if err := apiVersionsOn(c, int32(100+i)); err != nil {
			t.Fatalf("connection %d, open before the reload: %v", i, err)
		}
	}
	if code, _ := getFrom(t, "127.0.0.10", p.http, "/health", "", ""); code != 200 {
		t.Fatalf("another IP after the reload: %d", code)
	}
	st := adminStats(t, p.http)
	if st["max-connections-per-ip"].Value != "2" || st["max-partitions"].Value != "20000" {
		t.Fatalf("/admin/stats after the reload: per-ip %+v, max-partitions %+v (want 2 and the kept 20000)",
			st["max-connections-per-ip"], st["max-partitions"])
	}
	p.alive(t)
}

// TestSIGHUPWithABadFileKeepsServing: a file that does not parse, names
// an unknown key or holds an invalid value is logged on reload and the
// running limits stay; a good file afterwards is applied.
func TestSIGHUPWithABadFileKeepsServing(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	p, path := startWithConfig(t, "max-header-count: 60\n")
	for i, bad := range []string{"max-header-count: [\n", "max-header-cont: 10\n", "max-header-count: 0\n", "max-connections: -5\n"} {
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(p.stderr.String(), "reload failed") < i+1 {
			if time.Now().After(deadline) {
				t.Fatalf("no failed reload logged for %q:\n%s", bad, p.stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		p.alive(t)
		if code, _, err := get(p.http, "/health"); err != nil || code != 200 {
			t.Fatalf("/health after a bad reload (%q): %d %v", bad, code, err)
		}
		if got := adminStats(t, p.http)["max-header-count"]; got.Value != "60" || got.Source != sourceFile {
			t.Fatalf("max-header-count after a bad reload (%q): %+v, want the running 60 from the file", bad, got)
		}
	}
	if err := os.WriteFile(path, []byte("max-header-count: 70\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, p, "limit=max-header-count old=60 new=70")
	if got := adminStats(t, p.http)["max-header-count"]; got.Value != "70" {
		t.Fatalf("max-header-count after a good reload: %+v", got)
	}
}

// TestREADMEConfigExampleParses: the configuration file README shows is
// accepted as written and sets what its comments say.
func TestREADMEConfigExampleParses(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const start = "```yaml\n# /etc/floodgate/floodgate.yaml\n"
	i := strings.Index(string(readme), start)
	if i < 0 {
		t.Fatal("README has no example configuration file")
	}
	text := string(readme[i+len("```yaml\n"):])
	text = text[:strings.Index(text, "```")]
	res, err := parseServe(t, nil, "--config", writeConfig(t, text))
	if err != nil {
		t.Fatalf("README's example: %v", err)
	}
	if res.lim.MaxConnections != 20000 || res.lim.MaxConnectionsPerIP != 200 || len(res.http.Routes) != 2 {
		t.Fatalf("README's example: max-connections %d, per IP %d, %d routes", res.lim.MaxConnections, res.lim.MaxConnectionsPerIP, len(res.http.Routes))
	}
}
