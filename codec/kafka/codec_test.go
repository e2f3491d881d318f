package kafka

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// frame encodes req as a client would, returning the whole frame.
func frame(t testing.TB, req kmsg.Request, clientID string) []byte {
	t.Helper()
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID(clientID))
	return f.AppendRequest(nil, req, 42)
}

func TestParseHeader(t *testing.T) {
	meta := kmsg.NewPtrMetadataRequest()
	meta.SetVersion(12)
	flex := frame(t, meta, "flex-client")
	meta0 := kmsg.NewPtrMetadataRequest()
	meta0.SetVersion(1)
	old := frame(t, meta0, "old-client")
	av := kmsg.NewPtrApiVersionsRequest()
	av.SetVersion(3)
	apiv := frame(t, av, "av")

	tests := []struct {
		name     string
		in       []byte
		trunc    int // bytes of the frame given (0 = all)
		wantErr  error
		key, ver int16
		client   string
		flexible bool
	}{
		{name: "flexible metadata header with tags", in: flex, key: 3, ver: 12, client: "flex-client", flexible: true},
		{name: "non-flexible header", in: old, key: 3, ver: 1, client: "old-client"},
		{name: "api versions v3 request header is flexible", in: apiv, key: 18, ver: 3, client: "av", flexible: true},
		{name: "short header asks for more", in: flex, trunc: 9, wantErr: ErrShortHeader},
		{name: "client id cut asks for more", in: old, trunc: 14, wantErr: ErrShortHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.in[LengthSize:]
			if tt.trunc > 0 {
				b = b[:tt.trunc]
			}
			var h Header
			err := ParseHeader(b, FrameLength(tt.in), &h)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.APIKey != tt.key || h.APIVersion != tt.ver || string(h.ClientID) != tt.client || h.Flexible != tt.flexible || h.CorrelationID != 42 {
				t.Fatalf("header = %+v", h)
			}
			req, err := DecodeRequest(&h, b[h.Size:])
			if err != nil {
				t.Fatalf("decode body after header of %d bytes: %v", h.Size, err)
			}
			if req.Key() != tt.key {
				t.Fatalf("decoded key %d", req.Key())
			}
		})
	}
}

func TestParseHeaderRejects(t *testing.T) {
	tests := []struct {
		name string
		len  int32
		body []byte
		want error
	}{
		{"negative length closes", -5, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, ErrNegativeLength},
		{"frame shorter than a header", 6, []byte{0, 0, 0, 0, 0, 0}, ErrMalformedHeader},
		{"negative api key", 20, []byte{0xff, 0xff, 0, 0, 0, 0, 0, 1, 0, 0}, ErrMalformedHeader},
		{"client id longer than frame", 12, []byte{0, 3, 0, 1, 0, 0, 0, 1, 0, 100, 'a', 'b'}, ErrMalformedHeader},
		{"client id length below -1", 12, []byte{0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xf0, 'a', 'b'}, ErrMalformedHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Header
			if err := ParseHeader(tt.body, tt.len, &h); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestAppendResponseRoundTrip(t *testing.T) {
	for _, v := range []int16{0, 3, 9} {
		h := Header{APIKey: 0, APIVersion: v, CorrelationID: 7, Flexible: IsFlexibleRequest(0, v)}
		resp := kmsg.NewPtrProduceResponse()
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic = "t"
		rp := kmsg.NewProduceResponseTopicPartition()
		rp.ErrorCode = ErrMessageTooLarge
		rt.Partitions = append(rt.Partitions, rp)
		resp.Topics = append(resp.Topics, rt)
		out := AppendResponse(nil, &h, resp)
		if int(FrameLength(out)) != len(out)-4 {
			t.Fatalf("length prefix %d for %d bytes", FrameLength(out), len(out))
		}
		if binary.BigEndian.Uint32(out[4:]) != 7 {
			t.Fatal("correlation id lost")
		}
		body := out[8:]
		if h.Flexible {
			body = body[1:]
		}
		got := kmsg.NewPtrProduceResponse()
		got.SetVersion(v)
		if err := got.ReadFrom(body); err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		if got.Topics[0].Partitions[0].ErrorCode != ErrMessageTooLarge {
			t.Fatalf("v%d: error code lost", v)
		}
	}
}

func produceRequest(version int16, topics map[string][]int32, recordBytes int) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(version)
	req.Acks = -1
	req.TimeoutMillis = 1000
	txn := "txn"
	req.TransactionID = &txn
	for _, name := range []string{"alpha", "beta", "gamma"} {
		parts, ok := topics[name]
		if !ok {
			continue
		}
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = name
		for _, p := range parts {
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition = p
			rp.Records = bytes.Repeat([]byte{byte(p)}, recordBytes)
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	return req
}

func TestProduceSkimmerFindsEveryPartition(t *testing.T) {
	topics := map[string][]int32{"alpha": {0, 1, 2}, "beta": {7}, "gamma": {3, 4}}
	rng := rand.New(rand.NewSource(1))
	for v := int16(3); v <= 12; v++ {
		for _, chunk := range []int{1, 7, 4096, 1 << 20} {
			req := produceRequest(v, topics, 5000)
			fr := frame(t, req, "skim")
			var h Header
			if err := ParseHeader(fr[4:], FrameLength(fr), &h); err != nil {
				t.Fatal(err)
			}
			body := fr[4+h.Size:]
			var s ProduceSkimmer
			s.Reset(v, 1000)
			for len(body) > 0 {
				n := chunk
				if chunk == 7 {
					n = 1 + rng.Intn(64)
				}
				if n > len(body) {
					n = len(body)
				}
				s.Feed(body[:n])
				body = body[n:]
			}
			if s.Acks() != -1 {
				t.Fatalf("v%d: acks %d", v, s.Acks())
			}
			resp := s.Response(ErrMessageTooLarge)
			got := map[string][]int32{}
			for _, rt := range resp.Topics {
				for _, rp := range rt.Partitions {
					if rp.ErrorCode != ErrMessageTooLarge {
						t.Fatalf("v%d: code %d", v, rp.ErrorCode)
					}
					got[rt.Topic] = append(got[rt.Topic], rp.Partition)
				}
			}
			for name, parts := range topics {
				if len(got[name]) != len(parts) {
					t.Fatalf("v%d chunk %d: topic %s partitions %v, want %v", v, chunk, name, got[name], parts)
				}
			}
		}
	}
}

// FuzzParseHeader checks that no input panics the header parser and that a
// header it accepts is consistent with the frame it came from.
func FuzzParseHeader(f *testing.F) {
	meta := kmsg.NewPtrMetadataRequest()
	meta.SetVersion(12)
	f.Add(frame(f, meta, "c"))
	f.Add(frame(f, produceRequest(9, map[string][]int32{"alpha": {1}}, 10), "p"))
	f.Add([]byte{0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 4 {
			return
		}
		var h Header
		err := ParseHeader(in[4:], FrameLength(in), &h)
		if err != nil {
			return
		}
		if h.Size > int(h.Length) || h.Size > len(in)-4 {
			t.Fatalf("header size %d beyond frame %d / input %d", h.Size, h.Length, len(in)-4)
		}
		end := 4 + int(h.Length)
		if end > len(in) {
			end = len(in)
		}
		_, _ = DecodeRequest(&h, in[4+h.Size:end])
	})
}

// FuzzProduceSkimmer checks the skimmer never panics or grows without bound.
func FuzzProduceSkimmer(f *testing.F) {
	for _, v := range []int16{3, 9, 12} {
		fr := frame(f, produceRequest(v, map[string][]int32{"alpha": {1, 2}}, 100), "p")
		f.Add(v, fr[4+2+2+4+2+1:])
	}
	f.Fuzz(func(t *testing.T, version int16, body []byte) {
		var s ProduceSkimmer
		s.Reset(version, 1000)
		s.Feed(body)
		if cap(s.field) > 1<<16 {
			t.Fatalf("field buffer grew to %d", cap(s.field))
		}
		_ = s.Response(ErrMessageTooLarge)
	})
}

func BenchmarkParseHeader(b *testing.B) {
	req := produceRequest(9, map[string][]int32{"alpha": {0}}, 100)
	fr := frame(b, req, "bench-client")
	var h Header
	b.ReportAllocs()
	for b.Loop() {
		if err := ParseHeader(fr[4:], FrameLength(fr), &h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendResponse(b *testing.B) {
	h := Header{APIKey: 0, APIVersion: 9, CorrelationID: 1, Flexible: true}
	resp := kmsg.NewPtrProduceResponse()
	rt := kmsg.NewProduceResponseTopic()
	rt.Topic = "bench"
	rt.Partitions = append(rt.Partitions, kmsg.NewProduceResponseTopicPartition())
	resp.Topics = append(resp.Topics, rt)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendResponse(buf[:0], &h, resp)
	}
}
