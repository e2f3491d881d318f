package httpapi_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/storage"
)

// rawBatch builds a v2 record batch around records (already compressed
// with codec) with a valid CRC32C, as a hostile producer would.
func rawBatch(codec int16, records []byte, numRecords, lastDelta int32) []byte {
	b := make([]byte, 61, 61+len(records))
	binary.BigEndian.PutUint32(b[8:], uint32(49+len(records)))
	binary.BigEndian.PutUint32(b[12:], 0xffffffff) // partition leader epoch -1
	b[16] = 2
	binary.BigEndian.PutUint16(b[21:], uint16(codec))
	binary.BigEndian.PutUint32(b[23:], uint32(lastDelta))
	now := uint64(time.Now().UnixMilli())
	binary.BigEndian.PutUint64(b[27:], now)
	binary.BigEndian.PutUint64(b[35:], now)
	binary.BigEndian.PutUint64(b[43:], 0xffffffffffffffff) // producer id -1
	binary.BigEndian.PutUint16(b[51:], 0xffff)
	binary.BigEndian.PutUint32(b[53:], 0xffffffff)
	binary.BigEndian.PutUint32(b[57:], uint32(numRecords))
	b = append(b, records...)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// oneRecord encodes a record (offset delta 0) with value.
func oneRecord(value []byte) []byte {
	r := kmsg.Record{Value: value}
	r.Length = int32(len(r.AppendTo(nil)) - 1)
	return r.AppendTo(nil)
}

// poisonSnappy is the 69-byte batch of issue 14: a snappy batch whose
// payload is only the 8-byte xerial magic.
func poisonSnappy() []byte {
	return rawBatch(2, []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}, 1, 0)
}

// produceRaw sends batch as it is to partition 0 of topic over Kafka and
// fails the test unless the broker stores it.
func produceRaw(t *testing.T, kafkaAddr, topic string, batch []byte) {
	t.Helper()
	createTopic(t, kafkaAddr, topic)
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("the broker refused the batch (error %d); the REST path under test needs it stored", code)
	}
}

// createTopic makes topic (one partition) exist.
func createTopic(t *testing.T, kafkaAddr, topic string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = topic, 1, 1
	req.Topics = append(req.Topics, ct)
	req.TimeoutMillis = 5000
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := req.RequestWith(ctx, cl); err != nil {
		t.Fatal(err)
	}
}

type restFail struct {
	ErrorCode  int    `json:"error_code"`
	Message    string `json:"message"`
	Limit      string `json:"limit"`
	Configured int64  `json:"configured"`
	Offset     int64  `json:"offset"`
	NextOffset int64  `json:"next_offset"`
}

func decodeFail(t *testing.T, a answer) restFail {
	t.Helper()
	var f restFail
	if err := json.Unmarshal([]byte(a.body), &f); err != nil {
		t.Fatalf("answer %d %q is not a JSON error: %v", a.status, a.body, err)
	}
	return f
}

// produceCode sends batch as it is to partition 0 of topic over Kafka and
// returns the partition's error code.
func produceCode(t *testing.T, kafkaAddr, topic string, batch []byte) int16 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// stopServer stops srv (loop, API, broker) before the test ends, releasing
// its data dir.
func stopServer(t *testing.T, srv *testserver.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	srv.API.Close()
	srv.Broker.Close()
}

// plantedServer starts a server on a new data dir, creates topic, stops
// it, appends batches to partition 0 on disk (testserver.PlantBatch:
// bypassing the produce path, which now refuses poison and bombs, as data
// written before validation existed or damaged on disk would be), and
// returns a server started again on that dir, and the dir.
func plantedServer(t *testing.T, topic string, batches [][]byte, opts ...testserver.Option) (*testserver.Server, string) {
	t.Helper()
	dir := t.TempDir()
	opts = append([]testserver.Option{testserver.WithDataDir(dir, storage.FsyncNever)}, opts...)
	first := testserver.Start(t, opts...)
	createTopic(t, first.KafkaAddr(), topic)
	stopServer(t, first)
	for _, b := range batches {
		testserver.PlantBatch(t, dir, topic, 0, b)
	}
	return testserver.Start(t, opts...), dir
}

// TestProduceOfPoisonAndBombIsRefused: the first line of defense. The
// broker refuses to store issue 14's poison snappy batch (INVALID_RECORD,
// 87) and a 3 KB zstd batch inflating to 99 MiB (MESSAGE_TOO_LARGE, 10),
// and the log end does not move; the REST tests below plant them on disk.
func TestProduceOfPoisonAndBombIsRefused(t *testing.T) {
	t.Parallel()
	srv := startHTTP(t, func(c *limits.HTTPConfig) {})
	createTopic(t, srv.KafkaAddr(), "refused")
	for _, tc := range []struct {
		name  string
		batch []byte
		want  int16
	}{
		{"poison snappy", poisonSnappy(), 87},
		{"zstd bomb", zstdBomb(t, 99<<20), 10},
	} {
		if code := produceCode(t, srv.KafkaAddr(), "refused", tc.batch); code != tc.want {
			t.Errorf("%s: error %d, want %d", tc.name, code, tc.want)
		}
	}
	a := do(t, client(), "GET", "http://"+srv.HTTPAddr()+"/topics/refused/partitions/0/offsets", "", nil)
	if a.status != 200 || !strings.Contains(a.body, `"end_offset":0`) {
		t.Fatalf("offsets after the refusals: %d %s", a.status, a.body)
	}
}

// TestRESTFetchOfPoisonSnappyBatch: a snappy batch holding only the
// xerial magic, on disk, is answered, on every one of 2,000 GETs, with 500
// and error code 50003 naming the batch's offset and where to resume; the
// route's tickets come back (it still serves afterwards), and reading on
// from next_offset returns the good record after it.
func TestRESTFetchOfPoisonSnappyBatch(t *testing.T) {
	t.Parallel()
	srv, _ := plantedServer(t, "poison", [][]byte{poisonSnappy(), rawBatch(0, oneRecord([]byte("good")), 1, 0)},
		testserver.WithHTTPLimits(func(c *limits.HTTPConfig) {}))
	cl := client()
	url := "http://" + srv.HTTPAddr() + "/topics/poison/partitions/0/records?offset=0"
	for i := 0; i < 2000; i++ {
		a := do(t, cl, "GET", url, "", nil)
		if a.status != 500 {
			t.Fatalf("GET %d: %d %s, want 500 naming the corrupt batch", i, a.status, a.body)
		}
		if f := decodeFail(t, a); f.ErrorCode != 50003 || f.Offset != 0 || f.NextOffset != 1 {
			t.Fatalf("GET %d: %+v", i, f)
		}
	}
	a := do(t, cl, "GET", "http://"+srv.HTTPAddr()+"/topics/poison/partitions/0/records?offset=1", "", nil,
		"Accept", "application/vnd.kafka.json.v2+json")
	if a.status != 200 || !strings.Contains(a.body, `"value":"good"`) || !strings.Contains(a.body, `"offset":1`) {
		t.Fatalf("reading on after the poison: %d %s", a.status, a.body)
	}
	if v := srv.Metrics.GetOrCreateCounter("floodgate_rest_corrupt_batches_total").Get(); v != 2000 {
		t.Fatalf("floodgate_rest_corrupt_batches_total = %d, want 2000", v)
	}
}

// longPoll GETs url on its own goroutine; the answer arrives on the channel.
func longPoll(cl *http.Client, url string) <-chan answer {
	got := make(chan answer, 1)
	go func() {
		resp, err := cl.Get(url)
		if err != nil {
			got <- answer{status: -1, body: err.Error()}
			return
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		got <- answer{status: resp.StatusCode, body: b.String()}
	}()
	return got
}

// TestRESTLongPollAtAPlantedPoison: a poison batch can no longer be
// produced, so it cannot wake a parked long poll (the waiter-panic
// recovery is covered by broker's TestFetchWaiterPanicIsRecovered and
// TestPanicInAKafkaContinuationReleasesTheRequest). What remains: a long
// poll (timeout=10000) at an offset at or before a poison batch on disk is
// answered at once 500 naming it and where to resume, the process goes
// on serving, and a long poll from next_offset parks and is woken by the
// next good produce.
func TestRESTLongPollAtAPlantedPoison(t *testing.T) {
	t.Parallel()
	srv, _ := plantedServer(t, "poison-wait", [][]byte{rawBatch(0, oneRecord([]byte("before")), 1, 0), poisonSnappy()})
	cl := client()
	base := "http://" + srv.HTTPAddr() + "/topics/poison-wait/partitions/0/records"
	start := time.Now()
	a := <-longPoll(cl, base+"?offset=1&timeout=10000")
	if f := decodeFail(t, a); a.status != 500 || f.ErrorCode != 50003 || f.Offset != 1 || f.NextOffset != 2 || time.Since(start) > 5*time.Second {
		t.Fatalf("long poll at the poison: %d %s after %v", a.status, a.body, time.Since(start))
	}
	if h := do(t, cl, "GET", "http://"+srv.HTTPAddr()+"/health", "", nil); h.status != 200 {
		t.Fatalf("health after the poison: %d", h.status)
	}
	got := longPoll(cl, base+"?offset=2&timeout=10000")
	time.Sleep(300 * time.Millisecond) // the fetch is parked by now
	select {
	case a := <-got:
		t.Fatalf("the long poll at the log end was answered before any produce: %d %s", a.status, a.body)
	default:
	}
	produceRaw(t, srv.KafkaAddr(), "poison-wait", rawBatch(0, oneRecord([]byte("woken")), 1, 0))
	a = <-got
	if a.status != 200 || !strings.Contains(a.body, `"offset":2`) {
		t.Fatalf("long poll after the poison: %d %s", a.status, a.body)
	}
}

// TestRESTPoisonOnDiskSurvivesRestart: with the poison stored on disk, a
// server restarted on the same data dir (recovery CRC-checks the tail,
// and the poison's CRC is valid) starts, answers the REST fetch of it 500
// with the offset, and serves the good record after it.
func TestRESTPoisonOnDiskSurvivesRestart(t *testing.T) {
	t.Parallel()
	first, dir := plantedServer(t, "poison-disk", [][]byte{poisonSnappy(), rawBatch(0, oneRecord([]byte("after")), 1, 0)})
	a := do(t, client(), "GET", "http://"+first.HTTPAddr()+"/topics/poison-disk/partitions/0/records?offset=0", "", nil)
	if a.status != 500 {
		t.Fatalf("first server: %d %s", a.status, a.body)
	}
	stopServer(t, first)

	second := testserver.Start(t, testserver.WithDataDir(dir, storage.FsyncAlways))
	cl := client()
	base := "http://" + second.HTTPAddr()
	a = do(t, cl, "GET", base+"/topics/poison-disk/partitions/0/records?offset=0", "", nil)
	if f := decodeFail(t, a); a.status != 500 || f.NextOffset != 1 {
		t.Fatalf("after restart: %d %s", a.status, a.body)
	}
	a = do(t, cl, "GET", base+"/topics/poison-disk/partitions/0/records?offset=1", "", nil, "Accept", "application/vnd.kafka.json.v2+json")
	if a.status != 200 || !strings.Contains(a.body, `"value":"after"`) {
		t.Fatalf("after restart, reading on: %d %s", a.status, a.body)
	}
}

// allocatedDuring returns the bytes the process allocated while fn ran.
func allocatedDuring(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// zstdBomb is a zstd batch of one record whose value is n zero bytes.
func zstdBomb(t *testing.T, n int) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return rawBatch(4, enc.EncodeAll(oneRecord(make([]byte, n)), nil), 1, 0)
}

// TestRESTFetchZstdBombStaysUnderCap: five zstd batches of a few KB that
// inflate to 99 MiB each, on disk (produce refuses them now:
// TestProduceOfPoisonAndBombIsRefused), make a REST fetch allocate a
// bounded amount (the answer cap plus decoder state), not 5 x 99 MiB, and
// answer 422 naming max-rest-response-bytes and where to resume. Batches
// that fit are answered while the answer stays under the cap.
func TestRESTFetchZstdBombStaysUnderCap(t *testing.T) {
	bomb := zstdBomb(t, 99<<20)
	t.Logf("bomb batch: %d bytes, inflating to 99 MiB", len(bomb))
	srv, _ := plantedServer(t, "bomb", [][]byte{bomb, bomb, bomb, bomb, bomb})
	cl := client()
	url := "http://" + srv.HTTPAddr() + "/topics/bomb/partitions/0/records?offset=0"
	var a answer
	alloc := allocatedDuring(func() { a = do(t, cl, "GET", url, "", nil) })
	t.Logf("REST fetch of 5 zstd bombs: %d %d bytes answer, %.1f MiB allocated", a.status, len(a.body), float64(alloc)/(1<<20))
	f := decodeFail(t, a)
	if a.status != 422 || f.Limit != "max-rest-response-bytes" || f.Offset != 0 || f.NextOffset != 1 {
		t.Fatalf("bomb fetch: %d %s", a.status, a.body)
	}
	if !raceEnabled && alloc > 16<<20 {
		t.Fatalf("a REST fetch of zstd bombs allocated %d bytes, want under 16 MiB", alloc)
	}

	// Batches of 6 MiB each: an answer (base64) holds two at most.
	for i := 0; i < 4; i++ {
		produceRaw(t, srv.KafkaAddr(), "big", zstdBomb(t, 6<<20))
	}
	url = "http://" + srv.HTTPAddr() + "/topics/big/partitions/0/records?offset=0"
	alloc = allocatedDuring(func() { a = do(t, cl, "GET", url, "", nil) })
	var recs []fetched
	if err := json.Unmarshal([]byte(a.body), &recs); a.status != 200 || err != nil || len(recs) != 1 {
		t.Fatalf("6 MiB batches: %d, %d records, %v", a.status, len(recs), err)
	}
	t.Logf("REST fetch of 4 x 6 MiB: %d bytes answer, %.1f MiB allocated", len(a.body), float64(alloc)/(1<<20))
	// Allocated: one 6 MiB batch, its 8 MiB answer, the loop's copy of it
	// and the test client's reading of it (~24 MiB).
	if len(a.body) > 16<<20 || (!raceEnabled && alloc > 56<<20) {
		t.Fatalf("answer %d bytes, %d allocated: over the cap", len(a.body), alloc)
	}
}

// TestRESTFetchRefusedWhenBudgetCannotHoldTheAnswer: a REST fetch whose
// answer would not fit in --request-memory-bytes is answered 503 with
// Retry-After and a JSON body naming request-memory-bytes, and the budget is
// back where it was afterwards.
func TestRESTFetchRefusedWhenBudgetCannotHoldTheAnswer(t *testing.T) {
	t.Parallel()
	srv := startHTTP(t, func(c *limits.HTTPConfig) {}, testserver.WithLimits(func(c *limits.Config) { c.MemoryLimitBytes = 8 << 20 }))
	produceRaw(t, srv.KafkaAddr(), "fat", zstdBomb(t, 5<<20))
	// What the produce's connection still holds (54 bytes seen under
	// -race) is released asynchronously: wait for it, or it is released
	// during the fetch and the budget ends below where it began.
	for deadline := time.Now().Add(2 * time.Second); srv.Budget().Used() != 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	before := srv.Budget().Used()
	a := do(t, client(), "GET", "http://"+srv.HTTPAddr()+"/topics/fat/partitions/0/records?offset=0", "", nil)
	lim, conf, _ := limitBody(t, a.body)
	if a.status != 503 || a.header.Get("Retry-After") == "" || lim != "request-memory-bytes" || conf != 8<<20 {
		t.Fatalf("fat fetch: %d %v %s", a.status, a.header, a.body)
	}
	deadline := time.Now().Add(2 * time.Second)
	for srv.Budget().Used() != before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if used := srv.Budget().Used(); used != before {
		t.Fatalf("budget used %d after the refusal, %d before", used, before)
	}
}

// tinyRecordsBody is a produce body of n records of 11 bytes each.
func tinyRecordsBody(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"records":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"value":1}`)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// TestRESTProduceOfManyTinyRecordsIsBounded: 8 concurrent 10 MiB bodies
// of ~870,000 tiny records each are refused 413 naming
// max-rest-records-per-request, the API allocating less than the bodies
// themselves (before: ~80x); a body at the limit is served and what it
// allocates is bounded by a constant per record.
//
// The loop grows a body's buffer by doubling as the bytes arrive (~2.5x
// a 10 MiB body), so what the API allocates is measured against a
// baseline: the same 8 bodies POSTed to a route that answers 404 without
// reading them.
func TestRESTProduceOfManyTinyRecordsIsBounded(t *testing.T) {
	srv := startHTTP(t, func(c *limits.HTTPConfig) { c.MaxBodyBufferBytes = 16 << 20 })
	body := tinyRecordsBody((10<<20 - 20) / 12)
	cl := client()
	answers := make([]answer, 8)
	post8 := func(url string) uint64 {
		var wg sync.WaitGroup
		return allocatedDuring(func() {
			for i := range answers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					answers[i] = do(t, cl, "POST", url, "application/vnd.kafka.json.v2+json", bytes.NewReader(body))
				}()
			}
			wg.Wait()
		})
	}
	baseline := post8("http://" + srv.HTTPAddr() + "/no-such-route")
	for i, a := range answers {
		if a.status != 404 {
			t.Fatalf("baseline body %d: %d %s", i, a.status, a.body)
		}
	}
	url := "http://" + srv.HTTPAddr() + "/topics/tiny"
	alloc := post8(url)
	api := int64(alloc) - int64(baseline)
	t.Logf("8 x %d-byte bodies of tiny records: %.1f MiB allocated, %.1f MiB for the same bodies answered 404: the API's share %.1f MiB (%.2fx the bodies)",
		len(body), float64(alloc)/(1<<20), float64(baseline)/(1<<20), float64(api)/(1<<20), float64(api)/float64(8*len(body)))
	for i, a := range answers {
		lim, conf, _ := limitBody(t, a.body)
		if a.status != 413 || lim != "max-rest-records-per-request" || conf != 10000 {
			t.Fatalf("body %d: %d %s", i, a.status, a.body)
		}
	}
	if !raceEnabled && api > int64(8*len(body)) {
		t.Fatalf("the API allocated %d bytes for %d bytes of bodies: over 1x", api, 8*len(body))
	}

	body = tinyRecordsBody(10000)
	var a answer
	alloc = allocatedDuring(func() {
		a = do(t, cl, "POST", url, "application/vnd.kafka.json.v2+json", bytes.NewReader(body))
	})
	t.Logf("10,000 tiny records (%d bytes): %d-byte answer, %.1f MiB allocated", len(body), len(a.body), float64(alloc)/(1<<20))
	var oa offsetsAnswer
	if err := json.Unmarshal([]byte(a.body), &oa); a.status != 200 || err != nil || len(oa.Offsets) != 10000 {
		t.Fatalf("10,000 records: %d %v", a.status, err)
	}
	if !raceEnabled && alloc > 16<<20 {
		t.Fatalf("10,000 tiny records allocated %d bytes, want under 16 MiB", alloc)
	}
}

// TestRESTInflatedBodyIsCharged: a gzip body that inflates to 24 MiB
// (within --max-decompressed-size-bytes) is refused 503 naming
// request-memory-bytes when the budget (16 MiB) cannot hold it; before, the
// inflated bytes were outside the budget and the produce succeeded.
func TestRESTInflatedBodyIsCharged(t *testing.T) {
	t.Parallel()
	srv := startHTTP(t, func(c *limits.HTTPConfig) { c.MaxDecompressionRatio = 0 },
		testserver.WithLimits(func(c *limits.Config) { c.MemoryLimitBytes = 16 << 20 }))
	var raw bytes.Buffer
	raw.WriteString(`{"records":[{"value":"`)
	raw.WriteString(strings.Repeat("A", 24<<20))
	raw.WriteString(`"}]}`)
	gz := gzipBytes(t, raw.Bytes())
	a := do(t, client(), "POST", "http://"+srv.HTTPAddr()+"/topics/inflated", "application/vnd.kafka.json.v2+json",
		bytes.NewReader(gz), "Content-Encoding", "gzip")
	lim, _, _ := limitBody(t, a.body)
	if a.status != 503 || lim != "request-memory-bytes" {
		t.Fatalf("inflated body: %d %s", a.status, a.body)
	}
	// The series keeps the label it was published with.
	if m := do(t, client(), "GET", "http://"+srv.HTTPAddr()+"/metrics", "", nil).body; !strings.Contains(m,
		`floodgate_http_limit_tripped_total{limit="memory-limit-bytes"} 1`) {
		t.Fatal(`no floodgate_http_limit_tripped_total{limit="memory-limit-bytes"} 1 in /metrics`)
	}
	// The charge is released right after the answer is handed over.
	deadline := time.Now().Add(2 * time.Second)
	for srv.Budget().Used() > 1<<20 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if used := srv.Budget().Used(); used > 1<<20 {
		t.Fatalf("budget still holds %d bytes after the refusal", used)
	}
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestRESTFetchAnswerStopsAtTheCap: with --max-rest-response-bytes 4096,
// every answer stays within 4096 bytes and a consumer reading on from the
// last offset gets all 100 records of 100 bytes; a record that alone does
// not fit is answered 422 naming the limit, its offset and the next one.
func TestRESTFetchAnswerStopsAtTheCap(t *testing.T) {
	t.Parallel()
	srv := startHTTP(t, func(c *limits.HTTPConfig) { c.MaxRESTResponseBytes = 4096 })
	for i := 0; i < 100; i++ {
		produceRaw(t, srv.KafkaAddr(), "capped", rawBatch(0, oneRecord(bytes.Repeat([]byte{'a' + byte(i%26)}, 100)), 1, 0))
	}
	produceRaw(t, srv.KafkaAddr(), "capped", rawBatch(0, oneRecord(make([]byte, 5000)), 1, 0))
	cl := client()
	next, answers := int64(0), 0
	for next < 100 {
		a := do(t, cl, "GET", fmt.Sprintf("http://%s/topics/capped/partitions/0/records?offset=%d", srv.HTTPAddr(), next), "", nil)
		var recs []fetched
		if err := json.Unmarshal([]byte(a.body), &recs); a.status != 200 || err != nil || len(recs) == 0 {
			t.Fatalf("from %d: %d %.200s", next, a.status, a.body)
		}
		if len(a.body) > 4096 {
			t.Fatalf("answer of %d bytes over the 4096 cap", len(a.body))
		}
		for _, r := range recs {
			if r.Offset != next {
				t.Fatalf("offset %d, want %d", r.Offset, next)
			}
			next++
		}
		answers++
	}
	t.Logf("100 records of 100 bytes in %d answers of at most 4096 bytes", answers)
	a := do(t, cl, "GET", "http://"+srv.HTTPAddr()+"/topics/capped/partitions/0/records?offset=100", "", nil)
	if f := decodeFail(t, a); a.status != 422 || f.Limit != "max-rest-response-bytes" || f.Offset != 100 || f.NextOffset != 101 {
		t.Fatalf("oversize record: %d %s", a.status, a.body)
	}
}

// TestRESTFetchWaitIsCappedByTheFlag: a REST long poll asking for
// timeout=10000 is answered (200, no records) once --max-rest-fetch-wait
// passed. Before, the cap was a constant 30 s.
func TestRESTFetchWaitIsCappedByTheFlag(t *testing.T) {
	t.Parallel()
	srv := startHTTP(t, func(c *limits.HTTPConfig) { c.MaxRESTFetchWait = 200 * time.Millisecond })
	cl := client()
	base := "http://" + srv.HTTPAddr() + "/topics/capped-wait"
	if a := do(t, cl, "POST", base, "application/vnd.kafka.json.v2+json", strings.NewReader(`{"records":[{"value":1}]}`)); a.status != 200 {
		t.Fatalf("produce: %d %s", a.status, a.body)
	}
	start := time.Now()
	a := <-longPoll(cl, base+"/partitions/0/records?offset=1&timeout=10000")
	if el := time.Since(start); a.status != 200 || el < 150*time.Millisecond || el > 3*time.Second {
		t.Fatalf("long poll answered %d after %v: %s; want 200 after about 200ms", a.status, el, a.body)
	}
}
