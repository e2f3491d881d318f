package main

import (
	"math"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestSizeSchedulerGivesEachEventLoopAProcessor(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	const cpus = 3
	tests := []struct {
		name                        string
		loops, workers, procs       int
		envSet                      bool
		wantLoops, wantWorkers, got int
	}{
		{"defaults", 0, 0, 0, false, cpus, 4 * cpus, 2 * cpus},
		{"more loops", 5, 0, 0, false, 5, 4 * cpus, cpus + 5},
		{"workers named", 0, 7, 0, false, cpus, 7, 2 * cpus},
		{"--gomaxprocs named", 2, 0, 4, false, 2, 4 * cpus, 4},
		{"GOMAXPROCS environment kept", 0, 0, 0, true, cpus, 4 * cpus, cpus},
		{"--gomaxprocs over the environment", 0, 0, 9, true, cpus, 4 * cpus, 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runtime.GOMAXPROCS(cpus) // the CPUs Go may use, as started
			s := sizeScheduler(tt.loops, tt.workers, tt.procs, tt.envSet)
			if s.cpus != cpus || s.loops != tt.wantLoops || s.workers != tt.wantWorkers || s.procs != tt.got || runtime.GOMAXPROCS(0) != tt.got {
				t.Fatalf("got %+v and GOMAXPROCS %d; want loops %d, workers %d, procs %d", s, runtime.GOMAXPROCS(0), tt.wantLoops, tt.wantWorkers, tt.got)
			}
		})
	}
}

// TestBinaryRunsOneProcessorPerEventLoopMore reads the binary's start-up
// line: by default GOMAXPROCS is the CPUs plus the event loops; with the
// GOMAXPROCS environment variable set, it is kept.
func TestBinaryRunsOneProcessorPerEventLoopMore(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	line := regexp.MustCompile(`floodgate serving.* gomaxprocs=(\d+) cpus=(\d+) event_loops=(\d+)`)
	read := func(p *process) (procs, cpus, loops int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if m := line.FindStringSubmatch(p.stderr.String()); m != nil {
				a, _ := strconv.Atoi(m[1])
				b, _ := strconv.Atoi(m[2])
				c, _ := strconv.Atoi(m[3])
				return a, b, c
			}
			if time.Now().After(deadline) {
				t.Fatalf("no start-up line with gomaxprocs in:\n%s", p.stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	procs, cpus, loops := read(startFloodgate(t, 4096, "--in-memory", "--event-loops", "3"))
	if loops != 3 || procs != cpus+3 {
		t.Fatalf("default: gomaxprocs %d with %d CPUs and %d event loops; want CPUs + loops", procs, cpus, loops)
	}
	t.Setenv("GOMAXPROCS", "1")
	procs, cpus, loops = read(startFloodgate(t, 4096, "--in-memory"))
	if procs != 1 || cpus != 1 || loops != 1 {
		t.Fatalf("GOMAXPROCS=1: gomaxprocs %d, CPUs %d, event loops %d; want 1 each", procs, cpus, loops)
	}
}

func TestGoMemoryLimitIsNineTenthsOfTheProcessLimit(t *testing.T) {
	for _, tt := range []struct{ process, want int64 }{
		{0, math.MaxInt64},
		{-1, math.MaxInt64},
		{1000, 900},
		{1 << 30, 966367642},
	} {
		if got := goMemoryLimit(tt.process); got != tt.want {
			t.Errorf("goMemoryLimit(%d) = %d, want %d", tt.process, got, tt.want)
		}
	}
}

// TestGoMemoryLimitFollowsTheProcessMemoryLimit reads the runtime's soft
// memory limit as the binary logs it (read back from the runtime): nine
// tenths of --max-process-memory-bytes at start, none once SIGHUP turns
// the process limit off, and a GOMEMLIMIT environment variable kept as set.
func TestGoMemoryLimitFollowsTheProcessMemoryLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	p, path := startWithConfig(t, "max-process-memory-bytes: 1073741824\n")
	waitFor(t, p, "go_memory_limit=966367642 ")
	if err := os.WriteFile(path, []byte("max-process-memory-bytes: 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, p, "reload done")
	if out := p.stderr.String(); !strings.Contains(out, "Go memory limit changed") || !strings.Contains(out, "go_memory_limit=off") {
		t.Fatalf("no Go memory limit change to off after the reload:\n%s", out)
	}
	p.alive(t)

	t.Setenv("GOMEMLIMIT", "500MiB")
	p2, _ := startWithConfig(t, "max-process-memory-bytes: 1073741824\n")
	waitFor(t, p2, "go_memory_limit=524288000 ")
}
