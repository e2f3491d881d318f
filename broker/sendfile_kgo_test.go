package broker_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/broker"
	"github.com/floodgate/floodgate/internal/loopback"
	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/storage"
)

// smallWindow is the receive buffer of the test consumers: the server's
// socket fills after a few KB of every answer, so sendfile(2) meets EAGAIN
// in the middle of its sections and the park goroutine resumes them.
const smallWindow = 4096

// smallWindowDialer dials with a receive buffer of smallWindow bytes.
func smallWindowDialer() *net.Dialer {
	return &net.Dialer{Control: loopback.ReceiveBuffer(smallWindow)}
}

// gauge reads a gauge (or counter) of the server's metrics set.
func gauge(t testing.TB, srv *testserver.Server, name string) float64 {
	t.Helper()
	var b bytes.Buffer
	srv.Metrics.WritePrometheus(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// waitFor polls cond for up to 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// diskServer starts a server on a data dir with small segments allowed.
func diskServer(t testing.TB) *testserver.Server {
	srv, _ := diskServerIn(t)
	return srv
}

// diskServerIn is diskServer, also returning the data dir.
func diskServerIn(t testing.TB) (*testserver.Server, string) {
	dir := t.TempDir()
	return testserver.Start(t, testserver.WithDataDir(dir, storage.FsyncNever),
		testserver.WithBroker(func(c *broker.Config) { c.MinSegmentBytes = 1024 })), dir
}

// createTopic creates topic with n partitions and segment.bytes segBytes.
func createTopic(t testing.TB, cl *kgo.Client, topic string, n int32, segBytes int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seg := fmt.Sprint(segBytes)
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, n, 1, map[string]*string{"segment.bytes": &seg}, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("create %s: %v %v", topic, err, resp.Err)
	}
}

// value is the deterministic value of record i of a partition.
func value(partition int32, i, size int) []byte {
	v := bytes.Repeat([]byte{byte('a' + (i+int(partition))%26)}, size)
	copy(v, fmt.Sprintf("p%d-r%d|", partition, i))
	return v
}

// sizeOf is the value size of record i: mostly small, every seventh large,
// so batches range from a few hundred bytes to hundreds of KB.
func sizeOf(i int) int {
	if i%7 == 0 {
		return 64<<10 + i
	}
	return 100 + i%300
}

// produceAll produces count records to each partition of topic with the
// codec given, and waits for all of them.
func produceAll(t testing.TB, srv *testserver.Server, topic string, partitions []int32, count int, codec kgo.CompressionCodec) {
	t.Helper()
	produceRange(t, srv, topic, partitions, 0, count, codec)
}

// produceRange produces records from..to-1 of each partition.
func produceRange(t testing.TB, srv *testserver.Server, topic string, partitions []int32, from, to int, codec kgo.CompressionCodec) {
	t.Helper()
	p := kgoClient(t, srv, kgo.ProducerBatchCompression(codec), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerLinger(5*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		for _, part := range partitions {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: part, Value: value(part, i, sizeOf(i))})
		}
	}
	if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	p.Close()
}

// TestZeroCopyFetchDeliversEveryRecord: twelve partitions on disk, written
// uncompressed, lz4 and zstd, in batches from a few hundred bytes to about
// a megabyte, read by a kgo consumer with a 4 KB receive window (so every
// answer's sendfile meets a full socket and is resumed): every record
// arrives, in order, with its value; the bytes went by sendfile, and no
// section is held once the consumer has read everything.
func TestZeroCopyFetchDeliversEveryRecord(t *testing.T) {
	t.Parallel()
	srv := diskServer(t)
	const topic, parts, count = "zc", 12, 240
	createTopic(t, kgoClient(t, srv), topic, parts, 256<<10)
	codecs := []kgo.CompressionCodec{kgo.NoCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()}
	for k, codec := range codecs {
		var ps []int32
		for p := int32(k); p < parts; p += int32(len(codecs)) {
			ps = append(ps, p)
		}
		produceAll(t, srv, topic, ps, count, codec)
	}
	before := srv.Metrics.GetOrCreateCounter("floodgate_sendfile_bytes_total").Get()
	c := kgoClient(t, srv, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.Dialer(smallWindowDialer().DialContext), kgo.FetchMaxBytes(16<<20), kgo.FetchMaxPartitionBytes(4<<20))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	next := make([]int, parts)
	got := 0
	for got < parts*count {
		fs := c.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records: %v", got, parts*count, fs.Errors())
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("partition %d: %v", p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			i := next[r.Partition]
			if want := value(r.Partition, i, sizeOf(i)); !bytes.Equal(r.Value, want) || r.Offset != int64(i) {
				t.Fatalf("partition %d record %d (offset %d): value %.20q, want %.20q", r.Partition, i, r.Offset, r.Value, want)
			}
			next[r.Partition]++
			got++
		})
	}
	sent := srv.Metrics.GetOrCreateCounter("floodgate_sendfile_bytes_total").Get() - before
	parks := srv.Metrics.GetOrCreateCounter(`floodgate_parks_total{reason="slow_reader"}`).Get()
	t.Logf("%d records; %d bytes by sendfile; %d parks on a full socket", got, sent, parks)
	if sent < 4<<20 {
		t.Fatalf("only %d bytes went by sendfile", sent)
	}
	if parks == 0 {
		t.Fatal("no answer met a full socket: the resume path was not exercised")
	}
	c.Close()
	waitFor(t, "sections released", func() bool { return gauge(t, srv, "floodgate_sendfile_sections_held") == 0 })
}

// rawConn is a hand-driven Kafka connection.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, srv *testserver.Server) *rawConn {
	t.Helper()
	nc, err := smallWindowDialer().Dial("tcp", srv.KafkaAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReaderSize(nc, 1024)}
}

// fetchReq is a Fetch v11 of the partitions given, each from its offset.
func fetchReq(topic string, maxBytes int32, offsets map[int32]int64) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(11)
	req.ReplicaID, req.MaxBytes, req.MinBytes = -1, maxBytes, 1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	for p := int32(0); p < 64; p++ {
		if off, ok := offsets[p]; ok {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, off, maxBytes
			rt.Partitions = append(rt.Partitions, rp)
		}
	}
	req.Topics = append(req.Topics, rt)
	return req
}

// send writes every request in one write (pipelined), correlation ids from 1.
func (r *rawConn) send(reqs ...kmsg.Request) {
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw"))
	var out []byte
	for i, q := range reqs {
		// AppendRequest writes the length at dst[0]: one frame at a time.
		out = append(out, f.AppendRequest(nil, q, int32(i+1))...)
	}
	if _, err := r.nc.Write(out); err != nil {
		r.t.Fatal(err)
	}
}

// read reads one response frame and decodes it as a response to req.
func (r *rawConn) read(req kmsg.Request) (int32, kmsg.Response) {
	r.t.Helper()
	_ = r.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	var lb [4]byte
	if _, err := io.ReadFull(r.br, lb[:]); err != nil {
		r.t.Fatalf("read length: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(lb[:]))
	if _, err := io.ReadFull(r.br, body); err != nil {
		r.t.Fatalf("read %d bytes: %v", len(body), err)
	}
	corr := int32(binary.BigEndian.Uint32(body))
	body = body[4:]
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() && req.Key() != 18 {
		body = body[1:] // empty header tags
	}
	if err := resp.ReadFrom(body); err != nil {
		r.t.Fatalf("decode %s answer %d: %v", kmsg.NameForKey(req.Key()), corr, err)
	}
	return corr, resp
}

// checkRecords checks that a partition's records are those produced from
// offset from on, and returns how many there are.
func checkRecords(t testing.TB, p *kmsg.FetchResponseTopicPartition, from int64) int {
	t.Helper()
	if p.ErrorCode != 0 {
		t.Fatalf("partition %d: error %d", p.Partition, p.ErrorCode)
	}
	n := 0
	fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Topic: "t", Partition: p.Partition, Offset: from}, p, kgo.DefaultDecompressor(), nil)
	if fp.Err != nil {
		t.Fatalf("partition %d: %v", p.Partition, fp.Err)
	}
	for _, pr := range fp.Records {
		if want := value(p.Partition, int(pr.Offset), sizeOf(int(pr.Offset))); pr.Offset != from+int64(n) || !bytes.Equal(pr.Value, want) {
			t.Fatalf("partition %d: record at %d (want offset %d) differs", p.Partition, pr.Offset, from+int64(n))
		}
		n++
	}
	return n
}

// TestZeroCopyPipelinedAnswersStayInOrder: six requests pipelined on one
// connection with a 4 KB window — Fetches answered from files, between
// them ApiVersions and Metadata answered from memory — come back in
// request order, each whole and decodable, the Fetches with the records
// asked for: nothing was written between the pieces of an answer.
func TestZeroCopyPipelinedAnswersStayInOrder(t *testing.T) {
	t.Parallel()
	srv := diskServer(t)
	const topic = "order"
	createTopic(t, kgoClient(t, srv), topic, 3, 8<<20)
	produceAll(t, srv, topic, []int32{0, 1, 2}, 200, kgo.NoCompression()) // ~2 MB a partition
	av := kmsg.NewPtrApiVersionsRequest()
	av.SetVersion(3)
	av.ClientSoftwareName, av.ClientSoftwareVersion = "raw", "1"
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(9)
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	md.Topics = append(md.Topics, mt)
	reqs := []kmsg.Request{
		fetchReq(topic, 16<<20, map[int32]int64{0: 0, 1: 0, 2: 0}),
		av,
		fetchReq(topic, 4<<20, map[int32]int64{1: 30}),
		md,
		fetchReq(topic, 16<<20, map[int32]int64{2: 7, 0: 50}),
		fetchReq(topic, 4<<20, map[int32]int64{0: 199}),
	}
	rc := dialRaw(t, srv)
	rc.send(reqs...)
	records := 0
	for i, q := range reqs {
		corr, resp := rc.read(q)
		if corr != int32(i+1) {
			t.Fatalf("answer %d carries correlation id %d", i+1, corr)
		}
		if f, ok := resp.(*kmsg.FetchResponse); ok {
			fq := q.(*kmsg.FetchRequest)
			for j := range f.Topics[0].Partitions {
				p := &f.Topics[0].Partitions[j]
				n := checkRecords(t, p, fq.Topics[0].Partitions[j].FetchOffset)
				if n == 0 {
					t.Fatalf("answer %d partition %d: no records", i+1, p.Partition)
				}
				records += n
			}
		}
	}
	parks := srv.Metrics.GetOrCreateCounter(`floodgate_parks_total{reason="slow_reader"}`).Get()
	t.Logf("6 answers in order, %d records, %d bytes by sendfile, %d parks on a full socket", records,
		srv.Metrics.GetOrCreateCounter("floodgate_sendfile_bytes_total").Get(), parks)
	if parks == 0 {
		t.Fatal("no answer met a full socket: the pieces were never resumed")
	}
}

// openFDCount and goroutine counts settle after connections close.
func settled(t testing.TB, what string, want int, get func() int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := get()
		if got <= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d, want at most %d", what, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestZeroCopyStalledConsumersHoldNoCopyAndReleaseOnClose: sixteen
// connections each ask for 8 MB from disk and stop reading after 1 KB.
// They park holding their sections (pinned segment files and offsets):
// the memory budget holds only the answers' headers, RSS stays flat (a
// copy would be 128 MB), and the descriptors held stay within the bound.
// When they close, every section, descriptor and goroutine is released.
func TestZeroCopyStalledConsumersHoldNoCopyAndReleaseOnClose(t *testing.T) {
	srv := diskServer(t)
	const topic, conns = "stall", 16
	createTopic(t, kgoClient(t, srv), topic, 4, 1<<20)
	produceAll(t, srv, topic, []int32{0, 1, 2, 3}, 140, kgo.NoCompression()) // ~2.3 MB a partition
	runtime.GC()
	fds0, g0, rss0 := openFDs(t), runtime.NumGoroutine(), rssBytes()
	var rcs []*rawConn
	for i := 0; i < conns; i++ {
		rc := dialRaw(t, srv)
		rc.send(fetchReq(topic, 8<<20, map[int32]int64{0: 0, 1: 0, 2: 0, 3: 0}))
		if _, err := io.ReadFull(rc.br, make([]byte, 1024)); err != nil {
			t.Fatal(err)
		}
		rcs = append(rcs, rc)
	}
	waitFor(t, "stalled answers parked", func() bool {
		return srv.Metrics.GetOrCreateCounter(`floodgate_parks_total{reason="slow_reader"}`).Get() >= conns
	})
	held := gauge(t, srv, "floodgate_sendfile_sections_held")
	used := srv.Budget().Used()
	runtime.GC()
	rss := rssBytes() - rss0
	t.Logf("%d stalled consumers: %v sections held, budget used %d B, RSS +%d KB, descriptors +%d",
		conns, held, used, rss>>10, openFDs(t)-fds0)
	if held < conns || held > gauge(t, srv, "floodgate_sendfile_sections_limit") {
		t.Fatalf("%v sections held: want at least one per stalled answer and within the bound", held)
	}
	if used > 64<<10 {
		t.Fatalf("budget holds %d B for stalled file answers; want their headers only", used)
	}
	if rss > 32<<20 {
		t.Fatalf("RSS grew by %d MB for %d stalled 8 MB answers", rss>>20, conns)
	}
	for _, rc := range rcs {
		rc.nc.Close()
	}
	waitFor(t, "sections released", func() bool { return gauge(t, srv, "floodgate_sendfile_sections_held") == 0 })
	settled(t, "descriptors", fds0+1, func() int { return openFDs(t) })
	settled(t, "goroutines", g0+2, runtime.NumGoroutine)
	settled(t, "budget bytes held", 0, func() int { return int(srv.Budget().Used()) })
}

// TestZeroCopySendOutlivesDeletionOfItsSegment: an answer stalls in the
// middle of a segment; DeleteRecords then deletes that segment (and the
// next ones). The answer completes with the records it was built with
// (the open descriptor keeps the deleted file readable), and its
// descriptors are released once it is written.
func TestZeroCopySendOutlivesDeletionOfItsSegment(t *testing.T) {
	t.Parallel()
	srv, dir := diskServerIn(t)
	const topic = "deleted"
	cl := kgoClient(t, srv)
	// Segments of 8 MB: an answer larger than the most the kernel buffers
	// on loopback (tcp_wmem's 4 MB), so it stalls in the middle.
	createTopic(t, cl, topic, 1, 8<<20)
	for i := 0; i < 2000; i += 200 {
		produceRange(t, srv, topic, []int32{0}, i, i+200, kgo.NoCompression())
	}
	segs := func() int {
		m, _ := filepath.Glob(filepath.Join(dir, "logs", "*", "0", "*.log"))
		return len(m)
	}
	if n := segs(); n < 3 {
		t.Fatalf("%d segments, want several", n)
	}
	fds0 := openFDs(t)
	rc := dialRaw(t, srv)
	req := fetchReq(topic, 16<<20, map[int32]int64{0: 0})
	rc.send(req)
	if _, err := rc.br.Peek(512); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the answer parked", func() bool {
		return srv.Metrics.GetOrCreateCounter(`floodgate_parks_total{reason="slow_reader"}`).Get() >= 1
	})
	before := segs()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup(topic, 0)
	del, err := kadm.NewClient(cl).DeleteRecords(ctx, kadm.Offsets{topic: {0: kadm.Offset{Topic: topic, Partition: 0, At: end.Offset}}})
	if err != nil || del.Error() != nil {
		t.Fatalf("delete records: %v %v", err, del.Error())
	}
	if after := segs(); after >= before {
		t.Fatalf("segments %d -> %d: the stalled answer's segment was not deleted", before, after)
	}
	_, resp := rc.read(req)
	p := &resp.(*kmsg.FetchResponse).Topics[0].Partitions[0]
	n := checkRecords(t, p, 0)
	t.Logf("answer of %d records completed after its segments were deleted (%d -> %d segment files)", n, before, segs())
	if n == 0 {
		t.Fatal("no records")
	}
	waitFor(t, "sections released", func() bool { return gauge(t, srv, "floodgate_sendfile_sections_held") == 0 })
	rc.nc.Close()
	settled(t, "descriptors", fds0, func() int { return openFDs(t) })
}

// TestZeroCopySmallAnswersAreReadInlineLargeOnesSent: a partition's
// records under 4 KB (a consumer following the tail) are read into the
// answer — one pread instead of a sendfile and a cut in the writev — and
// larger ones are sent from the file; both arrive whole.
func TestZeroCopySmallAnswersAreReadInlineLargeOnesSent(t *testing.T) {
	t.Parallel()
	srv := diskServer(t)
	const topic = "tail"
	createTopic(t, kgoClient(t, srv), topic, 1, 8<<20)
	produceRange(t, srv, topic, []int32{0}, 1, 4, kgo.NoCompression()) // records 1-3: a few hundred bytes
	sent := func() uint64 { return srv.Metrics.GetOrCreateCounter("floodgate_sendfile_bytes_total").Get() }
	rc := dialRaw(t, srv)
	req := fetchReq(topic, 1<<20, map[int32]int64{0: 0})
	rc.send(req)
	_, resp := rc.read(req)
	// Offsets 0-2 hold the values of records 1-3.
	p := &resp.(*kmsg.FetchResponse).Topics[0].Partitions[0]
	if len(p.RecordBatches) == 0 || len(p.RecordBatches) >= 4096 {
		t.Fatalf("small answer: %d bytes of records", len(p.RecordBatches))
	}
	if n := sent(); n != 0 {
		t.Fatalf("%d bytes by sendfile for an answer under 4 KB", n)
	}
	fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Topic: topic, Partition: 0}, p, kgo.DefaultDecompressor(), nil)
	if len(fp.Records) != 3 || fp.Err != nil {
		t.Fatalf("small answer: %d records, %v", len(fp.Records), fp.Err)
	}
	for i, r := range fp.Records {
		if !bytes.Equal(r.Value, value(0, i+1, sizeOf(i+1))) {
			t.Fatalf("small answer: record %d differs", i)
		}
	}
	produceRange(t, srv, topic, []int32{0}, 3, 30, kgo.NoCompression()) // offsets 3-29, with 64 KB values
	req = fetchReq(topic, 1<<20, map[int32]int64{0: 3})
	rc.send(req)
	_, resp = rc.read(req)
	p = &resp.(*kmsg.FetchResponse).Topics[0].Partitions[0]
	if n := checkRecords(t, p, 3); n == 0 || sent() < 64<<10 {
		t.Fatalf("large answer: %d records, %d bytes by sendfile", n, sent())
	}
	waitFor(t, "sections released", func() bool { return gauge(t, srv, "floodgate_sendfile_sections_held") == 0 })
}
