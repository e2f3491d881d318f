package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/proxyproto"
	"github.com/floodgate/floodgate/gateway"
	"github.com/floodgate/floodgate/internal/loopback"
	"github.com/floodgate/floodgate/limits"
)

// TestGatewaySplicePipesDefaultIsTheGatewaysPool keeps the flag's default
// and the gateway's default pool equal.
func TestGatewaySplicePipesDefaultIsTheGatewaysPool(t *testing.T) {
	if got := limits.Defaults().GatewaySplicePipes; got != gateway.DefaultSplicePipes {
		t.Fatalf("--gateway-splice-pipes defaults to %d, the gateway's pool to %d", got, gateway.DefaultSplicePipes)
	}
}

// bigFetchFrame is a Fetch v11 frame (length prefix included) of partition
// 0 of topic "big" from offset 0, of at most 900 KiB: an answer relayed
// through a pipe when one is free.
func bigFetchFrame(corr int32) []byte {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(11)
	req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.SessionEpoch = -1, 0, 1, 900<<10, -1
	p := kmsg.NewFetchRequestTopicPartition()
	p.FetchOffset, p.LogStartOffset, p.PartitionMaxBytes, p.CurrentLeaderEpoch = 0, -1, 900<<10, -1
	tp := kmsg.NewFetchRequestTopic()
	tp.Topic, tp.Partitions = "big", []kmsg.FetchRequestTopicPartition{p}
	req.Topics = []kmsg.FetchRequestTopic{tp}
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID("pipes-test")).AppendRequest(nil, req, corr)
}

// proxiedFetches connects to addr as client ip (a PROXY v1 header) with a
// 4 KiB receive window, sends n big Fetches and reads nothing.
func proxiedFetches(t *testing.T, addr, ip string, n int) net.Conn {
	t.Helper()
	d := net.Dialer{Control: loopback.ReceiveBuffer(4096)}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	out := proxyproto.AppendV1(nil, netip.AddrPortFrom(netip.MustParseAddr(ip), 40000), netip.MustParseAddrPort("127.0.0.1:9092"))
	for i := 0; i < n; i++ {
		out = append(out, bigFetchFrame(int32(i))...)
	}
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestGatewaySplicePipesFlagSizesThePool runs the gateway binary in front
// of kfake behind a PROXY balancer. With --gateway-splice-pipes=2, three
// client IPs whose connections each pipeline eight Fetches of 900 KiB
// answers and read none (the kernel's socket buffers take the first few)
// hold 2 pipes, not 3 (the default pool would have
// made a third): the third IP's answers are read into memory,
// reason="no_pipe". With --gateway-splice-pipes=0 the relay is off: a
// client reading its 900 KiB answer gets it whole, and no pipe is made.
func TestGatewaySplicePipesFlagSizesThePool(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "big"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.DefaultProduceTopic("big"),
		kgo.ProducerBatchMaxBytes(64<<10), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recs := make([]*kgo.Record, 60) // 1.2 MB: a Fetch of 900 KiB is answered with about that
	for i := range recs {
		recs[i] = &kgo.Record{Value: bytes.Repeat([]byte{byte(i)}, 20<<10)}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce to kfake: %v", err)
	}
	cl.Close()

	start := func(t *testing.T, pipes string) *process {
		gp, err := loopback.FreePortRange(4)
		if err != nil {
			t.Fatal(err)
		}
		p := startFloodgate(t, 4096, "--in-memory", "--upstream-brokers", cluster.ListenAddrs()[0],
			"--gateway-listen-ports", fmt.Sprintf("%d-%d", gp, gp+3), "--gateway-advertised-host", "127.0.0.1",
			"--proxy-protocol", "kafka", "--proxy-protocol-from", "127.0.0.1/32", "--gateway-splice-pipes", pipes)
		waitReady(t, p, 200, 10*time.Second)
		return p
	}
	decided := func(t *testing.T, p *process) float64 {
		n := metricValue(t, p.http, "floodgate_gateway_fetch_spliced_total")
		return n + metricValue(t, p.http, "floodgate_gateway_fetch_buffered_total{")
	}

	t.Run("a pool of 2", func(t *testing.T) {
		p := start(t, "2")
		for _, ip := range []string{"203.0.113.1", "203.0.113.2", "203.0.113.3"} {
			proxiedFetches(t, p.kafka, ip, 8)
		}
		waitUntil(t, 15*time.Second, "24 answers found a pipe or were read into memory", func() bool { return decided(t, p) >= 24 })
		open := metricValue(t, p.http, "floodgate_gateway_pipes_open")
		inUse := metricValue(t, p.http, "floodgate_gateway_pipes_in_use")
		spliced := metricValue(t, p.http, "floodgate_gateway_fetch_spliced_total")
		noPipe := metricValue(t, p.http, `floodgate_gateway_fetch_buffered_total{reason="no_pipe"}`)
		t.Logf("three stuck IPs: %.0f pipes open, %.0f in use; %.0f answers spliced, %.0f read into memory for want of a pipe", open, inUse, spliced, noPipe)
		if open != 2 || inUse != 2 {
			t.Errorf("%.0f pipes open and %.0f in use, want the pool of 2 full", open, inUse)
		}
		if spliced < 2 || noPipe < 1 {
			t.Errorf(`want 2 answers spliced and at least one reason="no_pipe"; got %.0f and %.0f`, spliced, noPipe)
		}
		// The refusals are logged, once a second at most.
		if n := strings.Count(p.stderr.String(), "every splice pipe is in use"); n < 1 || n > 4 {
			t.Errorf("%d WARN lines for %.0f answers without a pipe, want 1 to 4 (rate-limited)", n, noPipe)
		}
	})

	t.Run("0 turns the relay off", func(t *testing.T) {
		p := start(t, "0")
		c := proxiedFetches(t, p.kafka, "203.0.113.1", 1)
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		var head [8]byte
		if _, err := io.ReadFull(c, head[:]); err != nil {
			t.Fatalf("read the answer: %v", err)
		}
		n := binary.BigEndian.Uint32(head[:4])
		if _, err := io.CopyN(io.Discard, c, int64(n-4)); err != nil {
			t.Fatalf("read the answer's %d bytes: %v", n, err)
		}
		if n < 800<<10 {
			t.Fatalf("an answer of %d bytes, want about 900 KiB", n)
		}
		spliced := metricValue(t, p.http, "floodgate_gateway_fetch_spliced_total")
		open := metricValue(t, p.http, "floodgate_gateway_pipes_open")
		t.Logf("an answer of %d bytes read whole; %.0f spliced, %.0f pipes open", n, spliced, open)
		if spliced != 0 || open != 0 {
			t.Errorf("with --gateway-splice-pipes=0, %.0f answers went through %.0f pipes", spliced, open)
		}
	})
}

// TestGatewaySplicePipeDescriptorsComeOffMaxConnections: under ulimit -n
// 512, --max-connections is clamped to what is left after 128 reserved, the
// HTTP reserve of 16, and two descriptors per pipe of the gateway's pool as
// --gateway-splice-pipes sizes it (as the system's pipe limits cut it):
// none with 0, 32 with 16. Before, 2 x 64 were kept aside whatever the
// pool, so a larger pool would have taken client descriptors unseen.
func TestGatewaySplicePipeDescriptorsComeOffMaxConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	for _, tc := range []struct {
		pipes string
		fds   int
	}{
		{"0", 0},
		{"16", gateway.SplicePipeFDs(16, 0)},
		{"4096", gateway.SplicePipeFDs(4096, 0)},
	} {
		t.Run("pipes="+tc.pipes, func(t *testing.T) {
			gp, err := loopback.FreePortRange(4)
			if err != nil {
				t.Fatal(err)
			}
			up, err := loopback.FreePortRange(1)
			if err != nil {
				t.Fatal(err)
			}
			p := startFloodgate(t, 512, "--in-memory", "--max-connections", "5000",
				"--upstream-brokers", fmt.Sprintf("127.0.0.1:%d", up), // down: the gateway starts anyway
				"--gateway-listen-ports", fmt.Sprintf("%d-%d", gp, gp+3), "--gateway-splice-pipes", tc.pipes)
			want := 512 - 128 - 16 - tc.fds
			got := metricValue(t, p.http, "floodgate_max_connections")
			t.Logf("--gateway-splice-pipes=%s: %d descriptors for pipes, --max-connections %.0f", tc.pipes, tc.fds, got)
			if got != float64(want) {
				t.Fatalf("floodgate_max_connections = %.0f, want %d", got, want)
			}
			if out := p.stderr.String(); !strings.Contains(out, fmt.Sprintf("gateway_splice_pipe_fds=%d", tc.fds)) {
				t.Fatalf("the clamp warning does not name the pipes' %d descriptors:\n%s", tc.fds, out)
			}
		})
	}
}
