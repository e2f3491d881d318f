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

// TestRESTFetchOfPoisonSnappyBatch: a stored snappy batch holding only the
// xerial magic is answered, on every one of 2,000 GETs, with 500 and error
// code 50003 naming the batch's offset and where to resume; the route's
// tickets come back (it still serves afterwards), and reading on from
// next_offset returns the good record after it.
func TestRESTFetchOfPoisonSnappyBatch(t *testing.T) {
	srv := startHTTP(t, func(c *limits.HTTPConfig) {})
	produceRaw(t, srv.KafkaAddr(), "poison", poisonSnappy())
	produceRaw(t, srv.KafkaAddr(), "poison", rawBatch(0, oneRecord([]byte("good")), 1, 0))
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

// TestRESTLongPollWakesOnPoison: a REST fetch waiting (long poll) when the
// poison batch arrives is answered 500 naming it, from the fetch waiter's
// goroutine, and the process goes on serving. Before the fix the panic on
// that goroutine had no recover and killed the test binary.
func TestRESTLongPollWakesOnPoison(t *testing.T) {
	srv := startHTTP(t, func(c *limits.HTTPConfig) {})
	createTopic(t, srv.KafkaAddr(), "poison-wait")
	cl := client()
	got := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+srv.HTTPAddr()+"/topics/poison-wait/partitions/0/records?offset=0&timeout=10000", nil)
		resp, err := cl.Do(req)
		if err != nil {
			got <- answer{status: -1, body: err.Error()}
			return
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		got <- answer{status: resp.StatusCode, body: b.String()}
	}()
	time.Sleep(300 * time.Millisecond) // the fetch is parked by now
	start := time.Now()
	produceRaw(t, srv.KafkaAddr(), "poison-wait", poisonSnappy())
	a := <-got
	if a.status != 500 || !strings.Contains(a.body, `"error_code":50003`) || time.Since(start) > 5*time.Second {
		t.Fatalf("long poll: %d %s after %v", a.status, a.body, time.Since(start))
	}
	if h := do(t, cl, "GET", "http://"+srv.HTTPAddr()+"/health", "", nil); h.status != 200 {
		t.Fatalf("health after the poison: %d", h.status)
	}
}

// TestRESTPoisonOnDiskSurvivesRestart: with the poison stored on disk, a
// server restarted on the same data dir starts, answers the REST fetch of
// it 500 with the offset, and serves the good record after it.
func TestRESTPoisonOnDiskSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	first := testserver.Start(t, testserver.WithDataDir(dir, storage.FsyncAlways))
	produceRaw(t, first.KafkaAddr(), "poison-disk", poisonSnappy())
	produceRaw(t, first.KafkaAddr(), "poison-disk", rawBatch(0, oneRecord([]byte("after")), 1, 0))
	a := do(t, client(), "GET", "http://"+first.HTTPAddr()+"/topics/poison-disk/partitions/0/records?offset=0", "", nil)
	if a.status != 500 {
		t.Fatalf("first server: %d %s", a.status, a.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	first.API.Close()
	first.Broker.Close()

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
// inflate to 99 MiB each make a REST fetch allocate a bounded amount (the
// answer cap plus decoder state), not 5 x 99 MiB, and answer 422 naming
// max-rest-response-bytes and where to resume. Batches that fit are
// answered while the answer stays under the cap.
func TestRESTFetchZstdBombStaysUnderCap(t *testing.T) {
	srv := startHTTP(t, func(c *limits.HTTPConfig) {})
	bomb := zstdBomb(t, 99<<20)
	t.Logf("bomb batch: %d bytes, inflating to 99 MiB", len(bomb))
	for i := 0; i < 5; i++ {
		produceRaw(t, srv.KafkaAddr(), "bomb", bomb)
	}
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
// answer would not fit in --memory-limit-bytes is answered 503 with
// Retry-After and a JSON body naming memory-limit-bytes, and the budget is
// back where it was afterwards.
func TestRESTFetchRefusedWhenBudgetCannotHoldTheAnswer(t *testing.T) {
	srv := startHTTP(t, func(c *limits.HTTPConfig) {}, testserver.WithLimits(func(c *limits.Config) { c.MemoryLimitBytes = 8 << 20 }))
	produceRaw(t, srv.KafkaAddr(), "fat", zstdBomb(t, 5<<20))
	before := srv.Budget().Used()
	a := do(t, client(), "GET", "http://"+srv.HTTPAddr()+"/topics/fat/partitions/0/records?offset=0", "", nil)
	lim, conf, _ := limitBody(t, a.body)
	if a.status != 503 || a.header.Get("Retry-After") == "" || lim != "memory-limit-bytes" || conf != 8<<20 {
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
// max-rest-records-per-request, allocating a small multiple of the bodies
// (before: ~80x); a body at the limit is served and what it allocates is
// bounded by a constant per record.
//
// The body buffer is sized to the whole body at once, so that what is
// measured is what the API allocates, not the loop's buffer growth.
func TestRESTProduceOfManyTinyRecordsIsBounded(t *testing.T) {
	srv := startHTTP(t, func(c *limits.HTTPConfig) { c.MaxBodyBufferBytes = 16 << 20 })
	body := tinyRecordsBody((10<<20 - 20) / 12)
	cl := client()
	url := "http://" + srv.HTTPAddr() + "/topics/tiny"
	var wg sync.WaitGroup
	answers := make([]answer, 8)
	alloc := allocatedDuring(func() {
		for i := range answers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				answers[i] = do(t, cl, "POST", url, "application/vnd.kafka.json.v2+json", bytes.NewReader(body))
			}()
		}
		wg.Wait()
	})
	t.Logf("8 x %d-byte bodies of tiny records: %.1f MiB allocated (%.1fx the bodies)", len(body),
		float64(alloc)/(1<<20), float64(alloc)/float64(8*len(body)))
	for i, a := range answers {
		lim, conf, _ := limitBody(t, a.body)
		if a.status != 413 || lim != "max-rest-records-per-request" || conf != 10000 {
			t.Fatalf("body %d: %d %s", i, a.status, a.body)
		}
	}
	if !raceEnabled && alloc > uint64(8*len(body))*2 {
		t.Fatalf("allocated %d bytes for %d bytes of bodies: over 2x", alloc, 8*len(body))
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
// memory-limit-bytes when the budget (16 MiB) cannot hold it; before, the
// inflated bytes were outside the budget and the produce succeeded.
func TestRESTInflatedBodyIsCharged(t *testing.T) {
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
	if a.status != 503 || lim != "memory-limit-bytes" {
		t.Fatalf("inflated body: %d %s", a.status, a.body)
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
