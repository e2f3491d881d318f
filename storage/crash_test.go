package storage_test

// Process-level durability tests: they build the floodgate binary, run it
// as a child process on a data dir and kill it with SIGKILL.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate/floodgate/internal/testproc"
	"github.com/floodgate/floodgate/storage"
)

// server is one floodgate child process and how to restart it.
type server struct {
	t       *testing.T
	bin     string
	dir     string
	addr    string
	http    string
	extra   []string
	nofile  int // when set, the child runs under ulimit -n nofile
	cmd     *exec.Cmd
	stderr  *testproc.Buffer
	allLogs strings.Builder
}

func buildFloodgate(t *testing.T) string { return testproc.Binary(t) }

func TestMain(m *testing.M) { testproc.Main(m) }

func newServer(t *testing.T, bin string, extra ...string) *server {
	s := &server{t: t, bin: bin, dir: t.TempDir(), addr: "127.0.0.1:0", http: "127.0.0.1:0", extra: extra}
	t.Cleanup(func() {
		if s.cmd != nil {
			s.cmd.Process.Kill()
			s.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("server logs:\n%s", s.logs())
		}
	})
	return s
}

// start runs the server and waits until its Kafka port accepts. The first
// start binds 127.0.0.1:0 and reads the ports the kernel gave it from the
// line --print-listen-addresses prints (no look-up that a parallel package could race);
// restarts bind those same ports again, because the test's producer keeps
// its broker address across kills, as a client of a restarted broker does.
func (s *server) start() {
	s.t.Helper()
	args := append([]string{"serve", "--data-dir", s.dir, "--kafka-listen", s.addr, "--http-listen", s.http,
		"--print-listen-addresses", "--log-level", "info"}, s.extra...)
	s.cmd = exec.Command(s.bin, args...)
	if s.nofile > 0 { // sh's ulimit lowers soft and hard: floodgate cannot raise it back
		s.cmd = exec.Command("sh", append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, s.nofile), s.bin}, args...)...)
	}
	s.stderr = &testproc.Buffer{}
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start: %v", err)
	}
	kafka, http, err := testproc.ListenAddrs(s.stderr, nil, 15*time.Second)
	if err != nil {
		s.t.Fatal(err)
	}
	s.addr, s.http = kafka, http
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", s.addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("server did not listen:\n%s", s.stderr)
}

// kill sends SIGKILL and reaps the process.
func (s *server) kill() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
	s.allLogs.WriteString(s.stderr.String())
	s.cmd = nil
}

func (s *server) logs() string {
	if s.cmd != nil {
		return s.allLogs.String() + s.stderr.String()
	}
	return s.allLogs.String()
}

// value is the deterministic, variable-size payload of record seq.
func value(seq int) []byte {
	return []byte(fmt.Sprintf("%09d|", seq) + strings.Repeat(string(rune('a'+seq%26)), seq%400))
}

func seqOf(v []byte) (int, error) {
	if len(v) < 10 || v[9] != '|' {
		return 0, errors.New("no sequence prefix")
	}
	return strconv.Atoi(string(v[:9]))
}

type ackedAt struct {
	partition int32
	offset    int64
}

// readAll consumes every partition of topic from its start to the high
// watermark it has now.
func readAll(t *testing.T, addr, topic string) map[int32][]*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	adm, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	want := map[int32]int64{}
	offs := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
			offs[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	out := map[int32][]*kgo.Record{}
	if len(want) == 0 {
		return out
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	done := func() bool {
		for p, end := range want {
			if n := len(out[p]); n == 0 || out[p][n-1].Offset < end-1 {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consuming to the high watermarks %v: %v", want, ctx.Err())
		}
		fs.EachError(func(_ string, p int32, err error) { t.Logf("fetch partition %d: %v", p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < want[r.Partition] {
				out[r.Partition] = append(out[r.Partition], r)
			}
		})
	}
	return out
}

// check verifies that every acknowledged record is present exactly once at
// its acknowledged offset, byte-exact, that every record present is intact
// and that sequences only grow within a partition (order, no duplicates).
func check(t *testing.T, round int, got map[int32][]*kgo.Record, acked map[int]ackedAt) {
	t.Helper()
	seen := map[int]ackedAt{}
	for p, recs := range got {
		last := -1
		for _, r := range recs {
			seq, err := seqOf(r.Value)
			if err != nil || !bytes.Equal(r.Value, value(seq)) {
				t.Fatalf("round %d: partition %d offset %d: corrupt record %q", round, p, r.Offset, r.Value[:min(len(r.Value), 20)])
			}
			if seq <= last {
				t.Fatalf("round %d: partition %d offset %d: sequence %d after %d (duplicate or reordered)", round, p, r.Offset, seq, last)
			}
			last = seq
			seen[seq] = ackedAt{p, r.Offset}
		}
	}
	for seq, at := range acked {
		if got, ok := seen[seq]; !ok || got != at {
			t.Fatalf("round %d: acknowledged record %d at %v: found %v (present %v)", round, seq, at, got, ok)
		}
	}
}

func TestCrashKeepsAcknowledgedRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills it 22 times")
	}
	const topic, kills = "crash", 22
	srv := newServer(t, buildFloodgate(t), "--segment-bytes", "65536", "--default-partitions", "3") // rolls often, so kills hit rolls too
	srv.start()

	var mu sync.Mutex
	acked := map[int]ackedAt{}
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.addr), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.MetadataMinAge(50*time.Millisecond),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var errs []string
	var writing atomic.Bool
	writing.Store(true)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		inflight := make(chan struct{}, 500)
		for seq := 0; ; seq++ {
			for !writing.Load() || seq%10 == 0 { // paused while checking; at most ~10k records/s
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
				if writing.Load() {
					break
				}
			}
			select {
			case <-stop:
				return
			case inflight <- struct{}{}:
			}
			cl.Produce(context.Background(), &kgo.Record{Value: value(seq)}, func(r *kgo.Record, err error) {
				<-inflight
				mu.Lock()
				if err == nil {
					acked[seq] = ackedAt{r.Partition, r.Offset}
				} else if len(errs) < 10 {
					errs = append(errs, err.Error())
				}
				mu.Unlock()
			})
		}
	}()
	rng := rand.New(rand.NewPCG(1, crashSeed(t)))
	ackedNow := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	for round := 1; round <= kills; round++ {
		// Kill at a random moment once the producer is writing again.
		base, waitStart := ackedNow(), time.Now()
		for ackedNow() < base+200 {
			if time.Since(waitStart) > 15*time.Second {
				t.Fatalf("round %d: the producer made no progress for 15s after the restart", round)
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		srv.kill()
		writing.Store(false)
		mu.Lock()
		snap := make(map[int]ackedAt, len(acked))
		for k, v := range acked {
			snap[k] = v
		}
		mu.Unlock()
		srv.start()
		got := readAll(t, srv.addr, topic)
		check(t, round, got, snap)
		t.Logf("round %d: %d acknowledged records intact", round, len(snap))
		writing.Store(true)
	}
	close(stop)
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	srv.kill()
	srv.start()
	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		t.Logf("produce errors (records not acknowledged): %q", errs)
	}
	check(t, kills+1, readAll(t, srv.addr, topic), acked)
	if len(acked) < 1000 {
		t.Fatalf("only %d records acknowledged: the test did not exercise much", len(acked))
	}
}

func TestServerRecoversCorruptTail(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	const topic = "tail"
	srv := newServer(t, buildFloodgate(t), "--default-partitions", "1")
	srv.start()
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.addr), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for seq := 0; seq < 100; seq++ { // one batch per record
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: value(seq)}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", seq, err)
		}
	}
	cl.Close()
	srv.kill()

	segs, _ := filepath.Glob(filepath.Join(srv.dir, "logs", "*", "0", "*.log"))
	if len(segs) != 1 {
		t.Fatalf("segments %v", segs)
	}
	data, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	var starts []int64
	for pos := 0; pos < len(data); {
		b, err := storage.ParseBatch(data[pos:])
		if err != nil {
			t.Fatalf("segment before damage, at %d: %v", pos, err)
		}
		starts = append(starts, int64(pos))
		pos += b.Size
	}
	if len(starts) != 100 {
		t.Fatalf("%d batches on disk, want 100", len(starts))
	}
	// Tear the last batch (cut 5 bytes) and scribble over the one before:
	// records 0-97 stay good.
	if err := os.Truncate(segs[0], int64(len(data))-5); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(segs[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("scribble scribble"), starts[98]+30); err != nil {
		t.Fatal(err)
	}
	f.Close()

	srv.start()
	got := readAll(t, srv.addr, topic)
	recs := got[0]
	if len(recs) != 98 {
		t.Fatalf("%d records served after recovery, want 98", len(recs))
	}
	for i, r := range recs {
		if !bytes.Equal(r.Value, value(i)) || r.Offset != int64(i) {
			t.Fatalf("record %d after recovery: offset %d %q", i, r.Offset, r.Value)
		}
	}
	if !strings.Contains(srv.logs(), "truncating a torn or corrupt segment tail") {
		t.Fatalf("no log line about the truncation:\n%s", srv.logs())
	}
	// The partition takes writes again after the cut.
	cl, err = kgo.NewClient(kgo.SeedBrokers(srv.addr), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if r, err := cl.ProduceSync(ctx, &kgo.Record{Value: value(98)}).First(); err != nil || r.Offset != 98 {
		t.Fatalf("produce after recovery: offset %v, %v", r, err)
	}
}

// crashSeedEnv names the environment variable that fixes the seed of the
// kill moments, so a failing run can be replayed.
const crashSeedEnv = "FLOODGATE_CRASH_SEED"

// crashSeed returns the seed for the random kill moments: the value of
// FLOODGATE_CRASH_SEED when set, else the clock. It logs the seed either way
// because a crash schedule that failed once is only worth something if it
// can be run again.
func crashSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(crashSeedEnv); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", crashSeedEnv, v, err)
		}
		seed = s
	}
	t.Logf("kill schedule seed %d (replay with %s=%d)", seed, crashSeedEnv, seed)
	return seed
}
