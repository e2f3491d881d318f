// Package earlylog holds what the standard library's log package is given
// before floodgate's own logger exists, so that every line floodgate
// writes goes through slog (and is JSON with --log-format json).
//
// The metrics library prints one INFO line from a package-level variable
// (when the kernel has no PSI files), that is before main runs. Go
// initialises a package once its imports are, choosing the first ready one
// by import path; this package imports only bytes, log, log/slog, strings
// and sync, so it is ready (and initialised) before net/http, which the
// metrics library imports — its init therefore runs first and catches that
// line (GODEBUG=inittrace=1 shows the order).
package earlylog

import (
	"bytes"
	"log"
	"log/slog"
	"strings"
	"sync"
)

// maxHeld bounds what is held before a logger exists: a library that logs
// without end before main cannot grow the process.
const maxHeld = 64 << 10

// holder is log's output until Replay; the package-level state is the
// process's one standard logger, which is process-wide by nature.
var holder = &held{}

type held struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write keeps p while there is room.
func (h *held) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.buf.Len()+len(p) <= maxHeld {
		h.buf.Write(p)
	}
	return len(p), nil
}

func init() {
	log.SetFlags(0)
	log.SetOutput(holder)
}

// Replay writes the lines held so far to l (at INFO, with logger=stdlib)
// and makes l the process's default logger, which sends every later line
// of the log package through l too.
func Replay(l *slog.Logger) {
	holder.mu.Lock()
	lines := holder.buf.String()
	holder.buf.Reset()
	holder.mu.Unlock()
	for _, line := range strings.Split(strings.TrimSpace(lines), "\n") {
		if line != "" {
			l.Info(strings.TrimPrefix(line, "INFO: "), "logger", "stdlib")
		}
	}
	slog.SetDefault(l)
}
