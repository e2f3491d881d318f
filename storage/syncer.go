package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// FsyncMode is when written data is fsynced.
type FsyncMode int

const (
	// FsyncInterval fsyncs every written file once per interval; an
	// acknowledged write is in the page cache (it survives a process crash)
	// and at most the last interval is at risk on power loss.
	FsyncInterval FsyncMode = iota
	// FsyncAlways answers a write only after it is fsynced; writes waiting
	// together share one fsync per file (group commit).
	FsyncAlways
	// FsyncNever leaves flushing to the operating system.
	FsyncNever
)

// String returns the flag spelling of m.
func (m FsyncMode) String() string {
	switch m {
	case FsyncAlways:
		return "always"
	case FsyncNever:
		return "never"
	}
	return "interval"
}

// ParseFsyncMode reads always, interval or never.
func ParseFsyncMode(s string) (FsyncMode, error) {
	switch s {
	case "always":
		return FsyncAlways, nil
	case "interval":
		return FsyncInterval, nil
	case "never":
		return FsyncNever, nil
	}
	return 0, fmt.Errorf("fsync mode %q: want always, interval or never", s)
}

// syncable is a file set the syncer can fsync.
type syncable interface{ sync() error }

// Syncer fsyncs the files written since its last round, on a timer
// (interval) or as soon as someone waits (always), in one goroutine. A
// nil *Syncer behaves as FsyncNever.
type Syncer struct {
	mode     FsyncMode
	interval time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	dirty   map[syncable]struct{}
	waiters []func(error)
	closed  bool

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

// NewSyncer starts a syncer; interval is used by FsyncInterval.
func NewSyncer(mode FsyncMode, interval time.Duration, logger *slog.Logger) *Syncer {
	if logger == nil {
		logger = slog.Default()
	}
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	s := &Syncer{
		mode: mode, interval: interval, log: logger,
		dirty: map[syncable]struct{}{},
		kick:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	if mode == FsyncNever {
		close(s.done)
		return s
	}
	go s.run()
	return s
}

// Mode returns the policy (FsyncNever for a nil syncer).
func (s *Syncer) Mode() FsyncMode {
	if s == nil {
		return FsyncNever
	}
	return s.mode
}

// markDirty notes that f has unsynced writes.
func (s *Syncer) markDirty(f syncable) {
	if s == nil || s.mode == FsyncNever {
		return
	}
	s.mu.Lock()
	s.dirty[f] = struct{}{}
	s.mu.Unlock()
}

// Wait calls fn once every write made before Wait is durable: in always
// mode from the syncer goroutine after the next fsync round (with the
// round's error), in the other modes at once with nil. fn must not block.
func (s *Syncer) Wait(fn func(error)) {
	if s.Mode() != FsyncAlways {
		fn(nil)
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		fn(ErrClosed)
		return
	}
	s.waiters = append(s.waiters, fn)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Syncer) run() {
	defer close(s.done)
	var tick <-chan time.Time
	if s.mode == FsyncInterval {
		t := time.NewTicker(s.interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-s.stop:
			s.round()
			return
		case <-s.kick:
		case <-tick:
		}
		s.round()
	}
}

// round fsyncs every dirty file, then answers the waiters that came before.
func (s *Syncer) round() {
	s.mu.Lock()
	dirty, waiters := s.dirty, s.waiters
	s.dirty, s.waiters = map[syncable]struct{}{}, nil
	s.mu.Unlock()
	var err error
	for f := range dirty {
		if e := f.sync(); e != nil {
			s.log.Error("fsync failed: data acknowledged in this round may not be durable", "err", e)
			err = errors.Join(err, e)
		}
	}
	for _, w := range waiters {
		w(err)
	}
}

// Close runs a last round and stops the goroutine; later waiters get
// ErrClosed.
func (s *Syncer) Close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	if s.mode != FsyncNever {
		close(s.stop)
	}
	<-s.done
}
