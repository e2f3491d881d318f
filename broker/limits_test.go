package broker

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/storage"
)

// openBrokerWith opens a broker on dir (in memory when empty) with the
// configuration changed by mod, closed at the end of the test.
func openBrokerWith(t *testing.T, dir string, mod func(*Config)) *Broker {
	t.Helper()
	cfg := Config{NodeID: 1, Host: "127.0.0.1", Port: 9092, Logger: slog.New(slog.DiscardHandler), DataDir: dir, Fsync: storage.FsyncInterval, AutoCreateTopics: true}
	if mod != nil {
		mod(&cfg)
	}
	b, err := Open(cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// TestTopicsJSONImpossibleContentRefusedAtStart writes topics.json files no
// floodgate could have written and checks that start-up refuses each at
// once with a message naming the problem (2^31-1 partitions used to hang
// start-up allocating them), before creating any partition directory.
func TestTopicsJSONImpossibleContentRefusedAtStart(t *testing.T) {
	const id1, id2 = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	tests := []struct {
		name, json, want string
	}{
		{"2^31-1 partitions", `[{"name":"t","id":"` + id1 + `","partitions":2147483647}]`, "--max-partitions-per-topic"},
		{"no partitions", `[{"name":"t","id":"` + id1 + `","partitions":0}]`, "has 0 partitions"},
		{"negative partitions", `[{"name":"t","id":"` + id1 + `","partitions":-5}]`, "has -5 partitions"},
		{"partitions in all", `[{"name":"t","id":"` + id1 + `","partitions":9000},{"name":"u","id":"` + id2 + `","partitions":9000}]`, "--max-partitions=10000"},
		{"bad name", `[{"name":"../../etc","id":"` + id1 + `","partitions":1}]`, "illegal character"},
		{"empty name", `[{"name":"","id":"` + id1 + `","partitions":1}]`, "empty"},
		{"duplicate name", `[{"name":"t","id":"` + id1 + `","partitions":1},{"name":"t","id":"` + id2 + `","partitions":1}]`, "listed twice"},
		{"duplicate id", `[{"name":"t","id":"` + id1 + `","partitions":1},{"name":"u","id":"` + id1 + `","partitions":1}]`, "of another topic"},
		{"bad id", `[{"name":"t","id":"zz","partitions":1}]`, "bad id"},
		{"not json", `[{"name":`, "topics.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, topicsFile), []byte(tc.json), 0o644); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			b, err := Open(Config{Logger: slog.New(slog.DiscardHandler), DataDir: dir, MaxPartitions: 10000})
			took := time.Since(start)
			if err == nil {
				b.Close()
				t.Fatal("start-up accepted it")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
			if took > time.Second {
				t.Fatalf("refused after %v", took)
			}
			if des, _ := os.ReadDir(filepath.Join(dir, logsDir)); len(des) != 0 {
				t.Fatalf("%d partition directories made before refusing", len(des))
			}
			// The lock is released: a repaired data dir starts.
			if err := os.WriteFile(filepath.Join(dir, topicsFile), []byte(`[]`), 0o644); err != nil {
				t.Fatal(err)
			}
			openBrokerWith(t, dir, nil)
		})
	}
	t.Run("oversized file", func(t *testing.T) {
		dir := t.TempDir()
		big := make([]byte, 3*maxTopicMetaBytes)
		if err := os.WriteFile(filepath.Join(dir, topicsFile), big, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(Config{Logger: slog.New(slog.DiscardHandler), DataDir: dir, MaxTopics: 1}); err == nil || !strings.Contains(err.Error(), "--max-topics=1") {
			t.Fatalf("err %v: want a refusal naming --max-topics", err)
		}
	})
}

// rss is this process's resident set in bytes.
func rss() int64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, res int64
	fmt.Sscan(string(data), &size, &res)
	return res * int64(os.Getpagesize())
}

func metadataFor(names []string) *kmsg.MetadataRequest {
	req := kmsg.NewPtrMetadataRequest()
	req.Version, req.AllowAutoTopicCreation = 12, true
	for _, n := range names {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(n)
		req.Topics = append(req.Topics, rt)
	}
	return req
}

func topicNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%05d", prefix, i)
	}
	return out
}

// TestMetadataAutoCreateWritesTopicsOnce sends Metadata requests naming
// 5,000 unknown topics to a broker on disk. With limits raised to allow
// all of them, they are created with one write of topics.json (it was one
// write and fsync per topic, O(n^2): 11,310 topics in 120 s; the count of
// writes catches that at any size); with the
// default limits 100 are created and the rest answer
// UNKNOWN_TOPIC_OR_PARTITION; past --max-metadata-topics every topic
// answers INVALID_REQUEST and nothing is created.
func TestMetadataAutoCreateWritesTopicsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 5,000 topics on disk")
	}
	const n = 5000
	count := func(resp *kmsg.MetadataResponse) map[int16]int {
		m := map[int16]int{}
		for _, mt := range resp.Topics {
			m[mt.ErrorCode]++
		}
		return m
	}
	t.Run("limits raised", func(t *testing.T) {
		b := openBrokerWith(t, t.TempDir(), func(c *Config) {
			c.MaxTopics, c.MaxPartitions, c.MaxAutoCreateTopics, c.MaxMetadataTopics = n, n, n, n
			c.MaxOpenSegmentFiles = 256
		})
		writes := b.metrics.topicsWrites.Get()
		runtime.GC()
		rss0 := rss()
		start := time.Now()
		resp := call[*kmsg.MetadataResponse](t, b, metadataFor(topicNames("auto", n)))
		took := time.Since(start)
		runtime.GC()
		rss1 := rss()
		if got := count(resp); got[0] != n {
			t.Fatalf("answers by error code %v, want %d created", got, n)
		}
		w := b.metrics.topicsWrites.Get() - writes
		st, _ := os.Stat(filepath.Join(b.store.dir, topicsFile))
		t.Logf("Metadata auto-creating %d topics: %v, %d write(s) of topics.json (%d KiB); segment files open %d; RSS %d -> %d MiB",
			n, took.Round(time.Millisecond), w, st.Size()>>10, b.store.files.Stats().Open, rss0>>20, rss1>>20)
		if w != 1 {
			t.Fatalf("topics.json written %d times, want once", w)
		}
		if len(b.allTopics()) != n {
			t.Fatalf("%d topics", len(b.allTopics()))
		}
	})
	t.Run("default limits", func(t *testing.T) {
		b := openBrokerWith(t, t.TempDir(), nil)
		writes := b.metrics.topicsWrites.Get()
		resp := call[*kmsg.MetadataResponse](t, b, metadataFor(topicNames("auto", 5000)))
		got := count(resp)
		if got[0] != DefaultMaxAutoCreateTopics || got[kafka.ErrUnknownTopicOrPartition] != 5000-DefaultMaxAutoCreateTopics {
			t.Fatalf("answers by error code %v: want %d created, the rest UNKNOWN_TOPIC_OR_PARTITION", got, DefaultMaxAutoCreateTopics)
		}
		if w := b.metrics.topicsWrites.Get() - writes; w != 1 {
			t.Fatalf("topics.json written %d times, want once", w)
		}
		// The next request creates the next ones: a client retrying converges.
		resp = call[*kmsg.MetadataResponse](t, b, metadataFor(topicNames("auto", 5000)))
		if got := count(resp); got[0] != 2*DefaultMaxAutoCreateTopics {
			t.Fatalf("second request: %v", got)
		}
		resp = call[*kmsg.MetadataResponse](t, b, metadataFor(topicNames("many", DefaultMaxMetadataTopics+1)))
		if got := count(resp); got[kafka.ErrInvalidRequest] != DefaultMaxMetadataTopics+1 {
			t.Fatalf("over --max-metadata-topics: %v", got)
		}
		if len(b.allTopics()) != 2*DefaultMaxAutoCreateTopics {
			t.Fatalf("%d topics", len(b.allTopics()))
		}
		tripped := b.metrics.set.GetOrCreateCounter(`floodgate_requests_refused_total{limit="max-auto-create-topics-per-request"}`).Get()
		if tripped != 2 {
			t.Fatalf("auto-create limit counted %d trips, want 2", tripped)
		}
	})
}

// TestTopicLimitsAnswerKafkaErrors checks the answer of each topic and
// partition limit, and that the message names the flag.
func TestTopicLimitsAnswerKafkaErrors(t *testing.T) {
	b := openBrokerWith(t, "", func(c *Config) {
		c.MaxPartitionsPerTopic, c.MaxPartitions, c.MaxTopics = 8, 13, 3
	})
	createReq := func(name string, parts int32, configs map[string]string) *kmsg.CreateTopicsRequest {
		req := kmsg.NewPtrCreateTopicsRequest()
		req.Version = 7
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, parts, 1
		for k, v := range configs {
			c := kmsg.NewCreateTopicsRequestTopicConfig()
			c.Name, c.Value = k, kmsg.StringPtr(v)
			rt.Configs = append(rt.Configs, c)
		}
		req.Topics = append(req.Topics, rt)
		return req
	}
	steps := []struct {
		name     string
		req      kmsg.Request
		code     int16
		flagName string
	}{
		{"per topic", createReq("a", 9, nil), kafka.ErrInvalidPartitions, "--max-partitions-per-topic=8"},
		{"tiny segments", createReq("a", 1, map[string]string{"segment.bytes": "1"}), kafka.ErrInvalidConfig, "--min-segment-bytes=1048576"},
		{"first", createReq("a", 8, nil), 0, ""},
		{"partitions in all", createReq("b", 6, nil), errPolicyViolation, "--max-partitions=13"},
		{"second", createReq("b", 4, nil), 0, ""},
		{"grow past all", func() kmsg.Request {
			req := kmsg.NewPtrCreatePartitionsRequest()
			rt := kmsg.NewCreatePartitionsRequestTopic()
			rt.Topic, rt.Count = "b", 6
			req.Topics = append(req.Topics, rt)
			return req
		}(), errPolicyViolation, "--max-partitions=13"},
		{"alter to tiny segments", func() kmsg.Request {
			req := kmsg.NewPtrIncrementalAlterConfigsRequest()
			rr := kmsg.NewIncrementalAlterConfigsRequestResource()
			rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "a"
			c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
			c.Name, c.Value = "segment.bytes", kmsg.StringPtr("14")
			rr.Configs = append(rr.Configs, c)
			req.Resources = append(req.Resources, rr)
			return req
		}(), kafka.ErrInvalidConfig, "--min-segment-bytes"},
	}
	for _, st := range steps {
		var code int16
		var msg *string
		switch resp := call[kmsg.Response](t, b, st.req).(type) {
		case *kmsg.CreateTopicsResponse:
			code, msg = resp.Topics[0].ErrorCode, resp.Topics[0].ErrorMessage
		case *kmsg.CreatePartitionsResponse:
			code, msg = resp.Topics[0].ErrorCode, resp.Topics[0].ErrorMessage
		case *kmsg.IncrementalAlterConfigsResponse:
			code, msg = resp.Resources[0].ErrorCode, resp.Resources[0].ErrorMessage
		}
		if code != st.code {
			t.Fatalf("%s: code %d, want %d (%v)", st.name, code, st.code, msg)
		}
		if st.flagName != "" && (msg == nil || !strings.Contains(*msg, st.flagName)) {
			t.Fatalf("%s: message %v does not name %s", st.name, msg, st.flagName)
		}
	}
	// The topic count: with "a" and "b", one more topic fits.
	if resp := call[*kmsg.CreateTopicsResponse](t, b, createReq("c", -1, nil)); resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("third topic: %d", resp.Topics[0].ErrorCode)
	}
	if resp := call[*kmsg.CreateTopicsResponse](t, b, createReq("d", 1, nil)); resp.Topics[0].ErrorCode != errPolicyViolation ||
		!strings.Contains(*resp.Topics[0].ErrorMessage, "--max-topics=3") {
		t.Fatalf("past --max-topics: %d %s", resp.Topics[0].ErrorCode, *resp.Topics[0].ErrorMessage)
	}
	if resp := call[*kmsg.MetadataResponse](t, b, metadataFor([]string{"e"})); resp.Topics[0].ErrorCode != kafka.ErrUnknownTopicOrPartition {
		t.Fatalf("auto-create past --max-topics: %d", resp.Topics[0].ErrorCode)
	}
}

// TestRetentionSurvivesFarFutureTimestamp stores a record stamped in the
// year 9999 ahead of ordinary old ones and checks that time retention
// still deletes it, and what follows, once it was appended longer ago than
// retention.ms (it used to keep its segment, and every later one, for
// good), in memory and on disk.
func TestRetentionSurvivesFarFutureTimestamp(t *testing.T) {
	y9999 := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC).UnixMilli()
	for _, disk := range []bool{false, true} {
		t.Run(map[bool]string{false: "memory", true: "disk"}[disk], func(t *testing.T) {
			var skew atomic.Int64
			dir := ""
			if disk {
				dir = t.TempDir()
			}
			b := openBrokerWith(t, dir, func(c *Config) {
				c.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
				// Such records are refused on produce now; this is data
				// written before, or with the bound off.
				c.TimestampAfterMax = -1
			})
			// Tiny segments (set past the client limit): one batch each.
			createTopic(t, b, "t", 1, map[string]string{"retention.ms": "3600000", "segment.bytes": "100"})
			produce(t, b, "t", 0, 1, y9999)
			old := time.Now().Add(-2 * time.Hour).UnixMilli()
			for i := 0; i < 3; i++ {
				produce(t, b, "t", 0, 1, old)
			}
			if n := b.sweepRetention(); n != 0 {
				t.Fatalf("deleted %d right after the append", n)
			}
			skew.Store(int64(2 * time.Hour)) // the appends are now two hours old
			if disk {
				// File times are the real clock's: age the files instead.
				matches, _ := filepath.Glob(filepath.Join(dir, logsDir, "*", "0", "*.log"))
				for _, m := range matches {
					os.Chtimes(m, time.Now().Add(-2*time.Hour), time.Now().Add(-2*time.Hour))
				}
				skew.Store(0)
			}
			if n := b.sweepRetention(); n < 4 {
				t.Fatalf("deleted %d batches or segments, want the year-9999 one and the 3 after it", n)
			}
			p := b.lookupTopic("t").partitionOf(0)
			p.mu.Lock()
			start := p.logStart
			p.mu.Unlock()
			if start != 4 {
				t.Fatalf("log start %d, want 4", start)
			}
		})
	}
}
