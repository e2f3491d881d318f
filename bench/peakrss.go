package bench

import (
	"sync"
	"time"
)

// How often a PeakRSSWatch samples the server's RSS: from /proc (cheap)
// or from /admin/stats (a request the server under load has to answer).
const (
	rssProcInterval  = 20 * time.Millisecond
	rssStatsInterval = 200 * time.Millisecond
)

// PeakRSSWatch follows a server's peak resident set while a load runs: it
// samples ServerProbe.RSS, and where the server is a local process (a PID
// whose high-water mark could be reset) it also reads the kernel's
// high-water mark (VmHWM) at the end, which holds a peak between two
// samples. One reading after the load would report what the server kept,
// not what it reached.
type PeakRSSWatch struct {
	probe     ServerProbe
	highWater bool // VmHWM was reset at the start
	stop      chan struct{}
	done      chan struct{}
	mu        sync.Mutex
	peak      int64
}

// WatchPeakRSS starts a watch of p's RSS; nothing is read when p is not
// Enabled.
func WatchPeakRSS(p ServerProbe) *PeakRSSWatch {
	w := &PeakRSSWatch{probe: p, stop: make(chan struct{}), done: make(chan struct{})}
	if !p.Enabled() {
		close(w.done)
		return w
	}
	w.highWater = p.PID > 0 && p.ResetRSSPeak() == nil
	interval := rssProcInterval
	if p.PID <= 0 {
		interval = rssStatsInterval
	}
	go func() {
		defer close(w.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			w.sample()
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// sample adds one RSS reading.
func (w *PeakRSSWatch) sample() {
	if v, err := w.probe.RSS(); err == nil {
		w.mu.Lock()
		w.peak = max(w.peak, v)
		w.mu.Unlock()
	}
}

// Stop ends the watch and returns the peak RSS in bytes: the largest
// sample, or the high-water mark since the start when that is larger
// (0: nothing could be read).
func (w *PeakRSSWatch) Stop() int64 {
	select {
	case <-w.done:
	default:
		close(w.stop)
		<-w.done
		w.sample()
	}
	if w.highWater {
		if v, err := w.probe.RSSPeak(); err == nil {
			w.peak = max(w.peak, v)
		}
	}
	return w.peak
}
