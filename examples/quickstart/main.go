// Command quickstart produces one record to floodgate and reads it back with
// franz-go; README's "Try it with a real client" shows it, and its test runs
// it against a real server.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	broker := flag.String("broker", "127.0.0.1:9092", "floodgate's Kafka address")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := run(ctx, *broker, "demo")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("read back %q\n", got)
}

// run produces "hello" to topic and consumes it from the beginning.
func run(ctx context.Context, broker, topic string) (string, error) {
	// README:begin
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(broker),
		kgo.DefaultProduceTopic(topic),
		kgo.AllowAutoTopicCreation(), // franz-go does not ask for it unless told
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return "", err
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("hello")}).FirstErr(); err != nil {
		return "", fmt.Errorf("produce: %w", err)
	}
	fetches := cl.PollFetches(ctx)
	if err := fetches.Err(); err != nil {
		return "", fmt.Errorf("consume: %w", err)
	}
	return string(fetches.Records()[0].Value), nil
	// README:end
}
