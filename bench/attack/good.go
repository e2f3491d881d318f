package attack

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// goodTimeout bounds one good request: a request still unanswered after
// it counts as a failure with this latency.
const goodTimeout = 2 * time.Second

// goodPause is the interval between two requests of one good client (each
// client offers about 40 requests/s, on a fixed schedule).
const goodPause = 25 * time.Millisecond

// sample is one good request.
type sample struct {
	start time.Time
	lat   time.Duration
	ok    bool
}

// recorder collects one good client's samples. A client makes one
// request at a time; the one in flight counts in a window with the time it
// has taken so far, so a request stuck across a window's end is not
// missing from it.
//
// Requests are due on a fixed schedule, one every goodPause, and each
// counts from when it was due (open loop): a request that stalls delays
// the ones due after it, and they count the delay. A client that waited
// for each answer and then paused would record one sample per stall
// however long it lasted, and a p99 over a few hundred samples would not
// see it (coordinated omission).
type recorder struct {
	mu      sync.Mutex
	s       []sample
	pending time.Time // start of the request in flight, or zero
	due     time.Time // when the next request is due (zero: now)
}

// begin waits until the client's next request is due and returns when it
// was due: its start, behind which the request is late from the moment
// the schedule says so. ctx ending cuts the wait short.
func (r *recorder) begin(ctx context.Context) time.Time {
	now := time.Now()
	due := r.due
	if due.IsZero() {
		due = now
	}
	if wait := due.Sub(now); wait > 0 {
		sleep(ctx, wait)
	}
	r.due = due.Add(goodPause)
	r.mu.Lock()
	r.pending = due
	r.mu.Unlock()
	return due
}

// beginNow returns the start of a request that follows another at once
// (the good franz-go client's Fetch after its Produce), off the schedule.
func (r *recorder) beginNow() time.Time {
	now := time.Now()
	r.mu.Lock()
	r.pending = now
	r.mu.Unlock()
	return now
}

// add records the request begun at start. A failed request counts as one
// that timed out: an error answered fast is no better for the client.
func (r *recorder) add(start time.Time, ok bool) {
	lat := min(time.Since(start), goodTimeout)
	if !ok {
		lat = goodTimeout
	}
	r.mu.Lock()
	r.s = append(r.s, sample{start: start, lat: lat, ok: ok})
	r.pending = time.Time{}
	r.mu.Unlock()
}

// Latency summarises the requests of one good client in one phase.
type Latency struct {
	N      int
	Failed int
	P50    time.Duration
	P99    time.Duration
	Max    time.Duration
}

// window returns the latencies of the requests in flight at any moment of
// [from, to): a request stuck across the attack's start counts for it.
func (r *recorder) window(from, to time.Time) Latency {
	r.mu.Lock()
	defer r.mu.Unlock()
	var lats []time.Duration
	var l Latency
	all := r.s
	if !r.pending.IsZero() {
		all = append(all[:len(all):len(all)], sample{start: r.pending, lat: min(time.Since(r.pending), goodTimeout), ok: true})
	}
	for _, s := range all {
		if !s.start.Before(to) || s.start.Add(s.lat).Before(from) {
			continue
		}
		lats = append(lats, s.lat)
		if !s.ok {
			l.Failed++
		}
	}
	l.N = len(lats)
	if l.N == 0 {
		return l
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	q := func(p float64) time.Duration {
		i := int(p*float64(l.N)+0.999999) - 1
		if i < 0 {
			i = 0
		}
		return lats[i]
	}
	l.P50, l.P99, l.Max = q(0.5), q(0.99), lats[l.N-1]
	return l
}

// goodClients are the well-behaved clients measured during an attack.
type goodClients struct {
	kafka  recorder // raw ApiVersions and Metadata round trips
	kgo    recorder // franz-go Produce (acks=all) and Fetch
	health recorder // GET /health
}

// run starts the good clients of t; they stop when ctx ends and the
// returned function waits for them.
func (g *goodClients) run(ctx context.Context, t *Target) (wait func(), err error) {
	var wg sync.WaitGroup
	if t.KafkaAddr != "" {
		cl, leader, err := newGoodKgo(ctx, t)
		if err != nil {
			return nil, err
		}
		wg.Add(2)
		go func() { defer wg.Done(); defer cl.Close(); g.loopKgo(ctx, cl, leader) }()
		go func() { defer wg.Done(); g.loopKafka(ctx, t) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); g.loopHealth(ctx, t.HTTPAddr) }()
	return wg.Wait, nil
}

// goodTopic is the topic of the good franz-go client.
const goodTopic = "good"

// newGoodKgo connects a franz-go client from a good address, makes sure
// its topic exists and returns the broker that leads its partition 0 (in
// gateway mode one of several).
func newGoodKgo(ctx context.Context, t *Target) (*kgo.Client, *goodLeader, error) {
	dial := func(ctx context.Context, _, host string) (net.Conn, error) { return t.dialKafka(ctx, goodIP(0), host) }
	cl, err := kgo.NewClient(kgo.SeedBrokers(t.KafkaAddr), kgo.Dialer(dial), kgo.DefaultProduceTopic(goodTopic),
		kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(0), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		return nil, nil, fmt.Errorf("good franz-go client: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(pctx, &kgo.Record{Value: []byte("hello")}).FirstErr(); err != nil {
		cl.Close()
		return nil, nil, fmt.Errorf("good franz-go client: first produce: %w", err)
	}
	leader, id, err := partitionLeader(pctx, cl, goodTopic, 0)
	if err != nil {
		cl.Close()
		return nil, nil, fmt.Errorf("good franz-go client: %w", err)
	}
	return cl, &goodLeader{cl.Broker(int(leader)), id}, nil
}

// goodLeader is where the good franz-go client fetches its records: the
// leader of its topic's partition 0, and the topic's id (franz-go sends
// the newest Fetch both sides know, v13 and up naming topics by id).
type goodLeader struct {
	*kgo.Broker
	topicID [16]byte
}

// partitionLeader returns the node id of the leader of partition p of
// topic, and the topic's id: franz-go sends a raw Fetch (Client.Request)
// to any broker, which answers NOT_LEADER_OR_FOLLOWER unless it is the
// leader.
func partitionLeader(ctx context.Context, cl *kgo.Client, topic string, p int32) (int32, [16]byte, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, [16]byte{}, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	for _, t := range resp.Topics {
		for _, rp := range t.Partitions {
			if t.Topic != nil && *t.Topic == topic && rp.Partition == p && rp.ErrorCode == 0 {
				return rp.Leader, t.TopicID, nil
			}
		}
	}
	return 0, [16]byte{}, fmt.Errorf("metadata names no leader of %s/%d", topic, p)
}

// within runs f and waits for it at most goodTimeout; a late f is waited
// for (after reporting false) before the next request, as a real client
// would wait for its connection.
func within(ctx context.Context, f func() error) (ok bool, late <-chan error) {
	done := make(chan error, 1)
	go func() { done <- f() }()
	timer := time.NewTimer(goodTimeout)
	defer timer.Stop()
	select {
	case err := <-done:
		return err == nil, nil
	case <-timer.C:
		return false, done
	case <-ctx.Done():
		return false, done
	}
}

// loopKgo produces one record (acks=all) and fetches it back, each
// request a sample.
func (g *goodClients) loopKgo(ctx context.Context, cl *kgo.Client, leader *goodLeader) {
	for i := 0; ctx.Err() == nil; i++ {
		var off int64 = -1
		start := g.kgo.begin(ctx)
		if ctx.Err() != nil {
			return // ended while waiting for the slot: no request to count
		}
		ok, late := within(ctx, func() error {
			r, err := cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "good %d", i)}).First()
			if err == nil {
				off = r.Offset
			}
			return err
		})
		g.kgo.add(start, ok)
		if late != nil && !waitLate(ctx, late) {
			return
		}
		if late != nil {
			continue
		}
		if ok {
			start = g.kgo.beginNow()
			ok, late = within(ctx, func() error { return fetchOne(ctx, leader, off) })
			g.kgo.add(start, ok)
			if late != nil && !waitLate(ctx, late) {
				return
			}
		}
	}
}

// waitLate waits for a request that outlived goodTimeout; false when ctx
// ended first (franz-go retries a produce to a dead server for ever).
func waitLate(ctx context.Context, late <-chan error) bool {
	select {
	case <-late:
		return true
	case <-ctx.Done():
		return false
	}
}

// fetchOne fetches partition 0 of the good topic at off from its leader
// and checks that a record came back.
func fetchOne(ctx context.Context, leader *goodLeader, off int64) error {
	req := kmsg.NewPtrFetchRequest()
	req.Version = 4
	req.ReplicaID = -1
	req.MaxWaitMillis = 0
	req.MaxBytes = 1 << 20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = goodTopic
	rt.TopicID = leader.topicID
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.FetchOffset = off
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	kr, err := leader.Request(ctx, req)
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	resp := kr.(*kmsg.FetchResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return fmt.Errorf("fetch: %d topics in the answer", len(resp.Topics))
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
		return fmt.Errorf("fetch at %d: error %d, %d bytes", off, p.ErrorCode, len(p.RecordBatches))
	}
	return nil
}

// loopKafka sends ApiVersions and Metadata requests on one connection from
// a good address, one at a time; a failed connection is replaced.
func (g *goodClients) loopKafka(ctx context.Context, t *Target) {
	var kc *kafkaConn
	defer func() {
		if kc != nil {
			kc.Close()
		}
	}()
	for i := int32(0); ctx.Err() == nil; i++ {
		start := g.kafka.begin(ctx)
		if ctx.Err() != nil {
			return
		}
		if kc == nil {
			c, err := t.dialKafka(ctx, goodIP(1), t.KafkaAddr)
			if err != nil {
				g.kafka.add(start, false)
				continue
			}
			kc = &kafkaConn{Conn: c}
		}
		var req kmsg.Request = kmsg.NewPtrApiVersionsRequest()
		if i%2 == 1 {
			m := kmsg.NewPtrMetadataRequest()
			m.Version = 1
			mt := kmsg.NewMetadataRequestTopic()
			mt.Topic = kmsg.StringPtr(goodTopic)
			m.Topics = append(m.Topics, mt)
			req = m
		}
		err := kc.roundTrip(req, i, goodTimeout)
		g.kafka.add(start, err == nil)
		if err != nil {
			kc.Close()
			kc = nil
		}
	}
}

// loopHealth sends GET /health on a keep-alive connection from a good
// address.
func (g *goodClients) loopHealth(ctx context.Context, addr string) {
	cl := httpClientFrom(goodIP(2), goodTimeout)
	defer cl.CloseIdleConnections()
	for ctx.Err() == nil {
		start := g.health.begin(ctx)
		if ctx.Err() != nil {
			return
		}
		g.health.add(start, getHealth(ctx, cl, addr) == nil)
	}
}

// getHealth sends GET /health and wants a 200.
func getHealth(ctx context.Context, cl *http.Client, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return fmt.Errorf("GET /health: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /health: status %d", resp.StatusCode)
	}
	return nil
}

// kafkaConn is a raw Kafka connection: one request at a time.
type kafkaConn struct {
	net.Conn
	hdr [4]byte
	buf []byte
}

// kafkaFormatter frames requests with a client id.
var kafkaFormatter = kmsg.NewRequestFormatter(kmsg.FormatterClientID("floodgate-attack"))

// roundTrip writes req and reads its response (checking the correlation id).
func (kc *kafkaConn) roundTrip(req kmsg.Request, corr int32, timeout time.Duration) error {
	if err := kc.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := kc.Write(kafkaFormatter.AppendRequest(kc.buf[:0], req, corr)); err != nil {
		return fmt.Errorf("write request: %w", err)
	}
	if _, err := io.ReadFull(kc, kc.hdr[:]); err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	n := binary.BigEndian.Uint32(kc.hdr[:])
	if n < 4 || n > 16<<20 {
		return fmt.Errorf("response of %d bytes", n)
	}
	if cap(kc.buf) < int(n) {
		kc.buf = make([]byte, n)
	}
	kc.buf = kc.buf[:n]
	if _, err := io.ReadFull(kc, kc.buf); err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if got := int32(binary.BigEndian.Uint32(kc.buf)); got != corr {
		return fmt.Errorf("correlation id %d, want %d", got, corr)
	}
	// An answer is a success only without an error code in it.
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if err := resp.ReadFrom(kc.buf[4:]); err != nil {
		return fmt.Errorf("decode %s response: %w", kmsg.NameForKey(req.Key()), err)
	}
	return answerError(resp)
}

// answerError returns the error an ApiVersions or Metadata answer carries
// (for Metadata: its brokers must be named and each topic answered without
// an error), or nil.
func answerError(resp kmsg.Response) error {
	switch r := resp.(type) {
	case *kmsg.ApiVersionsResponse:
		if r.ErrorCode != 0 {
			return fmt.Errorf("api versions answer: error %d", r.ErrorCode)
		}
	case *kmsg.MetadataResponse:
		if len(r.Brokers) == 0 {
			return errors.New("metadata answer: no broker")
		}
		for _, t := range r.Topics {
			if t.ErrorCode != 0 {
				return fmt.Errorf("metadata answer: topic error %d", t.ErrorCode)
			}
		}
	}
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
