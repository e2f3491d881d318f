package broker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/storage"
)

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestOffsetsLogIsProportionalToLiveOffsets commits many times over a
// fixed set of offsets whose metadata is bytes JSON escapes six-fold: the
// file stays within a constant of the live offsets while commits go on,
// holds about one byte per live metadata byte after a restart, and the
// restart's time and memory follow the live offsets.
func TestOffsetsLogIsProportionalToLiveOffsets(t *testing.T) {
	if testing.Short() {
		t.Skip("writes about 100 MiB")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, offsetsFile)
	b := openDiskBroker(t, dir, storage.FsyncNever)
	const groups, partitions, rounds, metaLen = 50, 100, 4, 4096
	createTopic(t, b, "t", partitions, nil)
	meta := strings.Repeat("\x01", metaLen) // JSON writes \u0001: 6 bytes
	live := int64(groups * partitions * metaLen)
	var peak int64
	for r := range rounds {
		for g := range groups {
			for p := range partitions {
				req := commitReq(fmt.Sprint("g", g), "", -1, "t", int32(p), int64(r), meta)
				if code := commitCode(t, b, req); code != 0 {
					t.Fatalf("commit: %d", code)
				}
			}
			peak = max(peak, fileSize(t, path))
		}
	}
	b.Close()
	heap0 := liveHeap()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	start := time.Now()
	b = openDiskBroker(t, dir, storage.FsyncNever)
	took := time.Since(start)
	runtime.ReadMemStats(&ms1)
	heap := int64(liveHeap()) - int64(heap0)
	size := fileSize(t, path)
	t.Logf("%d commits of %d B metadata (%.1f MiB committed, %.1f MiB live): offsets.log peak %.1f MiB, %.1f MiB after restart; restart %v allocating %.1f MiB, heap after %+.1f MiB",
		rounds*groups*partitions, metaLen, float64(rounds*live)/(1<<20), float64(live)/(1<<20),
		float64(peak)/(1<<20), float64(size)/(1<<20), took, float64(ms1.TotalAlloc-ms0.TotalAlloc)/(1<<20), float64(heap)/(1<<20))
	if got := fetchOffset(t, b, "g7", "t", 42); got != rounds-1 {
		t.Fatalf("after restart: offset %d, want %d", got, rounds-1)
	}
	if size > live*11/10 {
		t.Fatalf("offsets.log holds %d bytes for %d bytes of live metadata (inflated %.1fx)", size, live, float64(size)/float64(live))
	}
	// Between compactions at most max(10000, 2 x live) records are
	// appended after the live ones, and the old file lives on while the
	// new one is written.
	if bound := 4 * (live + 10000*(metaLen+64)); peak > bound {
		t.Fatalf("offsets.log peaked at %d bytes, over %d", peak, bound)
	}
	if heap > 4*live {
		t.Fatalf("restart left %d bytes on the heap for %d bytes of live metadata", heap, live)
	}
}

// TestOffsetsLogCompactionKeepsConcurrentCommits commits from several
// clients while compactions run beside them: after a restart every offset
// is the last one committed (commits during a compaction are carried over
// into the new file).
func TestOffsetsLogCompactionKeepsConcurrentCommits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := openDiskBroker(t, dir, storage.FsyncNever)
	const writers, partitions, commits = 4, 50, 8000
	createTopic(t, b, "t", partitions, nil)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range commits {
				req := commitReq(fmt.Sprint("w", w), "", -1, "t", int32(i%partitions), int64(i), "m")
				if code := commitCode(t, b, req); code != 0 {
					t.Errorf("commit: %d", code)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.Close()
	b = openDiskBroker(t, dir, storage.FsyncNever)
	for w := range writers {
		for p := range partitions {
			want := int64(commits - partitions + p)
			if got := fetchOffset(t, b, fmt.Sprint("w", w), "t", int32(p)); got != want {
				t.Fatalf("w%d p%d after restart: offset %d, want %d", w, p, got, want)
			}
		}
	}
}

// TestOffsetsLogReadsJSONRecords opens an offsets.log written by earlier
// versions (JSON records) and checks that its offsets and deletions are
// applied and that the file is rewritten in the binary form.
func TestOffsetsLogReadsJSONRecords(t *testing.T) {
	dir := t.TempDir()
	b := openDiskBroker(t, dir, storage.FsyncNever)
	createTopic(t, b, "t", 2, nil)
	b.Close()
	path := filepath.Join(dir, offsetsFile)
	ml, _, err := storage.OpenMetaLog(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UnixMilli()
	for _, r := range []offsetRecord{
		{Group: "a", Topic: "t", Partition: 0, Offset: 5, Metadata: "x\x01", AtMillis: at},
		{Group: "a", Topic: "t", Partition: 1, Offset: 6, AtMillis: at},
		{Group: "a", Topic: "t", Partition: 1, Del: true},
		{Group: "gone", Topic: "t", Partition: 0, Offset: 1, AtMillis: at},
		{Group: "gone", Del: true},
	} {
		data, _ := json.Marshal(r)
		if err := ml.Append(data); err != nil {
			t.Fatal(err)
		}
	}
	ml.Close()
	b = openDiskBroker(t, dir, storage.FsyncNever)
	if got := fetchOffset(t, b, "a", "t", 0); got != 5 {
		t.Fatalf("a t/0: %d, want 5", got)
	}
	if got := fetchOffset(t, b, "a", "t", 1); got != -1 {
		t.Fatalf("a t/1 (deleted): %d, want -1", got)
	}
	if names := listGroupNames(t, b); len(names) != 1 || names[0] != "a" {
		t.Fatalf("groups %v, want [a]", names)
	}
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version, req.Group = 5, "a"
	req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0}}}
	if got := call[*kmsg.OffsetFetchResponse](t, b, req).Topics[0].Partitions[0].Metadata; got == nil || *got != "x\x01" {
		t.Fatalf("metadata %v", got)
	}
	b.Close()
	_, recs, err := storage.OpenMetaLog(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || len(recs[0]) == 0 || recs[0][0] != offsetRecordV1 {
		t.Fatalf("after load: %d records, first %q; want one binary record", len(recs), bytes.Join(recs, []byte("|")))
	}
}

// TestOffsetRecordRoundTrip checks the binary form of every record kind
// and that truncated or damaged records are refused, not misread.
func TestOffsetRecordRoundTrip(t *testing.T) {
	recs := []offsetRecord{
		{Group: "g", Topic: "t", Partition: 3, Offset: 1 << 40, Epoch: -1, Metadata: "\x00\x01m", AtMillis: 1764547200000},
		{Group: "g", Topic: "t", Partition: 2147483647, Del: true},
		{Group: "g", Del: true},
	}
	for _, r := range recs {
		enc := r.appendBinary(nil)
		got, err := decodeOffsetRecord(enc)
		if err != nil || got != r {
			t.Fatalf("round trip of %+v: %+v, %v", r, got, err)
		}
		for n := 2; n < len(enc); n++ {
			if _, err := decodeOffsetRecord(enc[:n]); err == nil {
				t.Fatalf("%+v cut to %d of %d bytes decoded without error", r, n, len(enc))
			}
		}
	}
	if _, err := decodeOffsetRecord([]byte{offsetRecordV1, recCommit, 0xff, 0xff, 0xff, 0xff, 0x0f}); err == nil {
		t.Fatal("a group length past the record decoded")
	}
}

// TestOffsetCommitOfManyPartitionsSurvivesRestart commits many partitions
// in one request (written as one batch) and deletes some with one
// OffsetDelete: after a restart every offset is there, the deleted ones
// are not.
func TestOffsetCommitOfManyPartitionsSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := openDiskBroker(t, dir, storage.FsyncNever)
	const partitions = 500
	createTopic(t, b, "t", partitions, nil)
	req := commitReq("g", "", -1, "t", 0, 0, "")
	req.Topics[0].Partitions = nil
	for p := range partitions {
		req.Topics[0].Partitions = append(req.Topics[0].Partitions, kmsg.OffsetCommitRequestTopicPartition{Partition: int32(p), Offset: int64(1000 + p), Metadata: kmsg.StringPtr("m")})
	}
	for _, sp := range call[*kmsg.OffsetCommitResponse](t, b, req).Topics[0].Partitions {
		if sp.ErrorCode != 0 {
			t.Fatalf("partition %d: %d", sp.Partition, sp.ErrorCode)
		}
	}
	del := kmsg.NewPtrOffsetDeleteRequest()
	del.Group = "g"
	del.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 1}, {Partition: 2}}}}
	call[*kmsg.OffsetDeleteResponse](t, b, del)
	b.Close()
	b = openDiskBroker(t, dir, storage.FsyncNever)
	for p := range partitions {
		want := int64(1000 + p)
		if p == 1 || p == 2 {
			want = -1
		}
		if got := fetchOffset(t, b, "g", "t", int32(p)); got != want {
			t.Fatalf("p%d after restart: %d, want %d", p, got, want)
		}
	}
}
