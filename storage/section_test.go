package storage

import (
	"bytes"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sectionBytes reads a section's bytes through its descriptor, as
// sendfile(2) would.
func sectionBytes(t *testing.T, s *Section) []byte {
	t.Helper()
	fd, off, n := s.Span()
	b := make([]byte, n)
	if got, err := unix.Pread(fd, b, off); err != nil || int64(got) != n {
		t.Fatalf("pread section: %d of %d bytes, %v", got, n, err)
	}
	return b
}

// TestReadSectionNamesTheBytesReadReturns: for offsets across segments,
// byte limits below, at and above batch sizes, with and without the first
// batch forced, and high watermarks inside the log, the section holds
// exactly the bytes Read returns (cut at the watermark).
func TestReadSectionNamesTheBytesReadReturns(t *testing.T) {
	cache := NewFileCache(64)
	l, _ := openLog(t, t.TempDir(), func(o *Options) { o.Files = cache })
	for i := 0; i < 60; i++ { // batches of 1 to 5 records, segments of ~2 KB
		raw, info := testBatch(l.Stats().Next, 1+i%5, int64(i), bytes.Repeat([]byte{byte(i)}, 40+i))
		if err := l.Append(raw, info, 2048); err != nil {
			t.Fatal(err)
		}
	}
	if l.Stats().Segments < 4 {
		t.Fatalf("want several segments, have %d", l.Stats().Segments)
	}
	next := l.Stats().Next
	for _, upTo := range []int64{next, next / 2, 7} {
		for off := int64(0); off < next; off += 3 {
			for _, maxBytes := range []int64{0, 50, 300, 1000, 5000} {
				for _, first := range []bool{true, false} {
					want, err := l.Read(off, maxBytes, first)
					if err != nil {
						t.Fatal(err)
					}
					want = cutBelow(t, want, upTo)
					sec, ok, err := l.ReadSection(off, maxBytes, first, upTo)
					if err != nil || !ok {
						t.Fatalf("section at %d: ok %v, %v", off, ok, err)
					}
					var got []byte
					if sec != nil {
						got = sectionBytes(t, sec)
						sec.Release()
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("offset %d max %d first %v upTo %d: section of %d bytes, Read gives %d",
							off, maxBytes, first, upTo, len(got), len(want))
					}
				}
			}
		}
	}
	if st := cache.Stats(); st.Sections != 0 {
		t.Fatalf("%d sections still counted after every release", st.Sections)
	}
}

// cutBelow keeps the batches of b whose base offset is below upTo.
func cutBelow(t *testing.T, b []byte, upTo int64) []byte {
	t.Helper()
	pos := 0
	for pos < len(b) {
		info, err := ParseBatch(b[pos:])
		if err != nil {
			t.Fatal(err)
		}
		if info.Base >= upTo {
			break
		}
		pos += info.Size
	}
	return b[:pos]
}

// TestSectionOutlivesRetentionAndEviction: a held section's segment is
// deleted by retention and the cache is pressed to evict it; its bytes
// stay readable through the descriptor, and the descriptor is closed with
// the release (the cache's count goes back).
func TestSectionOutlivesRetentionAndEviction(t *testing.T) {
	cache := NewFileCache(4)
	dir := t.TempDir()
	l, _ := openLog(t, dir, func(o *Options) { o.Files = cache })
	appendN(t, l, 40, 3, time.Now().Add(-time.Hour).UnixMilli(), 1024)
	want, err := l.Read(0, 600, true)
	if err != nil {
		t.Fatal(err)
	}
	sec, ok, err := l.ReadSection(0, 600, true, l.Stats().Next)
	if err != nil || !ok || sec == nil {
		t.Fatalf("section: %v %v %v", sec, ok, err)
	}
	if _, err := l.Retain(time.Now(), 1, -1); err != nil {
		t.Fatal(err)
	}
	if l.Stats().Start == 0 {
		t.Fatal("retention deleted nothing")
	}
	// Other segments' reads press the cache past its budget.
	readAll(t, l, l.Stats().Start)
	if got := sectionBytes(t, sec); !bytes.Equal(got, want) {
		t.Fatal("a deleted segment's section changed")
	}
	held := cache.Stats().Open
	sec.Release()
	sec.Release() // a second release is ignored
	if st := cache.Stats(); st.Open != held-1 || st.Sections != 0 {
		t.Fatalf("after release: %d descriptors open (held %d), %d sections", st.Open, held, st.Sections)
	}
}

// TestSectionsAreBoundedByHalfTheDescriptorBudget: beyond half the cache's
// budget a section is refused (ok false: read by copy), and counted.
func TestSectionsAreBoundedByHalfTheDescriptorBudget(t *testing.T) {
	cache := NewFileCache(8)
	l, _ := openLog(t, t.TempDir(), func(o *Options) { o.Files = cache })
	appendN(t, l, 10, 2, 1, 1<<20)
	var held []*Section
	for i := 0; i < 4; i++ {
		s, ok, err := l.ReadSection(0, 100, true, l.Stats().Next)
		if err != nil || !ok || s == nil {
			t.Fatalf("section %d: %v %v", i, ok, err)
		}
		held = append(held, s)
	}
	if _, ok, err := l.ReadSection(0, 100, true, l.Stats().Next); ok || err != nil {
		t.Fatalf("fifth section: ok %v, err %v; want refused", ok, err)
	}
	if st := cache.Stats(); st.SectionRefusals != 1 || st.Sections != 4 || st.MaxSections != 4 {
		t.Fatalf("stats %+v", st)
	}
	for _, s := range held {
		s.Release()
	}
	if s, ok, _ := l.ReadSection(0, 100, true, l.Stats().Next); !ok || s == nil {
		t.Fatal("no section after the others were released")
	} else {
		s.Release()
	}
}
