package attack

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// machineWatch records what the machine, the server and this process
// (the attacker and the good clients) did during an attack, so that a
// broken latency bound says whose time it was: the hypervisor's (steal),
// this process's (a sleeping goroutine woken late, GC pauses), or the
// server's (its CPU, page faults and GC).
type machineWatch struct {
	cpu0   cpuTimes
	srv0   map[string]float64
	gc0    time.Duration
	self0  time.Duration
	start  time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	late   time.Duration // the longest a 1 ms sleep overslept
	lateAt time.Duration // when that sleep began, from start
}

// serverDiagMetrics are the server's own counters a diagnosis reads.
var serverDiagMetrics = []string{"process_cpu_seconds_total", "process_minor_pagefaults_total", "go_gc_cpu_seconds_total"}

// watchMachine starts a watch; stop ends it and returns its summary.
func watchMachine(ctx context.Context, srv *Server) *machineWatch {
	w := &machineWatch{cpu0: readCPUTimes(), gc0: gcPauseTotal(), self0: selfCPU(), start: time.Now()}
	w.srv0, _ = readMetrics(ctx, srv, serverDiagMetrics)
	ctx, w.cancel = context.WithCancel(ctx)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for ctx.Err() == nil {
			t0 := time.Now()
			time.Sleep(time.Millisecond)
			if over := time.Since(t0) - time.Millisecond; over > 0 {
				w.mu.Lock()
				if over > w.late {
					w.late, w.lateAt = over, t0.Sub(w.start)
				}
				w.mu.Unlock()
			}
		}
	}()
	return w
}

// stop ends the watch and returns a function that says what it saw, in
// one line. What the machine and this process did is taken at once; the
// server's counters are read in the background, and the returned function
// waits for that read: a read of /metrics takes time, which the recovery
// watched meanwhile must not wait for.
func (w *machineWatch) stop(ctx context.Context, srv *Server) (summary func() string) {
	w.cancel()
	w.wg.Wait()
	took := time.Since(w.start)
	cpu := readCPUTimes().sub(w.cpu0)
	self, gc := selfCPU()-w.self0, gcPauseTotal()-w.gc0
	var srv1 map[string]float64
	var srvErr error
	read := make(chan struct{})
	go func() {
		defer close(read)
		srv1, srvErr = readMetrics(ctx, srv, serverDiagMetrics)
	}()
	return func() string {
		<-read
		var b strings.Builder
		if total := cpu.total(); total > 0 {
			fmt.Fprintf(&b, "machine over %v: busy %.0f%%, steal %.0f%%, iowait %.0f%%", took.Round(time.Millisecond),
				100*float64(total-cpu.idle-cpu.iowait-cpu.steal)/float64(total), 100*float64(cpu.steal)/float64(total), 100*float64(cpu.iowait)/float64(total))
		}
		if srvErr == nil && w.srv0 != nil {
			fmt.Fprintf(&b, "; server CPU %.2f s (GC %.2f s), %.0f minor page faults", srv1["process_cpu_seconds_total"]-w.srv0["process_cpu_seconds_total"],
				srv1["go_gc_cpu_seconds_total"]-w.srv0["go_gc_cpu_seconds_total"], srv1["process_minor_pagefaults_total"]-w.srv0["process_minor_pagefaults_total"])
		}
		w.mu.Lock()
		fmt.Fprintf(&b, "; this process (attacker, good clients): CPU %.2f s, GC pauses %v, a 1 ms sleep woke %v late at most (at +%v)",
			self.Seconds(), gc.Round(10*time.Microsecond), w.late.Round(10*time.Microsecond), w.lateAt.Round(time.Millisecond))
		w.mu.Unlock()
		return b.String()
	}
}

// slowSamples lists when (from start) each request of r slower than bound
// began and how long it took, at most 5.
func slowSamples(r *recorder, start time.Time, bound time.Duration) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, s := range r.s {
		if s.lat > bound && !s.start.Before(start) && len(out) < 5 {
			out = append(out, fmt.Sprintf("%v at +%v", ms(s.lat), s.start.Sub(start).Round(time.Millisecond)))
		}
	}
	return strings.Join(out, ", ")
}

// cpuTimes are the machine's CPU times from /proc/stat, in clock ticks.
type cpuTimes struct{ user, nice, system, idle, iowait, irq, softirq, steal int64 }

func (c cpuTimes) total() int64 {
	return c.user + c.nice + c.system + c.idle + c.iowait + c.irq + c.softirq + c.steal
}

func (c cpuTimes) sub(o cpuTimes) cpuTimes {
	return cpuTimes{c.user - o.user, c.nice - o.nice, c.system - o.system, c.idle - o.idle,
		c.iowait - o.iowait, c.irq - o.irq, c.softirq - o.softirq, c.steal - o.steal}
}

// readCPUTimes reads the machine's line of /proc/stat (zero when it
// cannot: the diagnosis then leaves the machine out).
func readCPUTimes() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return cpuTimes{}
	}
	var v [8]int64
	for i := range v {
		v[i], _ = strconv.ParseInt(f[i+1], 10, 64)
	}
	return cpuTimes{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]}
}

// gcPauseTotal is this process's total stop-the-world GC pause so far.
func gcPauseTotal() time.Duration {
	var s debug.GCStats
	debug.ReadGCStats(&s)
	return s.PauseTotal
}

// selfCPU is this process's user and system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
