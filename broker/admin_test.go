package broker

import (
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

// testBatch builds a v2 record batch of n records timestamped ts (millis).
func testBatch(n int, ts int64, value string) []byte {
	var recs []byte
	for i := 0; i < n; i++ {
		var r []byte
		r = append(r, 0)                     // attributes
		r = binary.AppendVarint(r, 0)        // timestamp delta
		r = binary.AppendVarint(r, int64(i)) // offset delta
		r = binary.AppendVarint(r, -1)       // key
		r = binary.AppendVarint(r, int64(len(value)))
		r = append(r, value...)
		r = binary.AppendVarint(r, 0) // headers
		recs = binary.AppendVarint(recs, int64(len(r)))
		recs = append(recs, r...)
	}
	rb := kmsg.RecordBatch{
		Magic:           2,
		LastOffsetDelta: int32(n - 1),
		FirstTimestamp:  ts,
		MaxTimestamp:    ts,
		ProducerID:      -1,
		ProducerEpoch:   -1,
		FirstSequence:   -1,
		NumRecords:      int32(n),
		Records:         recs,
	}
	raw := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

// produce appends one batch to topic/partition.
func produce(t *testing.T, b *Broker, topic string, partition int32, n int, ts int64) {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 9, -1, 1000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = partition, testBatch(n, ts, "value")
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	r := call[*kmsg.ProduceResponse](t, b, req)
	wantCode(t, "produce", r.Topics[0].Partitions[0].ErrorCode, 0)
}

func partitionState(b *Broker, topic string, partition int32) (logStart, next int64, batches int) {
	p := b.lookupTopic(topic).partitionOf(partition)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logStart, p.next, len(p.log.(*memLog).batches)
}

func TestAdminAPIsAdvertised(t *testing.T) {
	b := newTestBroker(t)
	for _, tc := range []struct{ key, min, max int16 }{
		{8, 0, 9}, {9, 0, 9}, {10, 0, 6}, {11, 0, 9}, {12, 0, 4}, {13, 0, 5}, {14, 0, 5},
		{15, 0, 6}, {16, 0, 5}, {42, 0, 2}, {47, 0, 0},
		{21, 0, 2}, {23, 0, 4}, {33, 0, 2}, {37, 0, 3}, {44, 0, 1}, {60, 0, 2},
	} {
		min, max, ok := b.VersionRange(tc.key)
		if !ok || min != tc.min || max != tc.max {
			t.Errorf("key %d: %d-%d %v, want %d-%d", tc.key, min, max, ok, tc.min, tc.max)
		}
		if req := kmsg.RequestForKey(tc.key); req.MaxVersion() < tc.max {
			t.Errorf("key %d: kmsg knows up to v%d", tc.key, req.MaxVersion())
		}
	}
}

func TestCreatePartitions(t *testing.T) {
	b := newTestBroker(t)
	createTopic(t, b, "t", 2, nil)
	createTopic(t, b, "v", 1, nil)
	topic := func(name string, count int32, assign ...[]int32) kmsg.CreatePartitionsRequestTopic {
		rt := kmsg.NewCreatePartitionsRequestTopic()
		rt.Topic, rt.Count = name, count
		for _, a := range assign {
			rt.Assignment = append(rt.Assignment, kmsg.CreatePartitionsRequestTopicAssignment{Replicas: a})
		}
		return rt
	}
	tests := []struct {
		name         string
		topics       []kmsg.CreatePartitionsRequestTopic
		validateOnly bool
		want         []int16
		wantCount    int
	}{
		{"shrink", []kmsg.CreatePartitionsRequestTopic{topic("t", 1)}, false, []int16{kafka.ErrInvalidPartitions}, 2},
		{"same", []kmsg.CreatePartitionsRequestTopic{topic("t", 2)}, false, []int16{kafka.ErrInvalidPartitions}, 2},
		{"too many", []kmsg.CreatePartitionsRequestTopic{topic("t", DefaultMaxPartitionsPerTopic+1)}, false, []int16{kafka.ErrInvalidPartitions}, 2},
		{"unknown", []kmsg.CreatePartitionsRequestTopic{topic("nope", 3)}, false, []int16{kafka.ErrUnknownTopicOrPartition}, 2},
		{"bad assignment", []kmsg.CreatePartitionsRequestTopic{topic("t", 3, []int32{7})}, false, []int16{kafka.ErrInvalidReplicaAssignment}, 2},
		{"assignment count", []kmsg.CreatePartitionsRequestTopic{topic("t", 4, []int32{1})}, false, []int16{kafka.ErrInvalidReplicaAssignment}, 2},
		{"duplicate", []kmsg.CreatePartitionsRequestTopic{topic("t", 3), topic("t", 4)}, false, []int16{kafka.ErrInvalidRequest, kafka.ErrInvalidRequest}, 2},
		{"validate only", []kmsg.CreatePartitionsRequestTopic{topic("t", 3)}, true, []int16{0}, 2},
		{"grow", []kmsg.CreatePartitionsRequestTopic{topic("t", 3, []int32{1}), topic("v", 2)}, false, []int16{0, 0}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := kmsg.NewPtrCreatePartitionsRequest()
			req.Version, req.Topics, req.ValidateOnly = 3, tc.topics, tc.validateOnly
			r := call[*kmsg.CreatePartitionsResponse](t, b, req)
			for i, want := range tc.want {
				wantCode(t, tc.name, r.Topics[i].ErrorCode, want)
			}
			if n := len(b.lookupTopic("t").partitionList()); n != tc.wantCount {
				t.Fatalf("t has %d partitions, want %d", n, tc.wantCount)
			}
		})
	}
	// The new partition takes writes and shows in Metadata.
	produce(t, b, "t", 2, 3, 1)
	if _, next, _ := partitionState(b, "t", 2); next != 3 {
		t.Fatalf("new partition high watermark %d", next)
	}
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 12
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("t")}}
	if mr := call[*kmsg.MetadataResponse](t, b, md); len(mr.Topics[0].Partitions) != 3 {
		t.Fatalf("metadata: %d partitions", len(mr.Topics[0].Partitions))
	}
}

func TestDeleteRecords(t *testing.T) {
	b := newTestBroker(t)
	createTopic(t, b, "t", 1, nil)
	for i := 0; i < 3; i++ {
		produce(t, b, "t", 0, 5, 1) // offsets 0-4, 5-9, 10-14
	}
	del := func(topic string, p int32, off int64) kmsg.DeleteRecordsResponseTopicPartition {
		req := kmsg.NewPtrDeleteRecordsRequest()
		req.Version = 2
		req.Topics = []kmsg.DeleteRecordsRequestTopic{{Topic: topic, Partitions: []kmsg.DeleteRecordsRequestTopicPartition{{Partition: p, Offset: off}}}}
		return call[*kmsg.DeleteRecordsResponse](t, b, req).Topics[0].Partitions[0]
	}
	tests := []struct {
		name        string
		topic       string
		partition   int32
		offset      int64
		want        int16
		wantLow     int64
		wantBatches int
	}{
		{"unknown topic", "nope", 0, 1, kafka.ErrUnknownTopicOrPartition, -1, 3},
		{"unknown partition", "t", 3, 1, kafka.ErrUnknownTopicOrPartition, -1, 3},
		{"beyond high watermark", "t", 0, 16, kafka.ErrOffsetOutOfRange, 0, 3},
		{"negative", "t", 0, -2, kafka.ErrOffsetOutOfRange, 0, 3},
		{"mid batch keeps the batch", "t", 0, 7, 0, 7, 2},
		{"batch boundary", "t", 0, 10, 0, 10, 1},
		{"high watermark (-1)", "t", 0, -1, 0, 15, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := del(tc.topic, tc.partition, tc.offset)
			wantCode(t, tc.name, r.ErrorCode, tc.want)
			if r.LowWatermark != tc.wantLow {
				t.Fatalf("low watermark %d, want %d", r.LowWatermark, tc.wantLow)
			}
			if _, _, n := partitionState(b, "t", 0); n != tc.wantBatches {
				t.Fatalf("%d batches left, want %d", n, tc.wantBatches)
			}
		})
	}
	// Fetching below the new log start is out of range.
	f := kmsg.NewPtrFetchRequest()
	f.Version = 11
	f.Topics = []kmsg.FetchRequestTopic{{Topic: "t", Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0, FetchOffset: 3, PartitionMaxBytes: 1 << 20}}}}
	fr := call[*kmsg.FetchResponse](t, b, f)
	wantCode(t, "fetch below log start", fr.Topics[0].Partitions[0].ErrorCode, kafka.ErrOffsetOutOfRange)
}

func TestAlterConfigs(t *testing.T) {
	b := newTestBroker(t)
	createTopic(t, b, "t", 1, map[string]string{"retention.ms": "1000", "max.message.bytes": "5000"})
	res := func(typ kmsg.ConfigResourceType, name string, kv ...string) kmsg.AlterConfigsRequestResource {
		r := kmsg.NewAlterConfigsRequestResource()
		r.ResourceType, r.ResourceName = typ, name
		for i := 0; i+1 < len(kv); i += 2 {
			r.Configs = append(r.Configs, kmsg.AlterConfigsRequestResourceConfig{Name: kv[i], Value: kmsg.StringPtr(kv[i+1])})
		}
		return r
	}
	topic := kmsg.ConfigResourceTypeTopic
	tests := []struct {
		name    string
		res     []kmsg.AlterConfigsRequestResource
		valOnly bool
		want    []int16
		wantCfg map[string]string
	}{
		{"unknown topic", []kmsg.AlterConfigsRequestResource{res(topic, "nope", "retention.ms", "1")}, false, []int16{kafka.ErrUnknownTopicOrPartition}, nil},
		{"bad value", []kmsg.AlterConfigsRequestResource{res(topic, "t", "retention.ms", "soon")}, false, []int16{kafka.ErrInvalidConfig}, nil},
		{"unknown config", []kmsg.AlterConfigsRequestResource{res(topic, "t", "flush.ms", "1")}, false, []int16{kafka.ErrInvalidConfig}, nil},
		{"broker", []kmsg.AlterConfigsRequestResource{res(kmsg.ConfigResourceTypeBroker, "1", "x", "y")}, false, []int16{kafka.ErrInvalidRequest}, nil},
		{"duplicate", []kmsg.AlterConfigsRequestResource{res(topic, "t"), res(topic, "t")}, false, []int16{kafka.ErrInvalidRequest, kafka.ErrInvalidRequest}, nil},
		{"validate only", []kmsg.AlterConfigsRequestResource{res(topic, "t", "retention.bytes", "10")}, true, []int16{0}, nil},
		{"replace all", []kmsg.AlterConfigsRequestResource{res(topic, "t", "retention.bytes", "10")}, false, []int16{0}, map[string]string{"retention.bytes": "10"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := kmsg.NewPtrAlterConfigsRequest()
			req.Version, req.Resources, req.ValidateOnly = 2, tc.res, tc.valOnly
			r := call[*kmsg.AlterConfigsResponse](t, b, req)
			for i, want := range tc.want {
				wantCode(t, tc.name, r.Resources[i].ErrorCode, want)
			}
			want := tc.wantCfg
			if want == nil { // nothing changed
				want = map[string]string{"retention.ms": "1000", "max.message.bytes": "5000", "retention.bytes": "-1"}
			}
			for k, v := range want {
				if got := b.topicConfig(b.lookupTopic("t"), k); got != v {
					t.Fatalf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
	if got := b.topicConfig(b.lookupTopic("t"), "retention.ms"); got != "604800000" {
		t.Fatalf("retention.ms after replace = %q, want the default", got)
	}
}

func TestIncrementalAlterConfigs(t *testing.T) {
	b := newTestBroker(t)
	createTopic(t, b, "t", 1, map[string]string{"retention.ms": "1000"})
	op := func(name string, o kmsg.IncrementalAlterConfigOp, v *string) kmsg.IncrementalAlterConfigsRequestResourceConfig {
		return kmsg.IncrementalAlterConfigsRequestResourceConfig{Name: name, Op: o, Value: v}
	}
	s := kmsg.StringPtr
	tests := []struct {
		name string
		ops  []kmsg.IncrementalAlterConfigsRequestResourceConfig
		want int16
		cfg  map[string]string
	}{
		{"set", []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("retention.bytes", kmsg.IncrementalAlterConfigOpSet, s("100"))}, 0,
			map[string]string{"retention.ms": "1000", "retention.bytes": "100"}},
		{"invalid leaves all unchanged", []kmsg.IncrementalAlterConfigsRequestResourceConfig{
			op("retention.ms", kmsg.IncrementalAlterConfigOpSet, s("5")), op("retention.bytes", kmsg.IncrementalAlterConfigOpSet, s("-9"))}, kafka.ErrInvalidConfig,
			map[string]string{"retention.ms": "1000", "retention.bytes": "100"}},
		{"set without value", []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("retention.ms", kmsg.IncrementalAlterConfigOpSet, nil)}, kafka.ErrInvalidConfig, nil},
		{"append to a non-list", []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("retention.ms", kmsg.IncrementalAlterConfigOpAppend, s("1"))}, kafka.ErrInvalidConfig, nil},
		{"subtract delete policy", []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("cleanup.policy", kmsg.IncrementalAlterConfigOpSubtract, s("delete"))}, kafka.ErrInvalidConfig, nil},
		{"append compact", []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("cleanup.policy", kmsg.IncrementalAlterConfigOpAppend, s("compact"))}, kafka.ErrInvalidConfig, nil},
		{"same name twice", []kmsg.IncrementalAlterConfigsRequestResourceConfig{
			op("retention.ms", kmsg.IncrementalAlterConfigOpSet, s("5")), op("retention.ms", kmsg.IncrementalAlterConfigOpDelete, nil)}, kafka.ErrInvalidConfig, nil},
		{"delete", []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("retention.ms", kmsg.IncrementalAlterConfigOpDelete, nil)}, 0,
			map[string]string{"retention.ms": "604800000", "retention.bytes": "100"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := kmsg.NewPtrIncrementalAlterConfigsRequest()
			req.Version = 1
			rr := kmsg.NewIncrementalAlterConfigsRequestResource()
			rr.ResourceType, rr.ResourceName, rr.Configs = kmsg.ConfigResourceTypeTopic, "t", tc.ops
			req.Resources = append(req.Resources, rr)
			r := call[*kmsg.IncrementalAlterConfigsResponse](t, b, req)
			wantCode(t, tc.name, r.Resources[0].ErrorCode, tc.want)
			for k, v := range tc.cfg {
				if got := b.topicConfig(b.lookupTopic("t"), k); got != v {
					t.Fatalf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "nope"
	req.Resources = append(req.Resources, rr)
	wantCode(t, "unknown topic", call[*kmsg.IncrementalAlterConfigsResponse](t, b, req).Resources[0].ErrorCode, kafka.ErrUnknownTopicOrPartition)
}

func TestOffsetForLeaderEpoch(t *testing.T) {
	b := newTestBroker(t)
	createTopic(t, b, "t", 1, nil)
	produce(t, b, "t", 0, 4, 1)
	tests := []struct {
		name           string
		topic          string
		current, epoch int32
		want           int16
		wantEpoch      int32
		wantEnd        int64
	}{
		{"epoch 0", "t", -1, 0, 0, 0, 4},
		{"later epoch", "t", 0, 3, 0, 0, 4},
		{"undefined epoch", "t", -1, -1, 0, -1, -1},
		{"unknown topic", "nope", -1, 0, kafka.ErrUnknownTopicOrPartition, -1, -1},
		{"current epoch from the future", "t", 2, 0, kafka.ErrUnknownLeaderEpoch, -1, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := kmsg.NewPtrOffsetForLeaderEpochRequest()
			req.Version, req.ReplicaID = 4, -1
			req.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: tc.topic, Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{{Partition: 0, CurrentLeaderEpoch: tc.current, LeaderEpoch: tc.epoch}}}}
			p := call[*kmsg.OffsetForLeaderEpochResponse](t, b, req).Topics[0].Partitions[0]
			if p.ErrorCode != tc.want || p.LeaderEpoch != tc.wantEpoch || p.EndOffset != tc.wantEnd {
				t.Fatalf("%+v", p)
			}
		})
	}
}

func TestDescribeCluster(t *testing.T) {
	b := newTestBroker(t)
	req := kmsg.NewPtrDescribeClusterRequest()
	req.Version, req.EndpointType = 1, 1
	r := call[*kmsg.DescribeClusterResponse](t, b, req)
	if r.ErrorCode != 0 || r.ClusterID != "floodgate" || r.ControllerID != 1 || len(r.Brokers) != 1 || r.Brokers[0].Port != 9092 {
		t.Fatalf("%+v", r)
	}
	req.EndpointType = 7
	wantCode(t, "bad endpoint type", call[*kmsg.DescribeClusterResponse](t, b, req).ErrorCode, kafka.ErrInvalidRequest)
}
