package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate/floodgate/internal/testserver"
)

// consumeAll reads topic from the start until want records arrived.
func consumeAll(t *testing.T, addr, topic string, want int) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < want && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		cancel()
	}
	return got
}

// TestCompressedBatchesOfRealClientsPassValidation: produce validation
// inflates every compressed batch; the encodings franz-go and sarama
// write (gzip, snappy raw and xerial, lz4 frames, zstd) must all pass.
func TestCompressedBatchesOfRealClientsPassValidation(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	const n = 300
	value := func(i int) string {
		return fmt.Sprintf("record-%04d-%s", i, "padding-that-compresses-well-padding-that-compresses-well")
	}
	kgoCodecs := map[string]kgo.CompressionCodec{"gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression()}
	for name, codec := range kgoCodecs {
		t.Run("franz-go "+name, func(t *testing.T) {
			topic := "kgo-" + name
			cl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.ProducerBatchCompression(codec),
				kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(50*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			var recs []*kgo.Record
			for i := 0; i < n; i++ {
				recs = append(recs, &kgo.Record{Value: []byte(value(i))})
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			if got := consumeAll(t, srv.KafkaAddr(), topic, n); len(got) != n || got[n-1] != value(n-1) {
				t.Fatalf("consumed %d of %d records", len(got), n)
			}
		})
	}
	saramaCodecs := map[string]sarama.CompressionCodec{"gzip": sarama.CompressionGZIP, "snappy": sarama.CompressionSnappy,
		"lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD}
	for name, codec := range saramaCodecs {
		t.Run("sarama "+name, func(t *testing.T) {
			topic := "sarama-" + name
			cfg := sarama.NewConfig()
			cfg.Version = sarama.V2_8_0_0
			cfg.Producer.Return.Successes = true
			cfg.Producer.Compression = codec
			cfg.Producer.Flush.Messages = 50
			cfg.Producer.Flush.Frequency = 10 * time.Millisecond // without it sarama may never flush the last partial batch
			cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
			p, err := sarama.NewSyncProducer([]string{srv.KafkaAddr()}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			var msgs []*sarama.ProducerMessage
			for i := 0; i < n; i++ {
				msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(value(i))})
			}
			if err := p.SendMessages(msgs); err != nil {
				t.Fatalf("produce: %v", err)
			}
			if got := consumeAll(t, srv.KafkaAddr(), topic, n); len(got) != n {
				t.Fatalf("consumed %d of %d records", len(got), n)
			}
		})
	}
}
