package loop_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
)

// produceFrom produces n records one request at a time from a kgo client
// bound to the local IP src with client id "kgo" (the library's default).
func produceFrom(t *testing.T, srv *testserver.Server, src string, n int) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	cl := newClient(t, srv.KafkaAddr(), kgo.Dialer(d.DialContext), kgo.ClientID("kgo"),
		kgo.DefaultProduceTopic("q"), kgo.AllowAutoTopicCreation())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < n; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestQuotaKeyDefaultsToClientIDAndIP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		key           limits.QuotaKey
		wantThrottled bool // the second host's producer
	}{
		{"by default two hosts with the same client id have a bucket each", limits.Defaults().QuotaKey, false},
		{"keyed by client id alone they share one", limits.QuotaByClientID, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testserver.Start(t, withLimits(func(l *limits.Config) { l.ProduceRate, l.QuotaKey = 10, tt.key }))
			throttled := srv.Metrics.GetOrCreateCounter(`floodgate_requests_throttled_total{api="Produce",mode="delay"}`)
			produceFrom(t, srv, "127.0.0.2", 8) // within the burst of 10
			if throttled.Get() != 0 {
				t.Fatalf("the first host was throttled within its burst")
			}
			produceFrom(t, srv, "127.0.0.3", 8)
			if got := throttled.Get() > 0; got != tt.wantThrottled {
				t.Fatalf("second host throttled: %v, want %v (%d throttled)", got, tt.wantThrottled, throttled.Get())
			}
		})
	}
}

// TestChangingClientIDDoesNotEscapeTheQuota: one address sending a new
// client id with every request gets at most QuotaClientsPerIP clients'
// rate under the default keying; keyed by client id alone it escapes.
func TestChangingClientIDDoesNotEscapeTheQuota(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		key           limits.QuotaKey
		wantThrottled bool
	}{{limits.QuotaByClientIDAndIP, true}, {limits.QuotaByClientID, false}} {
		t.Run(fmt.Sprint("quota key ", tt.key), func(t *testing.T) {
			srv := testserver.Start(t, withLimits(func(l *limits.Config) { l.ProduceRate, l.QuotaKey = 1, tt.key }))
			c := dialFrom(t, "127.0.0.4", srv.KafkaAddr())
			req := kmsg.NewPtrProduceRequest()
			req.Acks, req.TimeoutMillis = 1, 1000
			const n = 40 // over 16 clients' burst of 1
			for i := 0; i < n; i++ {
				f := kmsg.NewRequestFormatter(kmsg.FormatterClientID(fmt.Sprint("rotating-", i)))
				if _, err := c.Write(f.AppendRequest(nil, req, int32(i))); err != nil {
					t.Fatal(err)
				}
			}
			for i := 0; i < n; i++ {
				readResponse(t, c, false)
			}
			throttled := srv.Metrics.GetOrCreateCounter(`floodgate_requests_throttled_total{api="Produce",mode="delay"}`).Get()
			if (throttled > 0) != tt.wantThrottled {
				t.Fatalf("%d of %d rotating-id requests throttled, want throttled=%v", throttled, n, tt.wantThrottled)
			}
			t.Logf("%d of %d requests with a new client id each throttled", throttled, n)
		})
	}
}

func TestByteRateQuotasThrottleLikeKafka(t *testing.T) {
	t.Parallel()
	const rate = 256 << 10
	const total = 1 << 20 // 16 records of 64 KiB
	value := make([]byte, 64<<10)
	_, _ = rand.Read(value) // kgo compresses: zeros would be a few bytes
	t.Run("produce", func(t *testing.T) {
		srv := testserver.Start(t, withLimits(func(l *limits.Config) { l.ProduceByteRate, l.ProduceRate = rate, 0 }))
		cl := newClient(t, srv.KafkaAddr(), kgo.DefaultProduceTopic("b"), kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(0))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		for i := 0; i < total/len(value); i++ {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		elapsed := time.Since(start)
		// 1 MiB at 256 KiB/s with a burst of 256 KiB: about 3 s.
		if elapsed < 2500*time.Millisecond {
			t.Fatalf("1 MiB produced in %v at %d B/s", elapsed, rate)
		}
		if srv.Metrics.GetOrCreateCounter(`floodgate_byte_rate_throttled_total{api="Produce"}`).Get() == 0 {
			t.Fatal("byte throttling not counted")
		}
		t.Logf("1 MiB produced in %v at 256 KiB/s", elapsed.Round(time.Millisecond))
	})
	t.Run("fetch", func(t *testing.T) {
		srv := testserver.Start(t, withLimits(func(l *limits.Config) { l.FetchByteRate, l.FetchRate = rate, 0 }))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		prod := newClient(t, srv.KafkaAddr(), kgo.DefaultProduceTopic("f"), kgo.AllowAutoTopicCreation())
		for i := 0; i < total/len(value); i++ {
			if err := prod.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		cons := newClient(t, srv.KafkaAddr(), kgo.ConsumeTopics("f"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchMaxBytes(128<<10), kgo.FetchMaxPartitionBytes(128<<10))
		start := time.Now()
		got := 0
		for got < total/len(value) {
			fs := cons.PollFetches(ctx)
			if err := fs.Err0(); err != nil {
				t.Fatal(err)
			}
			got += len(fs.Records())
		}
		elapsed := time.Since(start)
		if elapsed < 2500*time.Millisecond {
			t.Fatalf("1 MiB fetched in %v at %d B/s", elapsed, rate)
		}
		if srv.Metrics.GetOrCreateCounter(`floodgate_byte_rate_throttled_total{api="Fetch"}`).Get() == 0 {
			t.Fatal("byte throttling not counted")
		}
		t.Logf("1 MiB fetched in %v at 256 KiB/s", elapsed.Round(time.Millisecond))
	})
}
