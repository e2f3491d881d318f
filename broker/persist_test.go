package broker

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/storage"
)

// openDiskBroker opens a broker on dir; the caller closes it (the test
// cleanup also does, harmlessly).
func openDiskBroker(t *testing.T, dir string, mode storage.FsyncMode) *Broker {
	t.Helper()
	b, err := Open(Config{NodeID: 1, Host: "127.0.0.1", Port: 9092, Logger: slog.New(slog.DiscardHandler), DataDir: dir, Fsync: mode})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// idempotentBatch is testBatch with producer fields set.
func idempotentBatch(n int, pid int64, epoch int16, seq int32) []byte {
	raw := testBatch(n, 1000, "value")
	binary.BigEndian.PutUint64(raw[43:], uint64(pid))
	binary.BigEndian.PutUint16(raw[51:], uint16(epoch))
	binary.BigEndian.PutUint32(raw[53:], uint32(seq))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

func produceRaw(t *testing.T, b *Broker, topic string, partition int32, raw []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 9, -1, 1000
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: partition, Records: raw}}}}
	return call[*kmsg.ProduceResponse](t, b, req).Topics[0].Partitions[0]
}

func fetchAt(t *testing.T, b *Broker, topic string, partition int32, offset int64) kmsg.FetchResponseTopicPartition {
	t.Helper()
	f := kmsg.NewPtrFetchRequest()
	f.Version = 11
	f.MaxBytes = 1 << 20
	f.Topics = []kmsg.FetchRequestTopic{{Topic: topic, Partitions: []kmsg.FetchRequestTopicPartition{{Partition: partition, FetchOffset: offset, PartitionMaxBytes: 1 << 20}}}}
	return call[*kmsg.FetchResponse](t, b, f).Topics[0].Partitions[0]
}

// fetchAllRaw reads the partition from offset to its high watermark.
func fetchAllRaw(t *testing.T, b *Broker, topic string, partition int32, offset int64) []byte {
	t.Helper()
	var out []byte
	for {
		sp := fetchAt(t, b, topic, partition, offset)
		wantCode(t, "fetch", sp.ErrorCode, 0)
		if len(sp.RecordBatches) == 0 {
			return out
		}
		out = append(out, sp.RecordBatches...)
		for rb := sp.RecordBatches; len(rb) > 0; {
			h, err := parseBatch(rb)
			if err != nil {
				t.Fatalf("fetched batch: %v", err)
			}
			offset = int64(binary.BigEndian.Uint64(rb)) + int64(h.LastOffsetDelta) + 1
			rb = rb[h.Size:]
		}
	}
}

func TestDiskStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	b := openDiskBroker(t, dir, storage.FsyncInterval)
	createTopic(t, b, "t", 2, map[string]string{"retention.ms": "86400000"})
	id := b.lookupTopic("t").id
	for i := int32(0); i < 4; i++ {
		sp := produceRaw(t, b, "t", 1, idempotentBatch(3, 5000, 0, i*3))
		wantCode(t, "produce", sp.ErrorCode, 0)
	}
	produce(t, b, "t", 0, 2, 1)
	before := fetchAllRaw(t, b, "t", 1, 0)
	c := call[*kmsg.OffsetCommitResponse](t, b, commitReq("g", "", -1, "t", 1, 7, "meta"))
	wantCode(t, "commit", c.Topics[0].Partitions[0].ErrorCode, 0)
	b.Close()

	b = openDiskBroker(t, dir, storage.FsyncInterval)
	tp := b.lookupTopic("t")
	tests := []struct {
		name string
		ok   bool
	}{
		{"topic id kept", tp != nil && tp.id == id},
		{"partition count kept", tp != nil && len(tp.partitionList()) == 2},
		{"configs kept", tp != nil && b.topicConfig(tp, "retention.ms") == "86400000"},
		{"records byte-exact", bytes.Equal(fetchAllRaw(t, b, "t", 1, 0), before)},
		{"other partition kept", len(fetchAllRaw(t, b, "t", 0, 0)) > 0},
	}
	for _, tc := range tests {
		if !tc.ok {
			t.Errorf("%s: no", tc.name)
		}
	}
	// A producer retrying its last batch after the restart gets the
	// original offset, and nothing is appended again.
	sp := produceRaw(t, b, "t", 1, idempotentBatch(3, 5000, 0, 9))
	wantCode(t, "retry", sp.ErrorCode, 0)
	if sp.BaseOffset != 9 {
		t.Fatalf("retried batch answered base offset %d, want 9", sp.BaseOffset)
	}
	if _, next, _ := partitionState2(b, "t", 1); next != 12 {
		t.Fatalf("high watermark %d after the retry, want 12", next)
	}
	sp = produceRaw(t, b, "t", 1, idempotentBatch(1, 5000, 0, 12))
	wantCode(t, "next sequence", sp.ErrorCode, 0)
	// The committed offset survived.
	of := kmsg.NewPtrOffsetFetchRequest()
	of.Version, of.Group = 7, "g"
	of.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{1}}}
	r := call[*kmsg.OffsetFetchResponse](t, b, of)
	if got := r.Topics[0].Partitions[0]; got.Offset != 7 || got.Metadata == nil || *got.Metadata != "meta" {
		t.Fatalf("committed offset after restart: %+v", got)
	}
	// Deleting the topic removes its files, also after a restart.
	b.deleteTopic(tp)
	b.Close()
	b = openDiskBroker(t, dir, storage.FsyncInterval)
	if b.lookupTopic("t") != nil {
		t.Fatal("deleted topic came back")
	}
	if _, err := os.Stat(filepath.Join(dir, logsDir, hex.EncodeToString(id[:]))); !os.IsNotExist(err) {
		t.Fatalf("files of the deleted topic: %v", err)
	}
}

func partitionState2(b *Broker, topic string, partition int32) (logStart, next int64, size int64) {
	p := b.lookupTopic(topic).partitionOf(partition)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logStart, p.next, 0
}

func TestDiskRetentionDeletesSegmentFiles(t *testing.T) {
	now := time.Now().UnixMilli()
	tests := []struct {
		name      string
		configs   map[string]string
		wantStart func(int64) bool
	}{
		{"time", map[string]string{"retention.ms": "60000", "segment.bytes": "512"}, func(s int64) bool { return s > 0 && s <= 20 }},
		{"size", map[string]string{"retention.bytes": "2048", "segment.bytes": "512"}, func(s int64) bool { return s > 0 && s < 40 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b := openDiskBroker(t, dir, storage.FsyncNever)
			createTopic(t, b, "t", 1, tc.configs)
			for i := 0; i < 20; i++ {
				produce(t, b, "t", 0, 1, now-3_600_000) // offsets 0-19, an hour old
			}
			for i := 0; i < 20; i++ {
				produce(t, b, "t", 0, 1, now) // offsets 20-39
			}
			p := b.lookupTopic("t").partitionOf(0)
			segsBefore := p.log.(diskLog).l.Stats().Segments
			if segsBefore < 4 {
				t.Fatalf("%d segments: segment.bytes=512 did not roll", segsBefore)
			}
			if n := b.sweepRetention(); n == 0 {
				t.Fatal("retention deleted no segment")
			}
			start, next, _ := partitionState2(b, "t", 0)
			if !tc.wantStart(start) || next != 40 {
				t.Fatalf("log start %d, next %d", start, next)
			}
			files, _ := filepath.Glob(filepath.Join(dir, logsDir, "*", "0", "*.log"))
			if len(files) != p.log.(diskLog).l.Stats().Segments || len(files) >= segsBefore {
				t.Fatalf("%d segment files on disk, log has %d, had %d", len(files), p.log.(diskLog).l.Stats().Segments, segsBefore)
			}
			fetchAllRaw(t, b, "t", 0, start)
			sp := fetchAt(t, b, "t", 0, 0)
			wantCode(t, "fetch below the log start", sp.ErrorCode, kafka.ErrOffsetOutOfRange)
		})
	}
}

func TestDiskFsyncAlwaysAnswersAfterSync(t *testing.T) {
	b := openDiskBroker(t, t.TempDir(), storage.FsyncAlways)
	createTopic(t, b, "t", 1, nil)
	chans := make([]<-chan kmsg.Response, 20)
	for i := range chans {
		req := kmsg.NewPtrProduceRequest()
		req.Version, req.Acks, req.TimeoutMillis = 9, -1, 1000
		req.Topics = []kmsg.ProduceRequestTopic{{Topic: "t", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: testBatch(1, 1, "v")}}}}
		chans[i] = send(b, req)
	}
	for _, ch := range chans {
		r := recv[*kmsg.ProduceResponse](t, ch)
		wantCode(t, "produce", r.Topics[0].Partitions[0].ErrorCode, 0)
	}
}

func TestDiskBrokenPartitionAnswersStorageError(t *testing.T) {
	dir := t.TempDir()
	b := openDiskBroker(t, dir, storage.FsyncNever)
	createTopic(t, b, "t", 2, nil)
	id := b.lookupTopic("t").id
	b.Close()
	pdir := filepath.Join(dir, logsDir, hex.EncodeToString(id[:]), "1")
	if err := os.RemoveAll(pdir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pdir, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	b = openDiskBroker(t, dir, storage.FsyncNever)
	wantCode(t, "healthy partition", produceRaw(t, b, "t", 0, testBatch(1, 1, "v")).ErrorCode, 0)
	wantCode(t, "broken partition produce", produceRaw(t, b, "t", 1, testBatch(1, 1, "v")).ErrorCode, kafka.ErrKafkaStorageError)
	wantCode(t, "broken partition fetch", fetchAt(t, b, "t", 1, 0).ErrorCode, kafka.ErrKafkaStorageError)
	wantCode(t, "healthy partition fetch", fetchAt(t, b, "t", 0, 0).ErrorCode, 0)
}

func TestDiskDataDirIsLocked(t *testing.T) {
	dir := t.TempDir()
	openDiskBroker(t, dir, storage.FsyncNever)
	if b, err := Open(Config{Logger: slog.New(slog.DiscardHandler), DataDir: dir}); err == nil {
		b.Close()
		t.Fatal("a second broker opened a data dir in use")
	}
}
