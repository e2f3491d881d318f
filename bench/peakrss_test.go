package bench

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/floodgate/floodgate/internal/testproc"
)

// spikyServerArg, as the test binary's first argument, makes it run
// serveSpiky instead of the tests (TestMain): a server process whose
// memory peaks under load and falls back after it.
const spikyServerArg = "bench-test-spiky-server"

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == spikyServerArg {
		os.Exit(serveSpiky(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// spikeMiB is how much a spike of the spiky server takes, for 30 ms.
const spikeMiB = 160

// spike takes spikeMiB MiB for 30 ms: the RSS is back where it was once
// it returns.
func spike() error { return testproc.TouchMemory(spikeMiB, 30*time.Millisecond) }

// serveSpiky runs the spiky server: on its HTTP listener GET /spike
// spikes before it answers, any other path answers at once; its hold
// listener accepts connections and holds them, and spikes once as it
// accepts the -spike-at-conn'th. It prints "listening http=ADDR
// hold=ADDR" once both are bound.
func serveSpiky(args []string) int {
	fs := flag.NewFlagSet(spikyServerArg, flag.ContinueOnError)
	spikeAt := fs.Int("spike-at-conn", 10, "the held connection whose accept spikes")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	httpLn, err1 := net.Listen("tcp", "127.0.0.1:0")
	holdLn, err2 := net.Listen("tcp", "127.0.0.1:0")
	if err1 != nil || err2 != nil {
		fmt.Fprintln(os.Stderr, err1, err2)
		return 1
	}
	go func() {
		var held []net.Conn
		for {
			c, err := holdLn.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
			if len(held) == *spikeAt {
				go func() { _ = spike() }()
			}
		}
	}()
	fmt.Printf("listening http=%s hold=%s\n", httpLn.Addr(), holdLn.Addr())
	err := http.Serve(httpLn, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/spike" {
			if err := spike(); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	}))
	fmt.Fprintln(os.Stderr, err)
	return 1
}

// startSpiky starts the spiky server as a child process and returns its
// PID and its two addresses.
func startSpiky(t *testing.T) (pid int, httpAddr, holdAddr string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := StartProc("spiky", filepath.Join(t.TempDir(), "spiky.log"), self, spikyServerArg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(p.Log)
		for _, f := range strings.Fields(string(b)) {
			if v, ok := strings.CutPrefix(f, "http="); ok {
				httpAddr = v
			} else if v, ok := strings.CutPrefix(f, "hold="); ok {
				holdAddr = v
			}
		}
		if httpAddr != "" && holdAddr != "" {
			return p.PID(), httpAddr, holdAddr
		}
	}
	b, _ := os.ReadFile(p.Log)
	t.Fatalf("the spiky server did not listen:\n%s", b)
	return 0, "", ""
}

// TestLoadToolsReportThePeakRSS: a server whose RSS rises by 160 MiB for
// 30 ms under the load and falls back after it shows that peak in the
// overload step and in the flood that caused it. One reading of the RSS
// after the load (what they reported) saw the server at rest.
func TestLoadToolsReportThePeakRSS(t *testing.T) {
	tests := []struct {
		name string
		// run loads the spiky server and returns the peak RSS reported.
		run func(t *testing.T, probe ServerProbe, httpAddr, holdAddr string) int64
	}{
		{"overload step", func(t *testing.T, probe ServerProbe, httpAddr, _ string) int64 {
			r, err := RunOverload(context.Background(), OverloadConfig{URL: "http://" + httpAddr + "/spike", Limit: 10,
				Multipliers: []float64{1}, Connections: 1, Step: 400 * time.Millisecond, Server: probe})
			if err != nil {
				t.Fatal(err)
			}
			return r.Steps[0].PeakRSSBytes
		}},
		{"flood", func(t *testing.T, probe ServerProbe, httpAddr, holdAddr string) int64 {
			r, err := RunFlood(context.Background(), FloodConfig{Flood: HoldSpec{Target: holdAddr, Count: 20, PerIP: 10},
				ProbeURL: "http://" + httpAddr + "/health", ProbeRate: 100, Before: 100 * time.Millisecond, During: 300 * time.Millisecond, Server: probe})
			if err != nil {
				t.Fatal(err)
			}
			return r.PeakRSSBytes
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pid, httpAddr, holdAddr := startSpiky(t)
			probe := ServerProbe{PID: pid}
			peak := tt.run(t, probe, httpAddr, holdAddr)
			after, err := probe.RSS()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("peak RSS %s, after the load %s", MiB(peak), MiB(after))
			if peak < spikeMiB<<20 {
				t.Errorf("peak RSS %s, want at least the %d MiB the server took under the load (RSS after it: %s)", MiB(peak), spikeMiB, MiB(after))
			}
		})
	}
}
