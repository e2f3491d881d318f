package attack

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// gatewayAttacks aim at what only gateway mode has (Attack.Gateway: floodgate
// in front of a 3-broker cluster, the good clients producing and consuming
// through it): Produce frames kept in pieces, held while they arrive and
// while they wait to be written upstream with writev, long polls on
// the upstream connections clients share, and Fetch answers relayed
// through pipes to clients that do not read them. Each could exceed the default
// budget were what it announces or sends buffered; the servers' budgets
// are lowered where that lets the RSS bound catch bytes not charged at a
// fraction of the traffic (the machine has 2 shared cores).
func gatewayAttacks() []Attack {
	return []Attack{
		{Name: "gateway-trickled-produce-pieces", Issue: 13, Listener: Kafka, Gateway: true,
			What: "120 connections from 2 IPs announce a 90 MB Produce frame, send 5 MiB of it in 2.4 s (64 KiB every 30 ms: the frame in pieces), then one byte every 300 ms; --request-memory-bytes 256 MiB",
			// A quarter of the default budget: the RSS bound is the limit
			// plus 256 MiB, so pieces the budget did not charge (600 MiB
			// sent) break it at a third of the bytes the default would
			// need. Two attacker IPs hold at most half the budget (25%
			// each): the good clients keep the rest.
			ServerArgs: []string{"--request-memory-bytes", "268435456"},
			Run:        gatewayTrickledPieces},
		{Name: "gateway-pipeline-unread-produce", Issue: 13, Listener: Kafka, Gateway: true,
			What: "4 connections from 2 IPs to a leader's listener send a Fetch that waits upstream for 60 s, then pipeline a 4 MiB Produce frame (acks=1, in pieces) every 20 ms behind it, never reading; --request-memory-bytes 128 MiB",
			// An eighth of the default budget (RSS bound 384 MiB): frames
			// the budget did not hold back (about 700 MiB arrive) pass the
			// bound, where the default's 1.28 GiB would take twice the
			// traffic. The two IPs hold at most 64 MiB.
			ServerArgs: []string{"--request-memory-bytes", "134217728"},
			Setup:      createPollTopic, Run: gatewayPipelineProduce},
		{Name: "gateway-long-poll-fetch", Issue: 13, Listener: Kafka, Gateway: true,
			What: "200 connections from 6 IPs to the 3 leaders' listeners each pipeline 5 Fetches at the log end (max wait 60 s, MaxBytes 50 MiB); --max-upstream-connections-per-broker 4",
			// Four upstream connections per broker: the good clients share
			// theirs with the attacker's, and the long polls go to the
			// long-poll connections, as they do once a production pool of
			// 1,000 per broker is full.
			ServerArgs: []string{"--max-upstream-connections-per-broker", "4"},
			Setup:      createPollTopic, Run: gatewayLongPolls},
		{Name: "gateway-unread-spliced-fetch", Issue: 17, Listener: Kafka, Gateway: true,
			What: "12 connections from 3 IPs to the leader's listener each pipeline 24 Fetches of a 1 MiB partition (max 256 KiB: answers of 192 KiB, relayed through pipes) with a 4 KiB receive window and never read",
			// Four pipes per connection (an eighth of the 32 this
			// machine's pipe-user-pages-soft allows): twelve connections
			// take every pipe, and the rest of their answers are read
			// into memory. The pipes must all be back in the pool, and
			// their charge back in the budget, once the attacker leaves.
			Held:     []string{"floodgate_gateway_pipes_in_use"},
			Counters: []string{`floodgate_gateway_fetch_buffered_total{reason="no_pipe"}`, `floodgate_gateway_fetch_buffered_total{reason="client_share"}`, `floodgate_gateway_fetch_buffered_total{reason="pipe_full"}`},
			Reaches:  "floodgate_gateway_fetch_spliced_total",
			Setup:    fillSpliceTopic, Run: gatewayUnreadSplicedFetch},
	}
}

// appendFrame appends req's frame (correlation id corr) to dst.
// kmsg's AppendRequest writes the frame's length at dst[0:4], the start
// of dst, not of the frame it appends: frames appended to one another
// with it make one frame of them all.
func appendFrame(dst []byte, req kmsg.Request, corr int32) []byte {
	return append(dst, kafkaFormatter.AppendRequest(nil, req, corr)...)
}

// spliceTopic holds the data gateway-unread-spliced-fetch fetches: one
// partition of 16 records of 64 KiB, one record per batch, so that a
// Fetch of at most 256 KiB is answered with three batches (kfake stops
// before a batch that would pass the limit): 192 KiB, above the 16 KiB
// from which the gateway relays an answer through a pipe and within a
// pipe's 1 MiB.
const spliceTopic = "attack-splice"

// fillSpliceTopic produces spliceTopic's 1 MiB through the gateway
// (random, uncompressed: a pipe takes the answer as it is), one record per
// batch.
func fillSpliceTopic(ctx context.Context, t *Target) error {
	return fillTopic(ctx, t, spliceTopic, 16, 64<<10, kgo.ProducerBatchMaxBytes(96<<10))
}

// gatewayUnreadSplicedFetch holds connections to the leader of
// spliceTopic's partition, each with 24 Fetches pipelined (4.5 MiB of
// answers) and a 4 KiB receive window, never reading: the first answers
// fill the socket, the next wait in pipes (each connection up to its
// share of the pool) until the connection closes, and the rest are read
// into memory. Measured: all 32 pipes in use, 82 answers read into
// memory for want of one, 6 for the client's share. The data is kept
// small (54 MiB of answers in all): kfake serves every answer from one
// goroutine, and at 720 KiB answers (100 MiB), when it still ran in the
// race-built test process, it made every good client wait 200 ms. The good
// clients' answers, small, never need a pipe; what the attack tests is
// that pipes and their charge are released when it leaves, and that
// holding every pipe costs the others nothing.
func gatewayUnreadSplicedFetch(ctx context.Context, t *Target) error {
	addr, err := leaderAddr(ctx, t, spliceTopic, 0)
	if err != nil {
		return err
	}
	req := fetchRequest(spliceTopic, 0, 0, 500*time.Millisecond, 1, 256<<10)
	var msg []byte
	for i := int32(0); i < 24; i++ {
		msg = appendFrame(msg, req, i)
	}
	dial := func(ctx context.Context, ip net.IP) (net.Conn, error) { return dialSmallWindow(ctx, ip, addr) }
	return holdDialed(ctx, dial, t.N(12), 4, 0, func(ctx context.Context, c net.Conn) { writeAll(c, msg) })
}

// dialSmallWindow connects to addr from ip with a 4 KiB receive buffer
// set before the handshake: the window it advertises stays that small, so
// the server's send buffer, which grows with the congestion window, stays
// near its first size (set after the handshake, the window already
// advertised lets the server's grow to tcp_wmem's 4 MiB on loopback, and
// the upstream would have to serve that much per connection first).
func dialSmallWindow(ctx context.Context, ip net.IP, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 2 * time.Second,
		Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10)
			})
			return errors.Join(err, serr)
		}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s from %s: %w", addr, ip, err)
	}
	return c, nil
}

// piecesUpFront is what a gateway-trickled-produce-pieces connection
// sends of its frame at once: enough that the frame is kept in seven
// pieces (64 KiB doubling) and the next one is charged.
const piecesUpFront = 5 << 20

// piecesPace is the pause between two 64 KiB writes of the part sent at
// once: 120 connections then send about 250 MB/s in all, for 2.4 s. Sent
// in one write each, the same 600 MB arrive within a few hundred
// milliseconds, and the good clients' p99 (also with the embedded broker,
// without pieces) measures the 2 shared cores copying them.
const piecesPace = 30 * time.Millisecond

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

// produceFrame is a Produce v7 frame (acks=1) of n bytes of records for
// partition 0 of topic.
func produceFrame(topic string, n int) []byte {
	frame := produceHead(topic)
	frame = binary.BigEndian.AppendUint32(frame, 1) // partitions
	frame = binary.BigEndian.AppendUint32(frame, 0) // partition 0
	frame = binary.BigEndian.AppendUint32(frame, uint32(n))
	frame = append(frame, make([]byte, n)...)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	return frame
}

// unreadTopic is a topic no one creates: the upstream answers each of
// gateway-pipeline-unread-produce's frames UNKNOWN_TOPIC_OR_PARTITION
// after reading it, and keeps nothing (kfake would keep every record of a
// real topic in memory).
const unreadTopic = "attack-unread-produce"

// gatewayPipelineProduce holds its connection's upstream connection with
// a long poll (a broker answers one connection's requests in order, and
// reads the next only once it answered the last), then writes 4 MiB
// Produce frames behind it and never reads an answer: the upstream takes
// none of them, so floodgate must stop reading the client once the
// frames it holds reach the IP's share of the budget, rather than read on
// and queue them for the upstream. Without the long poll the upstream
// (kfake) drains them at a pace that measures the machine's two cores,
// not floodgate.
// producePace is the pause after each frame of gateway-pipeline-unread-produce:
// 4 connections then send about 290 MB/s, 700 MiB in an attack, more than
// the RSS bound allows were they all held. Once its IP's share is full,
// floodgate refuses a frame and reads it to discard it: unpaced, that
// reading at loopback speed takes the 2 shared cores from the good
// clients.
const producePace = 20 * time.Millisecond

func gatewayPipelineProduce(ctx context.Context, t *Target) error {
	addr, err := leaderAddr(ctx, t, pollTopic, 0)
	if err != nil {
		return err
	}
	poll := kafkaFormatter.AppendRequest(nil, fetchRequest(pollTopic, 0, 0, time.Minute, 1, 1<<20), 1)
	frame := produceFrame(unreadTopic, 4<<20)
	lt := *t
	lt.KafkaAddr = addr
	return hold(ctx, &lt, Kafka, t.N(4), 2, 0, func(ctx context.Context, c net.Conn) {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4 << 10)
		}
		if !writeAll(c, poll) {
			return
		}
		for ctx.Err() == nil && writeAll(c, frame) {
			sleep(ctx, producePace)
		}
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

// pollTopic is the topic gateway-long-poll-fetch waits on: empty, one
// partition per upstream broker, so the long polls reach every broker.
const pollTopic = "attack-poll"

// createPollTopic creates pollTopic through the gateway.
func createPollTopic(ctx context.Context, t *Target) error {
	return createTopics(ctx, t, upstreamBrokers, pollTopic)
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
			msgs[p] = appendFrame(msgs[p], req, i)
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
