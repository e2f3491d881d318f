package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestGatewayForgetsTopicsDeletedUpstream: the leaders the gateway learned
// for a topic go once the topic is deleted upstream (the next full
// refresh no longer names it); before, every topic ever seen stayed in the
// map for the gateway's lifetime. A topic that still exists stays.
func TestGatewayForgetsTopicsDeletedUpstream(t *testing.T) {
	srv, g := startInternal(t, 4, func(c *Config) { c.RefreshInterval = 100 * time.Millisecond },
		kfake.AllowAutoTopicCreation())
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, topic := range []string{"doomed", "t"} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatalf("produce to %s: %v", topic, err)
		}
	}
	known := func(topic string) bool {
		g.mu.RLock()
		defer g.mu.RUnlock()
		_, ok := g.leaders[topic]
		return ok
	}
	if !known("doomed") {
		t.Fatal("the gateway never learned the leaders of the topic it forwarded to")
	}
	del := kmsg.NewPtrDeleteTopicsRequest()
	del.TopicNames = []string{"doomed"}
	dt := kmsg.NewDeleteTopicsRequestTopic()
	dt.Topic = kmsg.StringPtr("doomed")
	del.Topics = append(del.Topics, dt)
	resp, err := del.RequestWith(ctx, cl)
	if err != nil || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("delete the topic upstream: %v %+v", err, resp)
	}
	for known("doomed") {
		if ctx.Err() != nil {
			t.Fatal("the deleted topic's leaders are still held after 20 s of refreshes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !known("t") {
		t.Fatal("a topic that still exists was forgotten too")
	}
}
