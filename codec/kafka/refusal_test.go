package kafka_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/broker"
	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
)

// fill gives every array of a request one element and every string a
// value, so that each per-item slot of the response has an item to echo.
func fill(v reflect.Value, depth int) {
	if depth > 6 {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			if v.Type().Elem().Kind() == reflect.String {
				v.Set(reflect.ValueOf(kmsg.StringPtr("x")))
			}
			return
		}
		fill(v.Elem(), depth+1)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).Name != "UnknownTags" && v.Field(i).CanSet() {
				fill(v.Field(i), depth+1)
			}
		}
	case reflect.Slice:
		switch v.Type().Elem().Kind() {
		case reflect.Struct, reflect.String, reflect.Int32:
			s := reflect.MakeSlice(v.Type(), 1, 1)
			fill(s.Index(0), depth+1)
			v.Set(s)
		}
	case reflect.String:
		v.SetString("x")
	}
}

// errorCodes returns every ErrorCode in a response decoded from its
// encoding at its version (fields of other versions do not count).
func errorCodes(t *testing.T, resp kmsg.Response) []int16 {
	t.Helper()
	back := kmsg.ResponseForKey(resp.Key())
	back.SetVersion(resp.GetVersion())
	if err := back.ReadFrom(resp.AppendTo(nil)); err != nil {
		t.Fatalf("%s v%d: the refusal does not decode: %v", kmsg.NameForKey(resp.Key()), resp.GetVersion(), err)
	}
	var out []int16
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				if v.Type().Field(i).Name == "ErrorCode" {
					out = append(out, int16(v.Field(i).Int()))
				} else {
					walk(v.Field(i))
				}
			}
		case reflect.Slice:
			for i := 0; i < v.Len(); i++ {
				walk(v.Index(i))
			}
		}
	}
	walk(reflect.ValueOf(back))
	return out
}

// decoded builds a filled request of key and version as the server sees
// it: encoded by a client, decoded by floodgate.
func decoded(t *testing.T, key, version int16) kmsg.Request {
	t.Helper()
	req := kmsg.RequestForKey(key)
	req.SetVersion(version)
	fill(reflect.ValueOf(req), 0)
	fr := kmsg.NewRequestFormatter(kmsg.FormatterClientID("c")).AppendRequest(nil, req, 1)
	var h kafka.Header
	if err := kafka.ParseHeader(fr[4:], kafka.FrameLength(fr), &h); err != nil {
		t.Fatal(err)
	}
	got, err := kafka.DecodeRequest(&h, fr[4+h.Size:])
	if err != nil {
		t.Fatalf("%s v%d: %v", kmsg.NameForKey(key), version, err)
	}
	return got
}

// TestEveryAPIRefusalCarriesAnError: a refusal (memory, throttling,
// limits) of any API floodgate serves, at any version, says the error
// somewhere the client reads it. Metadata and OffsetFetch v8+ answered
// refusals with an empty success: 0 brokers and no topics, no offsets.
func TestEveryAPIRefusalCarriesAnError(t *testing.T) {
	b := broker.New(broker.Config{Logger: slog.New(slog.DiscardHandler)})
	defer b.Close()
	const code = kafka.ErrRequestTimedOut
	served := 0
	for key := int16(0); key <= 100; key++ {
		minV, maxV, ok := b.VersionRange(key)
		if !ok {
			continue
		}
		for v := minV; v <= maxV; v++ {
			served++
			req := decoded(t, key, v)
			resp, ok := kafka.RefusalResponse(req, code)
			if !ok {
				t.Errorf("%s v%d: refusal cannot carry the error", kmsg.NameForKey(key), v)
				continue
			}
			found := false
			for _, c := range errorCodes(t, resp) {
				if c != code && c != kafka.ErrNone {
					t.Errorf("%s v%d: refusal carries %d as well", kmsg.NameForKey(key), v, c)
				}
				found = found || c == code
			}
			if !found {
				t.Errorf("%s v%d: the encoded refusal carries no error", kmsg.NameForKey(key), v)
			}
		}
	}
	if served < 100 {
		t.Fatalf("only %d key/versions checked", served)
	}
}

// TestRefusalsThatCannotCarryAnErrorAskToClose: a request whose answer has
// no slot for an error at its version gets ok=false (the loop closes the
// connection, which clients retry) instead of an empty success.
func TestRefusalsThatCannotCarryAnErrorAskToClose(t *testing.T) {
	allTopics := func(v int16) kmsg.Request {
		r := kmsg.NewPtrMetadataRequest()
		r.SetVersion(v)
		if v == 0 {
			r.Topics = []kmsg.MetadataRequestTopic{} // v0: empty means all
		}
		return r
	}
	for v := int16(0); v <= 12; v++ {
		if _, ok := kafka.RefusalResponse(allTopics(v), kafka.ErrRequestTimedOut); ok {
			t.Errorf("Metadata v%d for all topics: refusal claims to carry an error", v)
		}
	}
	// Refusals of undecoded frames (oversize, memory) use the top-level
	// error only where the version encodes it.
	cases := []struct {
		key, version int16
		want         bool
	}{
		{3, 0, false}, {3, 12, false}, // Metadata: ErrorCode is v13+
		{9, 1, false}, {9, 2, true}, {9, 7, true}, {9, 8, false}, // OffsetFetch: v2-v7
		{1, 4, false}, {1, 7, true}, // Fetch: v7+
		{11, 0, true}, {12, 4, true}, {18, 3, true}, {22, 5, true},
	}
	for _, c := range cases {
		resp, ok := kafka.TopLevelErrorResponse(c.key, c.version, kafka.ErrMessageTooLarge)
		if ok != c.want {
			t.Errorf("%s v%d: top-level refusal ok=%v, want %v", kmsg.NameForKey(c.key), c.version, ok, c.want)
		}
		if ok {
			codes := errorCodes(t, resp)
			if len(codes) == 0 || codes[0] != kafka.ErrMessageTooLarge {
				t.Errorf("%s v%d: top-level refusal carries %v", kmsg.NameForKey(c.key), c.version, codes)
			}
		}
	}
}

// TestNonProduceSizeLimitOnTheServer: over --max-non-produce-request-size a
// JoinGroup (top-level error) is answered MESSAGE_TOO_LARGE and a Metadata
// (no error slot before v13) closes the connection, before kmsg decodes
// either; the counter names the limit.
func TestNonProduceSizeLimitOnTheServer(t *testing.T) {
	srv := testserver.Start(t, testserver.WithLimits(func(l *limits.Config) { l.MaxNonProduceRequestSize = 64 << 10 }))
	join := kmsg.NewPtrJoinGroupRequest()
	join.SetVersion(5)
	join.Group, join.ProtocolType, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = "g", "consumer", 30000, 30000
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name, p.Metadata = "range", make([]byte, 100<<10)
	join.Protocols = append(join.Protocols, p)
	meta := kmsg.NewPtrMetadataRequest()
	meta.SetVersion(9)
	for i := 0; i < 5000; i++ {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(fmt.Sprintf("topic-%05d-with-a-longer-name", i))
		meta.Topics = append(meta.Topics, rt)
	}
	for _, c := range []struct {
		req       kmsg.Request
		wantClose bool
	}{{join, false}, {meta, true}} {
		conn, err := net.Dial("tcp", srv.KafkaAddr())
		if err != nil {
			t.Fatal(err)
		}
		fr := kmsg.NewRequestFormatter(kmsg.FormatterClientID("c")).AppendRequest(nil, c.req, 5)
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(fr); err != nil {
			t.Fatal(err)
		}
		var l [4]byte
		_, err = io.ReadFull(conn, l[:])
		name := kmsg.NameForKey(c.req.Key())
		if c.wantClose {
			if err == nil {
				t.Fatalf("%s over the limit: answered instead of closing", name)
			}
		} else {
			if err != nil {
				t.Fatalf("%s over the limit: %v", name, err)
			}
			resp := make([]byte, 4+binary.BigEndian.Uint32(l[:]))
			copy(resp, l[:])
			if _, err := io.ReadFull(conn, resp[4:]); err != nil {
				t.Fatal(err)
			}
			h := kafka.Header{APIKey: c.req.Key(), APIVersion: c.req.GetVersion(), Flexible: c.req.IsFlexible()}
			d, err := kafka.DecodeResponse(&h, resp)
			if err != nil {
				t.Fatal(err)
			}
			if code := d.(*kmsg.JoinGroupResponse).ErrorCode; code != kafka.ErrMessageTooLarge {
				t.Fatalf("%s over the limit answered %d, want MESSAGE_TOO_LARGE", name, code)
			}
		}
		conn.Close()
	}
	if n := srv.Metrics.GetOrCreateCounter(`floodgate_requests_refused_total{limit="max-non-produce-request-size"}`).Get(); n != 2 {
		t.Fatalf("refusals counted: %d, want 2", n)
	}
}

// A Fetch refusal must carry empty records, not null, in every partition,
// as Kafka's answers do: sarama below Kafka 2.7 (Fetch v4-v11) fails to
// decode a null records field and drops the connection.
func TestFetchRefusalRecordsAreEmptyNotNull(t *testing.T) {
	for _, v := range []int16{4, 7, 11, 12} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			req := kmsg.NewPtrFetchRequest()
			req.SetVersion(v)
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = "t"
			for p := int32(0); p < 2; p++ {
				rp := kmsg.NewFetchRequestTopicPartition()
				rp.Partition = p
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = append(req.Topics, rt)
			resp := kafka.ErrorResponse(req, kafka.ErrUnknownServerError)
			back := kmsg.NewPtrFetchResponse()
			back.SetVersion(v)
			if err := back.ReadFrom(resp.AppendTo(nil)); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if len(back.Topics) != 1 || len(back.Topics[0].Partitions) != 2 {
				t.Fatalf("answer has %d topics, want 1 with 2 partitions", len(back.Topics))
			}
			for _, p := range back.Topics[0].Partitions {
				if p.RecordBatches == nil {
					t.Errorf("partition %d: records encoded as null, want empty", p.Partition)
				}
				if p.ErrorCode != kafka.ErrUnknownServerError {
					t.Errorf("partition %d: error %d, want %d", p.Partition, p.ErrorCode, kafka.ErrUnknownServerError)
				}
			}
		})
	}
}
