package attack

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// gatewayAttacks aim at what only gateway mode has (Attack.Gateway: floodgate
// in front of a 3-broker cluster, the good clients producing and consuming
// through it): Produce frames kept in pieces and written upstream with
// writev, upstream answers read into pooled buffers and forwarded as they
// are, Fetches clamped to --max-fetch-bytes, and long polls on the upstream
// connections clients share.
func gatewayAttacks() []Attack {
	return []Attack{
		{Name: "gateway-trickled-produce-pieces", Issue: 13, Listener: Kafka, Gateway: true,
			What: "120 connections from 2 IPs announce a 90 MB Produce frame, send 6 MiB of it in 2 s (64 KiB every 20 ms: the frame in pieces), then one byte every 300 ms; --request-memory-bytes 256 MiB",
			// A quarter of the default budget: the RSS bound is the limit
			// plus 256 MiB, so pieces the budget did not charge (720 MiB
			// sent) break it at a third of the bytes the default would
			// need. Two attacker IPs hold at most half the budget (25%
			// each): the good clients keep the rest.
			ServerArgs: []string{"--request-memory-bytes", "268435456"},
			Run:        gatewayTrickledPieces},
		{Name: "gateway-pipeline-unread-fetch", Issue: 14, Listener: Kafka, Gateway: true,
			What:  "2 connections to the partition leader's listener each pipeline 200 Fetches (MaxBytes 1 GiB, clamped to 50 MiB) of a 4 MiB partition and never read",
			Setup: fillGatewayFetchTopic, Run: gatewayPipelineFetch},
		{Name: "gateway-long-poll-fetch", Issue: 13, Listener: Kafka, Gateway: true,
			What: "200 connections from 6 IPs to the 3 leaders' listeners each pipeline 5 Fetches at the log end (max wait 60 s, MaxBytes 50 MiB); --max-upstream-connections-per-broker 4",
			// Four upstream connections per broker: the good clients share
			// theirs with the attacker's, and the long polls go to the
			// long-poll connections, as they do once a production pool of
			// 1,000 per broker is full.
			ServerArgs: []string{"--max-upstream-connections-per-broker", "4"},
			Setup:      createPollTopic, Run: gatewayLongPolls},
	}
}

// piecesUpFront is what a gateway-trickled-produce-pieces connection
// sends of its frame at once: enough that the frame is kept in seven
// pieces (64 KiB doubling) and the next one is charged.
const piecesUpFront = 6 << 20

// piecesPace is the pause between two 64 KiB writes of the part sent at
// once: 120 connections then send about 380 MB/s in all, for 2 s. Sent in
// one write each, the same 720 MB arrive within a few hundred
// milliseconds, and the good clients' p99 (also with the embedded broker,
// without pieces) measures the 2 shared cores copying them.
const piecesPace = 20 * time.Millisecond

func gatewayTrickledPieces(ctx context.Context, t *Target) error {
	head := kafkaHead(90_000_000, 0, 7, 1)
	chunk := make([]byte, 64<<10)
	return hold(ctx, t, Kafka, t.N(120), 60, 0, func(ctx context.Context, c net.Conn) {
		if !writeAll(c, head) {
			return
		}
		for sent := 0; sent < piecesUpFront; sent += len(chunk) {
			if !writeAll(c, chunk) {
				return
			}
			sleep(ctx, piecesPace)
		}
		trickle(ctx, c, 300*time.Millisecond)
	})
}

// leaderAddr returns floodgate's listener for the leader of partition p of
// topic, read from a Metadata request to the bootstrap listener (the
// gateway rewrites the upstream brokers to its own listeners).
func leaderAddr(ctx context.Context, t *Target, topic string, p int32) (string, error) {
	c, err := Dial(ctx, AttackerIP(100), t.KafkaAddr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	kc := &kafkaConn{Conn: c}
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 1
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	if err := kc.roundTrip(req, 1, 5*time.Second); err != nil {
		return "", fmt.Errorf("metadata of %s: %w", topic, err)
	}
	resp := kmsg.NewPtrMetadataResponse()
	resp.Version = req.Version
	if err := resp.ReadFrom(kc.buf[4:]); err != nil {
		return "", fmt.Errorf("metadata of %s: %w", topic, err)
	}
	if len(resp.Topics) != 1 {
		return "", fmt.Errorf("metadata of %s: %d topics", topic, len(resp.Topics))
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		return "", fmt.Errorf("metadata of %s: %w", topic, err)
	}
	for _, rp := range resp.Topics[0].Partitions {
		if rp.Partition != p {
			continue
		}
		for _, b := range resp.Brokers {
			if b.NodeID == rp.Leader {
				return net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))), nil
			}
		}
		return "", fmt.Errorf("metadata of %s: leader %d of partition %d not among the brokers", topic, rp.Leader, p)
	}
	return "", fmt.Errorf("metadata of %s: no partition %d", topic, p)
}

// fetchRequest is a Fetch v4 of partition p of topic at offset, waiting
// up to wait for minBytes, of at most maxBytes.
func fetchRequest(topic string, p int32, offset int64, wait time.Duration, minBytes, maxBytes int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version = 4
	req.ReplicaID = -1
	req.MaxWaitMillis = int32(wait.Milliseconds())
	req.MinBytes = minBytes
	req.MaxBytes = maxBytes
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = p
	rp.FetchOffset = offset
	rp.PartitionMaxBytes = maxBytes
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// gatewayFetchTopic holds what gateway-pipeline-unread-fetch fetches: 4 MiB
// (16 records of 256 KiB), each answer as large as the upstream builds in
// tens of milliseconds. 400 answers of it are 1.6 GB, over the memory
// budget; 24 MiB answers (kafka-pipeline-unread-fetch) hold the upstream
// (kfake: one goroutine serves every broker's requests) for longer than
// the good clients' bound, and what the good clients measured was the
// upstream's queue, not floodgate.
const gatewayFetchTopic = "attack-gw-fetch"

func fillGatewayFetchTopic(ctx context.Context, t *Target) error {
	return fillTopic(ctx, t, gatewayFetchTopic, 16)
}

// gatewayPipelineFetch is kafka-pipeline-unread-fetch through the gateway:
// each answer is read from upstream into a buffer of the loop's pools and
// queued for a client that never reads it. MaxBytes asks for 1 GiB, which
// the gateway lowers to --max-fetch-bytes.
func gatewayPipelineFetch(ctx context.Context, t *Target) error {
	addr, err := leaderAddr(ctx, t, gatewayFetchTopic, 0)
	if err != nil {
		return err
	}
	req := fetchRequest(gatewayFetchTopic, 0, 0, 0, 1, 1<<30)
	var msg []byte
	for i := int32(0); i < 200; i++ {
		msg = kafkaFormatter.AppendRequest(msg, req, i)
	}
	lt := *t
	lt.KafkaAddr = addr
	return hold(ctx, &lt, Kafka, t.N(2), 2, 0, func(ctx context.Context, c net.Conn) { writeAll(c, msg) })
}

// pollTopic is the topic gateway-long-poll-fetch waits on: empty, one
// partition per upstream broker, so the long polls reach every broker.
const pollTopic = "attack-poll"

// createPollTopic creates pollTopic through the gateway, with franz-go,
// which sends CreateTopics to the controller's listener.
func createPollTopic(ctx context.Context, t *Target) error {
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
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic = pollTopic
	rt.NumPartitions = upstreamBrokers
	rt.ReplicationFactor = 1
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("create %s: %w", pollTopic, err)
	}
	for _, rt := range resp.Topics {
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil {
			return fmt.Errorf("create %s: %w", rt.Topic, err)
		}
	}
	return nil
}

// gatewayLongPolls holds connections to the partition leaders' listeners,
// each with 5 Fetches waiting upstream for data that never comes: the
// upstream broker answers one connection's requests one at a time, so
// every request queued behind one of them on the same upstream connection
// would wait the full minute.
func gatewayLongPolls(ctx context.Context, t *Target) error {
	addrs := make([]string, upstreamBrokers)
	msgs := make([][]byte, upstreamBrokers)
	for p := range addrs {
		addr, err := leaderAddr(ctx, t, pollTopic, int32(p))
		if err != nil {
			return err
		}
		addrs[p] = addr
		req := fetchRequest(pollTopic, int32(p), 0, time.Minute, 1, 50<<20)
		for i := int32(0); i < 5; i++ {
			msgs[p] = kafkaFormatter.AppendRequest(msgs[p], req, i)
		}
	}
	n := t.N(200)
	per := (n + upstreamBrokers - 1) / upstreamBrokers
	errs := make(chan error, upstreamBrokers)
	for p := range addrs {
		lt := *t
		lt.KafkaAddr = addrs[p]
		go func(p int) {
			// Two attacker IPs per leader.
			errs <- hold(ctx, &lt, Kafka, per, (per+1)/2, 2*p, func(ctx context.Context, c net.Conn) {
				writeAll(c, msgs[p])
			})
		}(p)
	}
	var err error
	for range addrs {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	return err
}
