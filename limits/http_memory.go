package limits

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
)

// MemoryTotal returns the memory available to this process: the cgroup
// limit (v2 memory.max, else v1 memory.limit_in_bytes) when one is set,
// else the machine's RAM from /proc/meminfo; 0 when none can be read.
func MemoryTotal() int64 {
	ram := memInfoTotal()
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		// cgroup v1 reports "no limit" as a huge page-aligned number.
		if err == nil && n > 0 && (ram == 0 || n < ram) {
			return n
		}
	}
	return ram
}

func memInfoTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("MemTotal:")) {
			continue
		}
		fs := strings.Fields(string(line[len("MemTotal:"):]))
		if len(fs) == 0 {
			return 0
		}
		kb, err := strconv.ParseInt(fs[0], 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}

// MemoryLimit resolves --max-process-memory-bytes and
// --max-process-memory-percent into one byte limit: the lower of the two
// that are set, 0 when neither is.
func (c *HTTPConfig) MemoryLimit(total int64) int64 {
	lim := c.MaxMemoryBytes
	if c.MaxMemoryPercent > 0 && total > 0 {
		p := int64(float64(total) * c.MaxMemoryPercent / 100)
		if lim == 0 || p < lim {
			lim = p
		}
	}
	return lim
}
