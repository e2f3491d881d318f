package storage

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestAppendReadRollReopen(t *testing.T) {
	dir := t.TempDir()
	l, _ := openLog(t, dir, nil)
	batches := appendN(t, l, 60, 3, 1000, 2000)
	if n := l.Stats().Segments; n < 5 {
		t.Fatalf("%d segments: want a roll every ~2000 bytes", n)
	}
	want := bytes.Join(batches, nil)
	if got := readAll(t, l, 0); !bytes.Equal(got, want) {
		t.Fatal("read back differs from what was appended")
	}
	// Reading from the middle of a batch starts with that batch.
	if b, _ := l.Read(4, 1, true); !bytes.Equal(b, batches[1]) {
		t.Fatal("read at offset 4 did not return the batch 3-5")
	}
	if b, _ := l.Read(4, 1, false); len(b) != 0 {
		t.Fatal("read with a too small limit returned data although first is unset")
	}
	l.Close()
	l2, rec := openLog(t, dir, nil)
	if rec.TruncatedBytes != 0 || l2.Stats().Next != 180 {
		t.Fatalf("reopen: truncated %d, next %d", rec.TruncatedBytes, l2.Stats().Next)
	}
	if got := readAll(t, l2, 0); !bytes.Equal(got, want) {
		t.Fatal("read after reopen differs")
	}
	more := appendN(t, l2, 2, 1, 2000, 2000)
	if got := readAll(t, l2, 180); !bytes.Equal(got, bytes.Join(more, nil)) {
		t.Fatal("append after reopen")
	}
}

func TestRecoveryTruncatesCorruptTail(t *testing.T) {
	tests := []struct {
		name     string
		damage   func(path string, size int64, last int) error
		wantNext int64
	}{
		{"torn last batch", func(p string, size int64, last int) error { return os.Truncate(p, size-7) }, 38},
		{"scribbled last batch", func(p string, size int64, last int) error {
			return scribble(p, size-int64(last)+30, []byte("garbage"))
		}, 38},
		{"scribbled length", func(p string, size int64, last int) error {
			return scribble(p, size-int64(last)+8, []byte{0x7f, 0xff, 0xff, 0xff})
		}, 38},
		{"trailing zeroes", func(p string, size int64, last int) error {
			return scribble(p, size, make([]byte, 100))
		}, 40},
		{"scribbled earlier batch", func(p string, size int64, last int) error {
			return scribble(p, size-int64(5*last)+40, []byte("xxxx"))
		}, 30},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l, _ := openLog(t, dir, nil)
			batches := appendN(t, l, 20, 2, 1000, 1<<20)
			l.Close()
			path := filepath.Join(dir, "00000000000000000000.log")
			st, _ := os.Stat(path)
			if err := tc.damage(path, st.Size(), len(batches[19])); err != nil {
				t.Fatal(err)
			}
			l2, rec := openLog(t, dir, nil)
			if l2.Stats().Next != tc.wantNext {
				t.Fatalf("next %d, want %d (truncated %d)", l2.Stats().Next, tc.wantNext, rec.TruncatedBytes)
			}
			keep := int(tc.wantNext / 2)
			if got := readAll(t, l2, 0); !bytes.Equal(got, bytes.Join(batches[:keep], nil)) {
				t.Fatal("the good prefix is not served intact")
			}
			appendN(t, l2, 1, 2, 1000, 1<<20)
			if l2.Stats().Next != tc.wantNext+2 {
				t.Fatal("append after recovery")
			}
		})
	}
}

func TestRecoveryRebuildsMissingIndex(t *testing.T) {
	dir := t.TempDir()
	l, _ := openLog(t, dir, nil)
	batches := appendN(t, l, 50, 1, 1000, 1<<20)
	l.Close()
	os.Remove(filepath.Join(dir, "00000000000000000000.index"))
	l2, rec := openLog(t, dir, nil)
	if !rec.IndexRebuilt || l2.Stats().Next != 50 {
		t.Fatalf("rebuilt %v next %d", rec.IndexRebuilt, l2.Stats().Next)
	}
	if got := readAll(t, l2, 17); !bytes.Equal(got, bytes.Join(batches[17:], nil)) {
		t.Fatal("read after index rebuild")
	}
}

func TestRetention(t *testing.T) {
	now := time.Now()
	old := now.Add(-time.Hour).UnixMilli()
	tests := []struct {
		name      string
		ms, bytes int64
		wantStart int64
	}{
		{"time deletes old segments", 60_000, -1, 40},
		{"size keeps at least retention.bytes", -1, 2500, 0}, // checked below
		{"everything expired rolls the active segment", 1, -1, 80},
		{"off", -1, -1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := openLog(t, t.TempDir(), nil)
			appendN(t, l, 20, 2, old, 1000) // offsets 0-39, an hour old
			newTS := now.UnixMilli()
			if tc.name == "everything expired rolls the active segment" {
				newTS = old
			}
			appendN(t, l, 20, 2, newTS, 1000) // offsets 40-79
			before := l.Stats().Size
			n, err := l.Retain(now, tc.ms, tc.bytes)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.bytes >= 0:
				if l.Stats().Size < tc.bytes || n == 0 || l.Stats().Size >= before {
					t.Fatalf("size %d -> %d, limit %d, %d deleted", before, l.Stats().Size, tc.bytes, n)
				}
			case l.Stats().Start != tc.wantStart:
				t.Fatalf("start %d, want %d (%d segments deleted)", l.Stats().Start, tc.wantStart, n)
			}
			if got := readAll(t, l, l.Stats().Start); l.Stats().Next != 80 || (l.Stats().Start < 80 && len(got) == 0) {
				t.Fatal("remaining data is not readable")
			}
		})
	}
}

func TestDeleteBeforePersistsStart(t *testing.T) {
	dir := t.TempDir()
	l, _ := openLog(t, dir, nil)
	appendN(t, l, 20, 2, 1000, 400)
	if _, err := l.DeleteBefore(25); err != nil {
		t.Fatal(err)
	}
	if l.Stats().Start != 25 {
		t.Fatalf("start %d", l.Stats().Start)
	}
	l.Close()
	l2, _ := openLog(t, dir, nil)
	if l2.Stats().Start != 25 || l2.Stats().Next != 40 {
		t.Fatalf("after reopen: start %d next %d", l2.Stats().Start, l2.Stats().Next)
	}
}

func TestTimeLookup(t *testing.T) {
	l, _ := openLog(t, t.TempDir(), nil)
	for i := 0; i < 30; i++ {
		raw, info := testBatch(l.Stats().Next, 2, int64(1000+i*10), []byte("v"))
		if err := l.Append(raw, info, 600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ ts, want int64 }{{0, 0}, {1000, 0}, {1001, 2}, {1150, 30}, {1290, 58}} {
		b, ok, err := l.OffsetForTime(tc.ts)
		if err != nil || !ok || b.Base != tc.want {
			t.Errorf("time %d: %v %v %v, want base %d", tc.ts, b.Base, ok, err, tc.want)
		}
	}
	if _, ok, _ := l.OffsetForTime(5000); ok {
		t.Error("a time after every batch found one")
	}
	if b, ok, _ := l.MaxTimestamp(); !ok || b.Base != 58 {
		t.Errorf("max timestamp batch %d", b.Base)
	}
}

func TestMetaLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.log")
	m, recs, err := OpenMetaLog(path, nil, quiet())
	if err != nil || len(recs) != 0 {
		t.Fatal(err, len(recs))
	}
	for _, r := range []string{"a", "bb", "ccc"} {
		if err := m.Append([]byte(r)); err != nil {
			t.Fatal(err)
		}
	}
	m.Close()
	st, _ := os.Stat(path)
	os.Truncate(path, st.Size()-1) // tear the last record
	m, recs, err = OpenMetaLog(path, nil, quiet())
	if err != nil || len(recs) != 2 || string(recs[1]) != "bb" {
		t.Fatalf("%v %q", err, recs)
	}
	if err := m.Rewrite([][]byte{[]byte("z")}); err != nil {
		t.Fatal(err)
	}
	m.Append([]byte("y"))
	m.Close()
	_, recs, _ = OpenMetaLog(path, nil, quiet())
	if len(recs) != 2 || string(recs[0]) != "z" || string(recs[1]) != "y" {
		t.Fatalf("after rewrite: %q", recs)
	}
}

func TestSyncerAlwaysGroupsWaiters(t *testing.T) {
	s := NewSyncer(FsyncAlways, 0, quiet())
	l, _ := openLog(t, t.TempDir(), func(o *Options) { o.Syncer = s })
	done := make(chan error, 50)
	for i := 0; i < 50; i++ {
		appendN(t, l, 1, 1, 1, 1<<20)
		s.Wait(func(err error) { done <- err })
	}
	for i := 0; i < 50; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
}

func scribble(path string, at int64, data []byte) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteAt(data, at)
	return err
}
