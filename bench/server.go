package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/floodgate/floodgate/limits"
)

// ServerProbe reads a server's resource use: from floodgate's /admin/stats
// (StatsURL) or from /proc/PID (PID), whichever is set; /proc wins for
// RSS, descriptors and CPU, and covers the process with its direct
// children (nginx's workers).
type ServerProbe struct {
	PID      int
	StatsURL string
}

// Enabled reports whether anything can be read.
func (p ServerProbe) Enabled() bool { return p.PID > 0 || p.StatsURL != "" }

var statsClient = &http.Client{Timeout: 3 * time.Second}

// stats fetches floodgate's /admin/stats.
func (p ServerProbe) stats() (map[string]any, error) {
	resp, err := statsClient.Get(p.StatsURL)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p.StatsURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read %s: status %d", p.StatsURL, resp.StatusCode)
	}
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return nil, fmt.Errorf("decode %s: %w", p.StatsURL, err)
	}
	return m, nil
}

// RSS returns the server's resident set size in bytes.
func (p ServerProbe) RSS() (int64, error) {
	if p.PID > 0 {
		return sumTree(p.PID, procRSS)
	}
	if p.StatsURL == "" {
		return 0, errors.New("no --pid or --stats-url to read server RSS from")
	}
	m, err := p.stats()
	if err != nil {
		return 0, err
	}
	v, ok := m["process_resident_bytes"].(float64)
	if !ok {
		return 0, fmt.Errorf("%s has no process_resident_bytes", p.StatsURL)
	}
	return int64(v), nil
}

// Connections returns the connections the server reports holding
// (/admin/stats "connections"), or its open descriptors when only a PID is
// known; ok is false when neither can be read.
func (p ServerProbe) Connections() (n int64, ok bool) {
	if p.StatsURL != "" {
		if m, err := p.stats(); err == nil {
			if v, found := m["connections"].(float64); found {
				return int64(v), true
			}
		}
	}
	if p.PID > 0 {
		if fds, err := sumTree(p.PID, func(pid int) (int64, error) {
			n, err := procFDs(pid)
			return int64(n), err
		}); err == nil {
			return fds, true
		}
	}
	return 0, false
}

// CPU returns the server's user+system CPU time.
func (p ServerProbe) CPU() (time.Duration, error) {
	if p.PID <= 0 {
		return 0, errors.New("CPU time needs --pid")
	}
	d, err := sumTree(p.PID, func(pid int) (int64, error) {
		d, err := procCPU(pid)
		return int64(d), err
	})
	return time.Duration(d), err
}

// children returns the direct children of pid (nginx's workers).
func children(pid int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// sumTree adds get over pid and its direct children: a server such as
// nginx holds its connections in worker processes.
func sumTree(pid int, get func(int) (int64, error)) (int64, error) {
	total, err := get(pid)
	if err != nil {
		return 0, err
	}
	for _, c := range children(pid) {
		if v, err := get(c); err == nil {
			total += v
		}
	}
	return total, nil
}

// Alive reports whether the server process exists (true without a PID).
func (p ServerProbe) Alive() bool {
	if p.PID <= 0 {
		return true
	}
	if err := syscall.Kill(p.PID, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID))
	if err != nil {
		return false
	}
	// A zombie (state Z) is not serving.
	if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

// ResetRSSPeak resets the kernel's high-water mark of the server's resident
// set (VmHWM) to its current RSS, for the process and each of its direct
// children, by writing 5 to /proc/PID/clear_refs: RSSPeak then reports the
// peak since this moment, a spike between two RSS samples included. It
// needs a PID and the right to write the processes' clear_refs (their
// owner, or root); an error means RSSPeak would report older peaks too.
func (p ServerProbe) ResetRSSPeak() error {
	if p.PID <= 0 {
		return errors.New("resetting the RSS high-water mark needs --pid")
	}
	for _, pid := range append([]int{p.PID}, children(p.PID)...) {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
			return fmt.Errorf("reset the RSS high-water mark of pid %d: %w", pid, err)
		}
	}
	return nil
}

// RSSPeak returns the server's resident set high-water mark (VmHWM) since
// it started or since ResetRSSPeak, added over the process and its direct
// children: for a server with workers (nginx) each peaked on its own, so the
// sum is an upper bound of their peak together.
func (p ServerProbe) RSSPeak() (int64, error) {
	if p.PID <= 0 {
		return 0, errors.New("the RSS high-water mark needs --pid")
	}
	return sumTree(p.PID, procHWM)
}

func procRSS(pid int) (int64, error) { return procStatusBytes(pid, "VmRSS") }

func procHWM(pid int) (int64, error) { return procStatusBytes(pid, "VmHWM") }

// procStatusBytes reads a field given in kB (VmRSS, VmHWM) from
// /proc/PID/status, in bytes.
func procStatusBytes(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read %s of pid %d: %w", field, pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err != nil {
					return 0, fmt.Errorf("parse %s of pid %d: %w", field, pid, err)
				}
				return kb * 1024, nil
			}
		}
	}
	return 0, fmt.Errorf("pid %d: no %s in /proc status", pid, field)
}

func procFDs(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, fmt.Errorf("count descriptors of pid %d: %w", pid, err)
	}
	return len(ents), nil
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU of pid %d: %w", pid, err)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("pid %d: bad /proc stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// fields after ")": state(0) ... utime(11) stime(12)
	if len(f) < 13 {
		return 0, fmt.Errorf("pid %d: short /proc stat", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("pid %d: bad CPU fields in /proc stat", pid)
	}
	return time.Duration(u+s) * time.Second / clockTicks, nil
}

// RaiseNoFile raises this process's soft open-files limit to the hard one
// and returns the new soft limit.
func RaiseNoFile() (uint64, error) {
	soft, _, err := limits.RaiseNoFile()
	return soft, err
}

// FDs returns the open descriptors of pid (from /proc/PID/fd).
func FDs(pid int) (int, error) { return procFDs(pid) }
