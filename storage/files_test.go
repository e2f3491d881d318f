package storage

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// countFDs counts this process's open descriptors.
func countFDs(t testing.TB) int {
	t.Helper()
	des, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(des)
}

// TestFileCacheBoundsDescriptorsOfManyLogs opens many partition logs with
// many segments under one small budget and checks, from /proc/self/fd,
// that the process holds no more than the budget while every log still
// reads and appends correctly (closed files reopen on use).
func TestFileCacheBoundsDescriptorsOfManyLogs(t *testing.T) {
	const logs, budget = 300, 40
	cache := NewFileCache(budget)
	base := countFDs(t)
	root := t.TempDir()
	ls := make([]*Log, logs)
	want := make([][]byte, logs)
	for i := range ls {
		l, _ := openLog(t, filepath.Join(root, fmt.Sprint(i)), func(o *Options) { o.Files = cache })
		ls[i] = l
		// Tiny segments: every batch rolls, the segment.bytes=1 case.
		want[i] = bytes.Join(appendN(t, l, 4, 1, 1000, 1), nil)
		if l.Stats().Segments != 4 {
			t.Fatalf("log %d: %d segments, want 4", i, l.Stats().Segments)
		}
	}
	peak := countFDs(t) - base
	for i, l := range ls {
		if got := readAll(t, l, 0); !bytes.Equal(got, want[i]) {
			t.Fatalf("log %d: read back differs", i)
		}
		peak = max(peak, countFDs(t)-base)
	}
	st := cache.Stats()
	t.Logf("%d logs x 4 segments (%d descriptors unbounded): held %d (peak %d over the start), opens %d, evictions %d",
		logs, logs*(activeFDs+3*sealedFDs), st.Open, peak, st.Opens, st.Evictions)
	if st.Open > budget || peak > budget+2 {
		t.Fatalf("descriptors: cache %d, process peak %d over its start; budget %d", st.Open, peak, budget)
	}
	if st.Evictions == 0 {
		t.Fatal("nothing was evicted")
	}
	for _, l := range ls {
		l.Close()
	}
	if st := cache.Stats(); st.Open != 0 {
		t.Fatalf("%d descriptors left after every log closed", st.Open)
	}
}

// TestFileCacheConcurrentUse reads and appends many logs from several
// goroutines under a budget smaller than the logs (run with -race): a
// pinned segment is never closed under its reader.
func TestFileCacheConcurrentUse(t *testing.T) {
	cache := NewFileCache(6)
	root := t.TempDir()
	var ls []*Log
	for i := 0; i < 12; i++ {
		l, _ := openLog(t, filepath.Join(root, fmt.Sprint(i)), func(o *Options) { o.Files = cache })
		appendN(t, l, 3, 1, 1000, 300)
		ls = append(ls, l)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for r := 0; r < 200; r++ {
				l := ls[(g*7+r)%len(ls)]
				if _, err := l.Read(0, 1<<20, true); err != nil {
					errs <- err
					return
				}
				if g == 0 {
					raw, info := testBatch(l.Stats().Next, 1, 1000, []byte("x"))
					if err := l.Append(raw, info, 300); err != nil {
						errs <- err
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestDamagedSealedSegmentIsFenced truncates a sealed segment on disk (and
// scribbles over another) and checks that a reader from the log start gets
// the good batches before the damage and then the next segment's, instead
// of an error on every read; the fence is reported once; retention works.
func TestDamagedSealedSegmentIsFenced(t *testing.T) {
	tests := []struct {
		name     string
		damage   func(path string, size int64) error
		keepHead int // batches of the damaged first segment still served
	}{
		{"truncated in a batch", func(p string, size int64) error { return os.Truncate(p, size-30) }, 3},
		{"truncated to nothing", func(p string, size int64) error { return os.Truncate(p, 0) }, 0},
		{"scribbled header", func(p string, size int64) error { return scribble(p, size/2+3, bytes.Repeat([]byte{0xff}, 64)) }, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l, _ := openLog(t, dir, nil)
			var all [][]byte
			all = append(all, appendN(t, l, 4, 1, 1000, 1<<20)...)
			raw, info := testBatch(l.Stats().Next, 1, 1000, []byte("next segment"))
			if err := l.Append(raw, info, 1); err != nil { // rolls: segment 0 holds 4 batches
				t.Fatal(err)
			}
			all = append(all, raw)
			all = append(all, appendN(t, l, 2, 1, 1000, 1<<20)...)
			l.Close()
			seg0 := filepath.Join(dir, "00000000000000000000.log")
			st, _ := os.Stat(seg0)
			if err := tc.damage(seg0, st.Size()); err != nil {
				t.Fatal(err)
			}
			var fences []int64
			l2, _ := openLog(t, dir, func(o *Options) {
				o.OnFence = func(seg, good, lost int64) { fences = append(fences, seg) }
			})
			got := readAll(t, l2, 0) // fails on any read error or a read returning nothing
			keep := tc.keepHead
			if keep < 0 { // the scribble lands in batch 2 (of 4 equal ones)
				keep = 2
			}
			want := bytes.Join(append(append([][]byte{}, all[:keep]...), all[4:]...), nil)
			if !bytes.Equal(got, want) {
				t.Fatalf("read %d bytes, want %d: the good batches around the damage", len(got), len(want))
			}
			readAll(t, l2, 0)
			if len(fences) != 1 || fences[0] != 0 {
				t.Fatalf("fences reported %v, want one for segment 0", fences)
			}
			// Every batch is stamped 1970: both segments go, the damaged too.
			if n, err := l2.Retain(time.Now().Add(time.Minute), 0, -1); err != nil || n != 2 { // past the mtime the damage just set
				t.Fatalf("retention deleted %d segments (err %v), want 2", n, err)
			}
		})
	}
}

// TestRetentionIgnoresFutureTimestamps stores a record stamped in the
// year 9999 and checks that time retention still deletes its segment once
// the segment's last write is older than retention.ms, and the segments
// after it too.
func TestRetentionIgnoresFutureTimestamps(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	l, _ := openLog(t, dir, func(o *Options) { o.Now = func() time.Time { return now } })
	y9999 := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	old := now.Add(-2 * time.Hour).UnixMilli()
	appendN(t, l, 1, 1, y9999, 1)
	appendN(t, l, 3, 1, old, 1)
	// The segments were written now; pretend it was two hours ago.
	for _, b := range []int64{0, 1, 2} {
		p := filepath.Join(dir, fmt.Sprintf("%020d.log", b))
		if err := os.Chtimes(p, now.Add(-2*time.Hour), now.Add(-2*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	n, err := l.Retain(now, time.Hour.Milliseconds(), -1)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 || l.Stats().Start != 4 {
		t.Fatalf("deleted %d segments, start %d: want the year-9999 segment and the three old ones after it", n, l.Stats().Start)
	}
}

// TestSegmentTruncatedWhileOpenIsFenced truncates a sealed segment under a
// running log (after it was read once, so its index is loaded) and checks
// that the next reads skip the damage instead of failing.
func TestSegmentTruncatedWhileOpenIsFenced(t *testing.T) {
	dir := t.TempDir()
	fences := 0
	l, _ := openLog(t, dir, func(o *Options) { o.OnFence = func(int64, int64, int64) { fences++ } })
	first := appendN(t, l, 4, 1, 1000, 1<<20)
	raw, info := testBatch(l.Stats().Next, 1, 1000, []byte("next segment"))
	if err := l.Append(raw, info, 1); err != nil {
		t.Fatal(err)
	}
	readAll(t, l, 0)
	seg0 := filepath.Join(dir, "00000000000000000000.log")
	if err := os.Truncate(seg0, int64(len(first[0])+len(first[1])+10)); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, l, 0)
	if want := bytes.Join([][]byte{first[0], first[1], raw}, nil); !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, want %d: the two whole batches, then the next segment", len(got), len(want))
	}
	if fences != 1 {
		t.Fatalf("%d fences reported, want 1", fences)
	}
}
