package main

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestPrintListenAddressesReportsTheBoundPortsAtWarnLevel starts the binary
// on 127.0.0.1:0 with --log-level warn (so the "floodgate listening" log
// line is not written): the printed line still gives both ports, the HTTP
// one answers /health, and Metadata advertises exactly the Kafka port the
// kernel gave the listener (serve derives it from the listener, not from
// the ":0" of the flag).
func TestPrintListenAddressesReportsTheBoundPortsAtWarnLevel(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	p := startFloodgate(t, 4096, "--in-memory", "--log-level", "warn") // startFloodgate waits for /health on p.http
	_, port, err := net.SplitHostPort(p.kafka)
	if err != nil || port == "0" {
		t.Fatalf("printed Kafka address %q is not a bound port (%v)", p.kafka, err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.kafka))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	if len(md.Brokers) != 1 {
		t.Fatalf("brokers %+v, want one", md.Brokers)
	}
	if got := net.JoinHostPort(md.Brokers[0].Host, strconv.Itoa(int(md.Brokers[0].Port))); got != p.kafka {
		t.Fatalf("Metadata advertises %s, the listener is on %s", got, p.kafka)
	}
}
