package broker_test

import (
	"bufio"
	"crypto/tls"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/broker"
	"github.com/floodgate/floodgate/internal/testcerts"
	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/loop"
	"github.com/floodgate/floodgate/storage"
)

// filesOnly is a Kafka handler that answers Fetch from files but has no
// TLS-specific path (no ServeKafkaTLS): the loop must still never hand a
// TLS connection an answer whose records stay in the files.
type filesOnly struct{ b *broker.Broker }

func (f filesOnly) VersionRange(key int16) (int16, int16, bool) { return f.b.VersionRange(key) }
func (f filesOnly) ServeKafka(req kmsg.Request, clientID, addr string, respond func(kmsg.Response)) {
	f.b.ServeKafka(req, clientID, addr, respond)
}
func (f filesOnly) ServeKafkaFiles(req kmsg.Request, clientID, addr string, respond func(kmsg.Response)) {
	f.b.ServeKafkaFiles(req, clientID, addr, respond)
}

// TestZeroCopyNeverReachesATLSConnection: records on disk, large enough
// to be sent from the files to a plaintext consumer, reach a TLS client
// whole and in order through the record layer (no byte by sendfile, no
// section held), behind the broker itself and behind a handler that
// serves files but has no TLS path of its own.
func TestZeroCopyNeverReachesATLSConnection(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		wrap func(*broker.Broker) loop.KafkaHandler
	}{
		{"broker", nil},
		{"files-only handler", func(b *broker.Broker) loop.KafkaHandler { return filesOnly{b} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			certs := testcerts.New(t)
			opts := []testserver.Option{testserver.WithDataDir(t.TempDir(), storage.FsyncNever),
				testserver.WithBroker(func(c *broker.Config) { c.MinSegmentBytes = 1024 }),
				testserver.WithTLS(&tls.Config{Certificates: []tls.Certificate{certs.Server}})}
			if tt.wrap != nil {
				opts = append(opts, testserver.WithKafkaHandler(tt.wrap))
			}
			srv := testserver.Start(t, opts...)
			const topic, count = "secret", 20
			createTopic(t, kgoClient(t, srv), topic, 1, 8<<20)
			produceRange(t, srv, topic, []int32{0}, 0, count, kgo.NoCompression())
			// A hand-driven TLS connection, so the handler's Metadata
			// (which may name the plaintext listener) plays no part.
			nc, err := tls.DialWithDialer(smallWindowDialer(), "tcp", srv.KafkaTLSAddr(), certs.ClientConfig(false))
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			rc := &rawConn{t: t, nc: nc, br: bufio.NewReaderSize(nc, 1024)}
			got := int64(0)
			for got < count {
				req := fetchReq(topic, 1<<20, map[int32]int64{0: got})
				rc.send(req)
				_, resp := rc.read(req)
				n := checkRecords(t, &resp.(*kmsg.FetchResponse).Topics[0].Partitions[0], got)
				if n == 0 {
					t.Fatalf("TLS fetch from offset %d: no records", got)
				}
				got += int64(n)
			}
			if n := srv.Metrics.GetOrCreateCounter("floodgate_sendfile_bytes_total").Get(); n != 0 {
				t.Fatalf("%d bytes went by sendfile with only a TLS consumer", n)
			}
			if n := gauge(t, srv, "floodgate_sendfile_sections_held"); n != 0 {
				t.Fatalf("%v sections held after the TLS consumer read everything", n)
			}
		})
	}
}
