package storage_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// childFDs counts the descriptors the child process holds.
func childFDs(t *testing.T, s *server) int {
	t.Helper()
	des, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.cmd.Process.Pid))
	if err != nil {
		t.Skipf("no /proc/<pid>/fd: %v", err)
	}
	return len(des)
}

func healthy(s *server) error {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + s.http + "/health")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/health: %s", resp.Status)
	}
	return nil
}

// TestTenThousandPartitionsUnderLowOpenFilesLimit runs the real binary
// with default flags under ulimit -n 1024 and creates a topic of 10,000
// partitions. Before the descriptor budget each partition kept three files
// open: the process ran out of descriptors, both listeners failed with
// EMFILE, and a restart on the same data dir failed (epoll_create1: too
// many open files). Now the process stays under its limit, /health and new
// Kafka connections are served, any partition takes and returns records,
// and a restart (after SIGKILL) serves them again.
func TestTenThousandPartitionsUnderLowOpenFilesLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and creates 40,000 files")
	}
	const nofile, parts = 1024, 10000
	s := newServer(t, buildFloodgate(t))
	s.nofile = nofile
	s.start()
	if !strings.Contains(s.stderr.String(), "max_open_segment_files=") {
		t.Fatalf("no descriptor budget logged:\n%s", s.stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.addr), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequestTimeoutOverhead(150*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	start := time.Now()
	resp, err := kadm.NewClient(cl).CreateTopics(ctx, parts, 1, nil, "wide")
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("create: %v\n%s", err, s.logs())
	}
	took := time.Since(start)
	fds := childFDs(t, s)
	t.Logf("ulimit -n %d: CreateTopics %d partitions took %v; child holds %d descriptors", nofile, parts, took.Round(time.Millisecond), fds)
	if fds > nofile/2 { // the binary before the budget held 1021 of 1024 here
		t.Fatalf("child holds %d descriptors, its limit is %d", fds, nofile)
	}
	roundTrip := func(partition int32, value string) {
		t.Helper()
		if err := healthy(s); err != nil {
			t.Fatalf("health: %v", err)
		}
		p, err := kgo.NewClient(kgo.SeedBrokers(s.addr), kgo.RecordPartitioner(kgo.ManualPartitioner())) // a new connection
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if err := p.ProduceSync(ctx, &kgo.Record{Topic: "wide", Partition: partition, Value: []byte(value)}).FirstErr(); err != nil {
			t.Fatalf("produce to %d: %v\n%s", partition, err, s.logs())
		}
		c, err := kgo.NewClient(kgo.SeedBrokers(s.addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"wide": {partition: kgo.NewOffset().AtStart()}}))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for {
			fs := c.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("consume %d: %v", partition, fs.Errors())
			}
			found := false
			fs.EachRecord(func(r *kgo.Record) { found = found || string(r.Value) == value })
			if found {
				return
			}
		}
	}
	roundTrip(parts-1, "before restart")
	s.kill()
	start = time.Now()
	s.start() // the port listens before the partitions are loaded: wait for /health
	for err := healthy(s); err != nil; err = healthy(s) {
		if time.Since(start) > 90*time.Second {
			t.Fatalf("not healthy %v after restart: %v\n%s", time.Since(start), err, s.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	roundTrip(parts-1, "after restart")
	t.Logf("restart on the same data dir: served after %v, %d descriptors", time.Since(start).Round(time.Millisecond), childFDs(t, s))
	roundTrip(0, "first partition")
}
