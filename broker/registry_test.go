package broker

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/storage"
)

// TestEveryKeyFileRegistersItsKey checks the registry against the files: each
// broker/NN_name.go registers key NN (and only it registers NN), and every
// registered key comes from its NN_ file.
func TestEveryKeyFileRegistersItsKey(t *testing.T) {
	files, err := filepath.Glob("[0-9][0-9]_*.go")
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`^(\d\d)_[a-z_]+\.go$`)
	fileKeys := map[int]string{}
	for _, f := range files {
		m := name.FindStringSubmatch(f)
		if m == nil || strings.HasSuffix(f, "_test.go") {
			continue
		}
		key, _ := strconv.Atoi(m[1])
		fileKeys[key] = f
	}
	if len(fileKeys) == 0 {
		t.Fatal("no NN_*.go files found")
	}
	for key, f := range fileKeys {
		t.Run(f, func(t *testing.T) {
			a := apis[key]
			if a.fn == nil {
				t.Fatalf("%s does not register key %d", f, key)
			}
			if a.file != f {
				t.Errorf("key %d registered by %s, want %s", key, a.file, f)
			}
		})
	}
	for key, a := range apis {
		if a.fn != nil && fileKeys[key] == "" {
			t.Errorf("key %d registered by %s, which is not broker/%02d_*.go", key, a.file, key)
		}
	}
}

// TestRegisterRefusesMistakes checks that registration panics, when the
// package loads, on a handler whose response type is not its request's
// response kind, on a key registered twice and on an empty version range,
// and that a refused registration leaves the registry as it was.
func TestRegisterRefusesMistakes(t *testing.T) {
	type entry struct {
		min, max   int16
		file       string
		registered bool
	}
	snapshot := func() (s [len(apis)]entry) {
		for key, a := range apis {
			s[key] = entry{a.min, a.max, a.file, a.fn != nil}
		}
		return s
	}
	before := snapshot()
	for _, tc := range []struct {
		name string
		reg  func()
	}{
		{"response of another API", func() { // key 25 is not served: only the type check refuses it
			register(0, 0, func(*Broker, *kmsg.AddOffsetsToTxnRequest, *kmsg.FetchResponse, *Client, Responder) {})
		}},
		{"key registered twice", func() {
			register(0, 0, func(*Broker, *kmsg.ProduceRequest, *kmsg.ProduceResponse, *Client, Responder) {})
		}},
		{"key registered twice without response", func() {
			registerReq(0, 0, func(*Broker, *kmsg.FetchRequest, *Client, Responder) {})
		}},
		{"empty version range", func() {
			register(2, 1, func(*Broker, *kmsg.AddOffsetsToTxnRequest, *kmsg.AddOffsetsToTxnResponse, *Client, Responder) {})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("registered without a panic")
				}
				if snapshot() != before {
					t.Error("a refused registration changed the registry")
				}
			}()
			tc.reg()
		})
	}
}

// TestAPIVersionsListsExactlyTheRegisteredKeys checks that every version of
// ApiVersions advertises exactly the registered keys and ranges, and that the
// broker's VersionRange (which the loop checks requests against) agrees.
func TestAPIVersionsListsExactlyTheRegisteredKeys(t *testing.T) {
	b := newTestBroker(t)
	var want []kmsg.ApiVersionsResponseApiKey
	for key, a := range apis {
		if a.fn != nil {
			want = append(want, kmsg.ApiVersionsResponseApiKey{ApiKey: int16(key), MinVersion: a.min, MaxVersion: a.max})
		}
	}
	for key := int16(-1); key <= kafkaMaxKey+1; key++ {
		min, max, ok := b.VersionRange(key)
		var a api
		if key >= 0 && int(key) < len(apis) {
			a = apis[key]
		}
		if ok != (a.fn != nil) || ok && (min != a.min || max != a.max) {
			t.Errorf("VersionRange(%d) = %d-%d %v, registered %d-%d %v", key, min, max, ok, a.min, a.max, a.fn != nil)
		}
	}
	_, apiMax, _ := b.VersionRange(18)
	for v := int16(0); v <= apiMax; v++ {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			req := kmsg.NewPtrApiVersionsRequest()
			req.Version = v
			if v >= 3 {
				req.ClientSoftwareName, req.ClientSoftwareVersion = "test", "1"
			}
			r := call[*kmsg.ApiVersionsResponse](t, b, req)
			if r.ErrorCode != 0 {
				t.Fatalf("error code %d", r.ErrorCode)
			}
			got := slices.Clone(r.ApiKeys)
			for i := range got {
				got[i].UnknownTags = kmsg.Tags{}
			}
			if !slices.EqualFunc(got, want, func(x, y kmsg.ApiVersionsResponseApiKey) bool {
				return x.ApiKey == y.ApiKey && x.MinVersion == y.MinVersion && x.MaxVersion == y.MaxVersion
			}) {
				t.Errorf("advertised %v\nregistered %v", got, want)
			}
		})
	}
}

// TestCloseStopsWhatOpenStarted opens brokers in the shapes that start
// background goroutines (retention, offset expiry, the fsync syncer, group
// timers with a JoinGroup waiting) and checks that once Close returns the
// goroutine count comes back to what it was before Open, within a bounded
// wait, and that the waiting JoinGroup was answered.
func TestCloseStopsWhatOpenStarted(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name    string
		cfg     func(t *testing.T) Config
		waiting bool // leave a JoinGroup waiting for the rebalance
		started int  // goroutines Open starts at least
	}{
		{"memory", func(*testing.T) Config { return Config{Logger: quiet} }, false, 2},
		{"memory without offset expiry", func(*testing.T) Config {
			return Config{Logger: quiet, Groups: GroupLimits{OffsetsRetention: -1}}
		}, false, 1},
		{"data dir with fsync interval", func(t *testing.T) Config {
			return Config{Logger: quiet, DataDir: t.TempDir(), Fsync: storage.FsyncInterval, FsyncInterval: time.Hour}
		}, false, 3},
		{"memory with a JoinGroup waiting", func(*testing.T) Config { return Config{Logger: quiet, Groups: shortSessions} }, true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Goroutines of earlier tests (closed servers, timers) may
			// still be ending: count from a settled number, or one ending
			// during Open hides a goroutine Open started.
			before := settledGoroutines(2 * time.Second)
			b, err := Open(tc.cfg(t))
			if err != nil {
				t.Fatal(err)
			}
			var joined <-chan kmsg.Response
			if tc.waiting {
				// The first member's group is stable; the second
				// starts a rebalance that waits for the first.
				r := call[*kmsg.JoinGroupResponse](t, b, joinReq("g", joinOpt{instance: "a"}))
				wantCode(t, "join", r.ErrorCode, 0)
				joined = send(b, joinReq("g", joinOpt{instance: "b"}))
			}
			open := runtime.NumGoroutine()
			if open-before < tc.started {
				t.Errorf("goroutines %d before Open, %d after: want at least %d started", before, open, tc.started)
			}
			b.Close()
			after := waitGoroutines(before, 2*time.Second)
			t.Logf("goroutines: %d before Open, %d open, %d after Close", before, open, after)
			if after > before {
				buf := make([]byte, 1<<20)
				t.Fatalf("goroutines: %d before Open, %d after Close:\n%s", before, after, buf[:runtime.Stack(buf, true)])
			}
			b.Close() // a second Close does nothing
			if tc.waiting {
				select {
				case r := <-joined:
					if code := r.(*kmsg.JoinGroupResponse).ErrorCode; code != 15 {
						t.Errorf("waiting JoinGroup answered %d, want COORDINATOR_NOT_AVAILABLE (15)", code)
					}
				default:
					t.Error("the waiting JoinGroup was not answered by Close")
				}
			}
		})
	}
}

// waitGoroutines polls until at most n goroutines run or d has passed, and
// returns the last count. A goroutine that signalled its end (WaitGroup.Done)
// may still be running its last instructions when Close returns.
// settledGoroutines returns the number of goroutines once it has stayed
// the same for 50 ms (or after d).
func settledGoroutines(d time.Duration) int {
	deadline := time.Now().Add(d)
	n := runtime.NumGoroutine()
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return n
		}
		n = m
	}
	return n
}

func waitGoroutines(n int, d time.Duration) int {
	deadline := time.Now().Add(d)
	for {
		got := runtime.NumGoroutine()
		if got <= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}
