package main

import (
	"regexp"
	"runtime"
	"strconv"
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
