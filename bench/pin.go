package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ParseCPUs reads a CPU list such as "0", "1,3" or "0-1".
func ParseCPUs(s string) ([]int, error) {
	var cpus []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("cpu list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("cpu list %q: %w", s, err)
			}
		}
		if a < 0 || b < a {
			return nil, fmt.Errorf("cpu list %q: bad range %q", s, part)
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// PinTree confines process pid, every thread it has, and every process it
// has started (nginx's workers), to cpus. Threads and processes created
// afterwards inherit the mask of the thread that creates them, so a
// server pinned once it listens stays pinned. It separates a server from
// the load generator on a small machine, so that a latency measured by
// the generator is the server's, not the two fighting for one core.
func PinTree(pid int, cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	for _, p := range append([]int{pid}, childrenOf(pid)...) {
		err := eachThread(p, func(tid int) error { return unix.SchedSetaffinity(tid, &set) })
		if err != nil {
			return fmt.Errorf("pin %d to %v: %w", p, cpus, err)
		}
	}
	return nil
}

// LowerPriority sets every thread of process pid to niceness nice (0 to
// 19; raising it needs no privilege). Threads created afterwards inherit
// the niceness of the thread that creates them, so the whole process stays
// at it. A connection flood's holder processes run at 19, so that an
// established client measured on the same CPUs waits for the server, not
// for the holders.
func LowerPriority(pid, nice int) error {
	if nice < 0 || nice > 19 {
		return fmt.Errorf("niceness %d: want 0 to 19", nice)
	}
	err := eachThread(pid, func(tid int) error { return unix.Setpriority(unix.PRIO_PROCESS, tid, nice) })
	if err != nil {
		return fmt.Errorf("niceness %d for %d: %w", nice, pid, err)
	}
	return nil
}

// eachThread calls set for every thread of process pid; a thread that exits
// between the listing and the call is not an error.
func eachThread(pid int, set func(tid int) error) error {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := set(tid); err != nil && err != unix.ESRCH {
			return fmt.Errorf("thread %d: %w", tid, err)
		}
	}
	return nil
}

// AffinityOf returns the CPUs process pid may run on.
func AffinityOf(pid int) ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(pid, &set); err != nil {
		return nil, fmt.Errorf("affinity of %d: %w", pid, err)
	}
	var cpus []int
	for c := 0; c < len(set)*64 && len(cpus) < set.Count(); c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var kids []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The fields after the command (which may hold spaces) start
		// with the state, then the parent's pid.
		_, rest, ok := strings.Cut(string(stat), ") ")
		if f := strings.Fields(rest); ok && len(f) > 1 && f[1] == strconv.Itoa(pid) {
			kids = append(kids, p)
		}
	}
	return kids
}
