package main

import (
	"math"
	"runtime"
	"runtime/debug"
	"strconv"
)

// schedSize is how many event loops, request workers and Go processors
// (GOMAXPROCS) the server runs with.
type schedSize struct {
	cpus, loops, workers, procs int
}

// sizeScheduler resolves --event-loops, --workers and --gomaxprocs (0 each
// for the default) against the CPUs Go may use as the process started
// (runtime.GOMAXPROCS: the machine's CPUs, a container's CPU quota, or the
// GOMAXPROCS environment variable), and sets GOMAXPROCS.
//
// By default the Go scheduler gets one processor (P) more per event loop.
// Each gnet event loop is a goroutine (not locked to a thread: gnet's
// LockOSThread option measured no faster, BENCHMARKS.md) that spends its
// idle time in epoll_wait, a system call that holds a P; with GOMAXPROCS
// equal to the loops, every other goroutine (request workers, acceptors,
// registrars, the collector) runs only on a P the runtime takes back from
// a waiting loop, and a loop woken by traffic then waits for a P before it
// reads. With the extra Ps a woken loop finds its own P, and the CPUs are
// still shared by the kernel as before. Measured on 2 CPUs (BENCHMARKS.md,
// "Go processors per event loop"): HTTP at 1000 connections +9% req/s
// and a lower p99, and the p99 of an established client during a
// 60,000-connection flood a third to a half of what it was.
//
// An operator's GOMAXPROCS environment variable is kept as it is (envSet),
// unless --gomaxprocs names a number. Not measured here: on many CPUs twice
// the Ps also doubles the collector's dedicated mark workers while it
// marks; and a value set at start no longer follows a container's CPU
// limit when it changes later (Go's own default does).
func sizeScheduler(loops, workers, gomaxprocs int, envSet bool) schedSize {
	cpus := runtime.GOMAXPROCS(0)
	if loops <= 0 {
		loops = cpus
	}
	if workers <= 0 {
		workers = 4 * cpus
	}
	procs := gomaxprocs
	switch {
	case procs > 0:
	case envSet:
		procs = cpus
	default:
		procs = cpus + loops
	}
	runtime.GOMAXPROCS(procs)
	return schedSize{cpus: cpus, loops: loops, workers: workers, procs: procs}
}

// goMemoryLimit is the Go runtime's soft memory limit for a process memory
// limit of processLimit bytes (--max-process-memory-bytes/-percent; 0 or
// less: none): nine tenths of it, so that as the process nears the limit the
// collector runs more often and garbage does not trip the refusals, which
// are meant for memory in use. Without it the heap may grow to twice what
// is live before a collection (GOGC=100), and a process whose live memory
// is half its limit could reach it with garbage. The tenth left is for what
// the Go runtime does not count against its limit (the binary, C and
// kernel memory). No limit: math.MaxInt64, Go's "none".
func goMemoryLimit(processLimit int64) int64 {
	if processLimit <= 0 {
		return math.MaxInt64
	}
	return processLimit - processLimit/10
}

// setGoMemoryLimit applies goMemoryLimit, unless the operator set
// GOMEMLIMIT (envSet: then it is kept as set), and returns the limit the
// runtime now has, for the log ("off" when none).
func setGoMemoryLimit(processLimit int64, envSet bool) string {
	if !envSet {
		debug.SetMemoryLimit(goMemoryLimit(processLimit))
	}
	if n := debug.SetMemoryLimit(-1); n != math.MaxInt64 {
		return strconv.FormatInt(n, 10)
	}
	return "off"
}
