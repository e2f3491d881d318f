package bench_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate/floodgate/bench"
	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
)

// The smoke tests run each tool briefly against a real floodgate; they
// check that the tools work, not how fast anything is.

func TestSmokeHTTP(t *testing.T) {
	srv := testserver.Start(t)
	r, err := bench.RunHTTP(context.Background(), bench.HTTPConfig{URL: "http://" + srv.HTTPAddr() + "/health",
		Connections: 2, Rate: 200, Duration: 300 * time.Millisecond, Pipeline: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status[200] < 40 || r.ErrorCount() != 0 {
		t.Fatalf("status %v errors %v unsent %d", r.Status, r.Errors, r.Unsent)
	}
	if r.Latency.P99MS <= 0 {
		t.Errorf("no latency: %+v", r.Latency)
	}
}

func TestSmokeKafka(t *testing.T) {
	srv := testserver.Start(t)
	for _, mode := range []string{"produce", "consume", "roundtrip"} {
		t.Run(mode, func(t *testing.T) {
			r, err := bench.RunKafka(context.Background(), bench.KafkaConfig{Mode: mode, Brokers: []string{srv.KafkaAddr()},
				Clients: 2, RecordSize: 64, Records: 500, Acks: 1, Compression: "lz4"})
			if err != nil {
				t.Fatal(err)
			}
			if r.Records < 500 || r.Errors != 0 || r.RecordsPerSec <= 0 {
				t.Fatalf("%+v", r)
			}
			if mode != "consume" && r.Latency.Count == 0 {
				t.Errorf("no latency recorded: %+v", r.Latency)
			}
			// A roundtrip whose records all arrived before the producer's
			// count was known used to wait out its 30 s timeout and count
			// it in the run (a third of the runs here).
			if r.DurationS >= 20 {
				t.Errorf("%s of 500 records took %.1f s", mode, r.DurationS)
			}
		})
	}
}

// TestSmokeKafkaDeleteTopic checks --delete-topic: the run's topic exists
// after a run without it and is gone after a run with it.
func TestSmokeKafkaDeleteTopic(t *testing.T) {
	srv := testserver.Start(t)
	for _, del := range []bool{false, true} {
		topic := fmt.Sprintf("smoke-delete-%t", del)
		_, err := bench.RunKafka(context.Background(), bench.KafkaConfig{Mode: "produce", Brokers: []string{srv.KafkaAddr()},
			Clients: 2, RecordSize: 64, Records: 100, Acks: 1, Topic: topic, DeleteTopic: del})
		if err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		details, err := kadm.NewClient(cl).ListTopics(ctx, topic)
		cancel()
		cl.Close()
		if err != nil {
			t.Fatal(err)
		}
		if exists := details.Has(topic); exists == del {
			t.Errorf("delete-topic %t: topic %s exists afterwards: %t", del, topic, exists)
		}
	}
}

func TestSmokeConns(t *testing.T) {
	srv := testserver.Start(t)
	r, err := bench.RunConns(context.Background(), bench.ConnsConfig{
		Hold:   bench.HoldSpec{Target: srv.KafkaAddr(), Count: 60, PerIP: 20},
		Server: bench.ServerProbe{StatsURL: "http://" + srv.HTTPAddr() + "/admin/stats"}, HoldFor: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Opened != 60 || r.Accepted < 60 || r.RSSBeforeBytes <= 0 || r.RSSHeldBytes <= 0 {
		t.Fatalf("%+v", r)
	}
}

func TestSmokeFlood(t *testing.T) {
	srv := testserver.Start(t, testserver.WithLimits(func(c *limits.Config) { c.MaxConnections = 40 }))
	url := "http://" + srv.HTTPAddr() + "/health"
	var progress bytes.Buffer
	r, err := bench.RunFlood(context.Background(), bench.FloodConfig{
		Flood:    bench.HoldSpec{Target: srv.KafkaAddr(), Count: 120, PerIP: 30},
		ProbeURL: url, ProbeRate: 200, Before: 100 * time.Millisecond, During: 100 * time.Millisecond,
		Progress: bench.NewProgress(&progress)})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Recovered || r.Before.Count == 0 || r.During.Count == 0 || r.FloodOpened == 0 {
		t.Fatalf("%+v", r)
	}
	if r.DuringErrors != 0 {
		t.Errorf("the established client failed %d times during the flood", r.DuringErrors)
	}
}

func TestSmokeOverload(t *testing.T) {
	srv := testserver.Start(t, testserver.WithHTTPLimits(func(c *limits.HTTPConfig) { c.RPSGlobal = 100 }))
	r, err := bench.RunOverload(context.Background(), bench.OverloadConfig{URL: "http://" + srv.HTTPAddr() + "/health",
		Limit: 100, Multipliers: []float64{1, 50}, Connections: 2, Step: 500 * time.Millisecond,
		Server: bench.ServerProbe{StatsURL: "http://" + srv.HTTPAddr() + "/admin/stats"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Steps) != 2 || r.Steps[1].RejectedRPS <= 0 || !strings.Contains(r.Steps[1].Errors, "429") {
		t.Fatalf("no rejection at 50x: %+v", r.Steps)
	}
	if r.Steps[0].PeakRSSBytes <= 0 {
		t.Errorf("no RSS: %+v", r.Steps[0])
	}
}

// TestSmokeConnsKafkaHello holds connections spread over two targets (the
// same server twice), each answering a Metadata request before it counts.
func TestSmokeConnsKafkaHello(t *testing.T) {
	srv := testserver.Start(t)
	spec := bench.HoldSpec{Target: srv.KafkaAddr(), Targets: []string{srv.KafkaAddr(), srv.KafkaAddr()}, Count: 40, PerIP: 20,
		Concurrency: 4, DialTimeout: 5 * time.Second, KafkaHello: true}
	f, err := bench.StartFleet(context.Background(), spec, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !f.Ready() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if opened, failed := f.Counts(); opened != 40 || failed != 0 {
		t.Fatalf("opened %d failed %d: %s", opened, failed, f.FirstError())
	}
	flags := strings.Join(spec.Flags(), " ")
	if !strings.Contains(flags, "--targets "+srv.KafkaAddr()+","+srv.KafkaAddr()) || !strings.Contains(flags, "--kafka-hello") {
		t.Errorf("flags %q lack --targets or --kafka-hello", flags)
	}
}
