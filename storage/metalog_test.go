package storage

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestMetaRewriteCarriesAppendsMadeDuringIt takes a snapshot, appends while
// the rewrite is under way, commits, appends again, and reopens: the file
// holds the snapshot, then every append in order.
func TestMetaRewriteCarriesAppendsMadeDuringIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.log")
	m, _, err := OpenMetaLog(path, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := m.Append(fmt.Appendf(nil, "old-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	rw, err := m.BeginRewrite()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.BeginRewrite(); err == nil {
		t.Fatal("a second rewrite began while one is under way")
	}
	if err := rw.Add([]byte("snap")); err != nil {
		t.Fatal(err)
	}
	if err := m.Append([]byte("during")); err != nil {
		t.Fatal(err)
	}
	if err := rw.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := m.Append([]byte("after")); err != nil {
		t.Fatal(err)
	}
	want := []string{"snap", "during", "after"}
	if got := m.Size(); got != int64(3*metaRecordHeader+len("snap")+len("during")+len("after")) {
		t.Fatalf("size %d after the rewrite", got)
	}
	m.Close()
	var got []string
	m, err = OpenMetaLogFunc(path, nil, quiet(), func(p []byte) error {
		got = append(got, string(p))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("records %q, want %q", got, want)
	}
}

// TestMetaLogHugeLengthIsATornTail writes a record header claiming 4 GiB:
// opening truncates it as a torn tail without allocating for it.
func TestMetaLogHugeLengthIsATornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.log")
	m, _, err := OpenMetaLog(path, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Append([]byte("good")); err != nil {
		t.Fatal(err)
	}
	m.Close()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	var hdr [metaRecordHeader]byte
	binary.BigEndian.PutUint32(hdr[:], 0xffffffff)
	f.Write(hdr[:])
	f.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	m, recs, err := OpenMetaLog(path, nil, quiet())
	runtime.ReadMemStats(&after)
	if err != nil || len(recs) != 1 || string(recs[0]) != "good" {
		t.Fatalf("records %q, %v", recs, err)
	}
	m.Close()
	if st, _ := os.Stat(path); st.Size() != int64(metaRecordHeader+4) {
		t.Fatalf("size %d after truncating the torn tail", st.Size())
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
		t.Fatalf("opening allocated %d bytes", got)
	}
}

// TestMetaLogAppendManyIsOneWrite appends a batch, during a rewrite too,
// and reads every record back in order.
func TestMetaLogAppendManyIsOneWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.log")
	m, _, err := OpenMetaLog(path, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.AppendMany([][]byte{[]byte("a"), []byte("b")}); err != nil {
		t.Fatal(err)
	}
	rw, err := m.BeginRewrite()
	if err != nil {
		t.Fatal(err)
	}
	if err := rw.Add([]byte("snap")); err != nil {
		t.Fatal(err)
	}
	if err := m.AppendMany([][]byte{[]byte("c"), []byte("d")}); err != nil {
		t.Fatal(err)
	}
	if err := rw.Commit(); err != nil {
		t.Fatal(err)
	}
	m.Close()
	_, recs, err := OpenMetaLog(path, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%s", recs); got != "[snap c d]" {
		t.Fatalf("records %s, want [snap c d]", got)
	}
}
