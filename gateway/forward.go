package gateway

import (
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/loop"
)

// anyBroker reports APIs every broker answers, which are sent to a live
// broker whichever listener they came in on.
func anyBroker(key int16) bool {
	switch key {
	case 3, 18, 10, 60, 19, 20, 32, 37, 33, 44, 16, 42: // Metadata, ApiVersions, FindCoordinator, DescribeCluster, admin
		return true
	}
	return false
}

// ServeRaw forwards one frame to the upstream broker the client's listener
// stands for (or any live broker for bootstrap and cluster-wide APIs).
func (g *Gateway) ServeRaw(cl loop.ClientConn, h *kafka.Header, frame []byte, respond func([]byte)) {
	g.forwarded.Inc()
	expect := true
	if h.APIKey == 0 {
		if acks, ok := kafka.ProduceAcks(h.APIVersion, frame[h.Size:]); ok && acks == 0 {
			expect = false
		}
	}
	corr := h.CorrelationID
	hdr := *h
	hdr.ClientID = nil
	target := cl.Tag
	if target == loop.BootstrapTag || anyBroker(h.APIKey) {
		target = g.pickAny(target)
	}
	g.forward(cl.ID, target, &hdr, frame, expect, func(resp []byte, err error) {
		if err != nil {
			g.failed.Inc()
			respond(g.errorFrame(&hdr, frame, err))
			return
		}
		respond(g.rewrite(&hdr, corr, resp))
	}, respond)
}

// forward sends frame to node, retrying once on a fresh connection when
// the chosen one is already broken.
func (g *Gateway) forward(client uint64, node int32, h *kafka.Header, frame []byte, expect bool, cb responseFunc, respond func([]byte)) {
	timeout := g.cfg.RequestTimeout
	if h.APIKey == 11 { // JoinGroup waits for the rebalance
		timeout += 5 * time.Minute
	}
	for attempt := 0; attempt < 2; attempt++ {
		u, err := g.upstreamFor(client, node)
		if err != nil {
			cb(nil, err)
			return
		}
		err = u.send(frame, expect, timeout, cb)
		switch {
		case err == nil:
			if !expect {
				respond(nil)
			}
			return
		case err == errUpstreamClosed && attempt == 0:
			continue // it broke before this request was queued: redial once
		case err == errUpstreamClosed:
			cb(nil, err)
			return
		default:
			// A write error: fail() already answered the registered callback.
			if !expect {
				respond(nil)
			}
			return
		}
	}
}

// dialBackoff is how long an upstream broker whose dial failed is answered
// with an error at once instead of being dialled again.
const dialBackoff = time.Second

// pickAny returns a broker for requests any broker answers: the preferred
// one if known, else round robin over the known brokers.
func (g *Gateway) pickAny(prefer int32) int32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.brokers[prefer]; ok {
		return prefer
	}
	ids := make([]int32, 0, len(g.brokers))
	for id := range g.brokers {
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return -1
	}
	// map order is random: sort for a fair rotation
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0 && ids[j] < ids[j-1]; j-- {
			ids[j], ids[j-1] = ids[j-1], ids[j]
		}
	}
	g.next++
	return ids[g.next%len(ids)]
}

// upstreamFor returns the client's upstream connection to node: its own
// while the broker's pool has room, a shared one beyond it.
func (g *Gateway) upstreamFor(client uint64, node int32) (*upstreamConn, error) {
	g.mu.RLock()
	b := g.brokers[node]
	g.mu.RUnlock()
	if b == nil {
		return nil, fmt.Errorf("upstream broker %d unknown", node)
	}
	b.mu.Lock()
	if u := b.byClient[client]; u != nil {
		if !u.isDead() {
			b.mu.Unlock()
			return u, nil
		}
		b.dropLocked(u, g)
		delete(b.byClient, client)
	}
	b.pruneLocked(g)
	if len(b.conns) >= g.cfg.MaxUpstreamPerBroker {
		u := b.conns[0]
		for _, c := range b.conns[1:] {
			if c.clients < u.clients {
				u = c
			}
		}
		u.clients++
		b.byClient[client] = u
		b.mu.Unlock()
		return u, nil
	}
	if wait := time.Until(b.dialFailedAt.Add(dialBackoff)); wait > 0 {
		// It failed a moment ago: answer at once rather than hold a pool
		// worker for another dial timeout.
		b.mu.Unlock()
		return nil, fmt.Errorf("upstream broker %d unreachable (last dial failed %v ago)", node, dialBackoff-wait)
	}
	addr := b.addr
	b.mu.Unlock()
	u, err := dialUpstream(node, addr, g.cfg.DialTimeout, g.cfg.RequestTimeout, g.cfg.UpstreamTLS)
	if err != nil {
		b.mu.Lock()
		b.dialFailedAt = time.Now()
		b.mu.Unlock()
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.conns) >= g.cfg.MaxUpstreamPerBroker { // others dialled meanwhile
		u.close()
		return g.shareLocked(b, client), nil
	}
	g.connCount.Add(1)
	b.conns = append(b.conns, u)
	u.clients++
	b.byClient[client] = u
	return u, nil
}

func (g *Gateway) shareLocked(b *upstreamBroker, client uint64) *upstreamConn {
	u := b.conns[0]
	for _, c := range b.conns[1:] {
		if c.clients < u.clients {
			u = c
		}
	}
	u.clients++
	b.byClient[client] = u
	return u
}

// pruneLocked drops broken connections from the pool.
func (b *upstreamBroker) pruneLocked(g *Gateway) {
	kept := b.conns[:0]
	for _, u := range b.conns {
		if u.isDead() {
			g.connCount.Add(-1)
			continue
		}
		kept = append(kept, u)
	}
	clear(b.conns[len(kept):])
	b.conns = kept
}

// dropLocked forgets one client's use of u.
func (b *upstreamBroker) dropLocked(u *upstreamConn, g *Gateway) {
	u.clients--
	if u.clients <= 0 {
		u.close()
	}
}

// ConnClosed releases a client's upstream connections; a connection no
// client uses any more is closed.
func (g *Gateway) ConnClosed(id uint64) {
	g.mu.RLock()
	bs := make([]*upstreamBroker, 0, len(g.brokers))
	for _, b := range g.brokers {
		bs = append(bs, b)
	}
	g.mu.RUnlock()
	for _, b := range bs {
		b.mu.Lock()
		if u, ok := b.byClient[id]; ok {
			delete(b.byClient, id)
			b.dropLocked(u, g)
			b.pruneLocked(g)
		}
		b.mu.Unlock()
	}
}

// errorFrame answers a request whose upstream broker could not be reached
// with a retriable error in the API's shape: clients refresh metadata and
// retry, nothing hangs.
func (g *Gateway) errorFrame(h *kafka.Header, frame []byte, cause error) []byte {
	g.log.Warn("upstream request failed", "api", kmsg.NameForKey(h.APIKey), "error", cause.Error())
	code := kafka.ErrRequestTimedOut
	switch h.APIKey {
	case 0, 1, 2, 23: // Produce, Fetch, ListOffsets, OffsetForLeaderEpoch
		code = kafka.ErrNotLeaderForPartition
	case 8, 9, 10, 11, 12, 13, 14, 15, 42, 47: // group APIs
		code = kafka.ErrCoordinatorNotAvailable
	}
	req, err := kafka.DecodeRequestLimited(h, frame[h.Size:], g.cfg.Decode)
	var refused *kafka.RefusedError
	if errors.As(err, &refused) {
		g.cfg.Metrics.GetOrCreateCounter(`floodgate_requests_refused_total{limit="` + refused.Limit + `"}`).Inc()
		g.warn.Warn(refused.Limit, "request refused; closing the connection", "limit", refused.Limit, "configured", refused.Max,
			"actual", refused.Value, "api", kmsg.NameForKey(h.APIKey))
	}
	if err != nil {
		return nil // refused or malformed: the connection is closed
	}
	resp := kafka.ErrorResponse(req, code)
	if m, ok := resp.(*kmsg.MetadataResponse); ok {
		g.fillMetadataBrokers(m)
	}
	return kafka.AppendResponse(nil, h, resp)
}

// rewrite restores the client's correlation id and points every broker a
// response names at floodgate.
func (g *Gateway) rewrite(h *kafka.Header, corr int32, resp []byte) []byte {
	switch h.APIKey {
	case 3, 10, 60, 18:
	default:
		kafka.SetCorrelationID(resp, corr)
		return resp
	}
	r, err := kafka.DecodeResponse(h, resp)
	if err != nil {
		g.log.Warn("cannot rewrite upstream response; passing it through", "api", kmsg.NameForKey(h.APIKey), "error", err.Error())
		kafka.SetCorrelationID(resp, corr)
		return resp
	}
	switch r := r.(type) {
	case *kmsg.MetadataResponse:
		_ = g.learn(r)
		g.fillMetadataBrokers(r)
	case *kmsg.FindCoordinatorResponse:
		if r.ErrorCode == 0 && r.Host != "" {
			r.Host, r.Port = g.local(r.NodeID, r.Host, r.Port)
		}
		for i := range r.Coordinators {
			c := &r.Coordinators[i]
			if c.ErrorCode == 0 {
				c.Host, c.Port = g.local(c.NodeID, c.Host, c.Port)
			}
		}
	case *kmsg.DescribeClusterResponse:
		for i := range r.Brokers {
			b := &r.Brokers[i]
			b.Host, b.Port = g.local(b.NodeID, b.Host, b.Port)
		}
	case *kmsg.ApiVersionsResponse:
		kept := r.ApiKeys[:0]
		for _, k := range r.ApiKeys {
			if min, max, ok := g.VersionRange(k.ApiKey); ok {
				k.MinVersion, k.MaxVersion = min, max
				kept = append(kept, k)
			}
		}
		r.ApiKeys = kept
	}
	h2 := *h
	h2.CorrelationID = corr
	return kafka.AppendResponse(nil, &h2, r)
}

// fillMetadataBrokers rewrites (or, for an error answer, fills) the broker
// list with floodgate's listeners.
func (g *Gateway) fillMetadataBrokers(m *kmsg.MetadataResponse) {
	if len(m.Brokers) == 0 {
		g.mu.RLock()
		for _, b := range g.brokers {
			br := kmsg.NewMetadataResponseBroker()
			br.NodeID = b.id
			m.Brokers = append(m.Brokers, br)
		}
		g.mu.RUnlock()
	}
	for i := range m.Brokers {
		b := &m.Brokers[i]
		b.Host, b.Port = g.local(b.NodeID, b.Host, b.Port)
	}
}

// local maps an upstream broker to floodgate's listener for it.
func (g *Gateway) local(node int32, host string, port int32) (string, int32) {
	g.mu.RLock()
	b := g.brokers[node]
	g.mu.RUnlock()
	if b == nil {
		var err error
		b, err = g.ensureBroker(node, joinHostPort(host, port))
		if err != nil {
			g.log.Warn("cannot map upstream broker", "node", node, "error", err.Error())
			return host, port
		}
	}
	return g.cfg.AdvertisedHost, b.localPort
}

// ServeKafka serves a decoded request (the HTTP REST API uses it): it is
// encoded and forwarded, Produce/Fetch/ListOffsets to the leader of their
// first partition.
func (g *Gateway) ServeKafka(req kmsg.Request, clientID, addr string, respond func(kmsg.Response)) {
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID(clientID)).AppendRequest(nil, req, 0)[kafka.LengthSize:]
	var h kafka.Header
	if err := kafka.ParseHeader(frame, int32(len(frame)), &h); err != nil {
		respond(kafka.ErrorResponse(req, kafka.ErrUnknownServerError))
		return
	}
	node := g.leaderOf(req)
	if node < 0 {
		node = g.pickAny(-1)
	}
	expect := true
	if p, ok := req.(*kmsg.ProduceRequest); ok && p.Acks == 0 {
		expect = false
	}
	const restClient = 0 // REST requests share the pool's connections
	g.forward(restClient, node, &h, frame, expect, func(resp []byte, err error) {
		if err != nil {
			respond(kafka.ErrorResponse(req, kafka.ErrNotLeaderForPartition))
			return
		}
		r, err := kafka.DecodeResponse(&h, resp)
		if err != nil {
			respond(kafka.ErrorResponse(req, kafka.ErrUnknownServerError))
			return
		}
		respond(r)
	}, func([]byte) { respond(nil) })
}

// leaderOf returns the leader of a partition-addressed request's first
// partition, or -1.
func (g *Gateway) leaderOf(req kmsg.Request) int32 {
	var topic string
	var part int32 = -1
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		if len(r.Topics) > 0 && len(r.Topics[0].Partitions) > 0 {
			topic, part = r.Topics[0].Topic, r.Topics[0].Partitions[0].Partition
		}
	case *kmsg.FetchRequest:
		if len(r.Topics) > 0 && len(r.Topics[0].Partitions) > 0 {
			topic, part = r.Topics[0].Topic, r.Topics[0].Partitions[0].Partition
		}
	case *kmsg.ListOffsetsRequest:
		if len(r.Topics) > 0 && len(r.Topics[0].Partitions) > 0 {
			topic, part = r.Topics[0].Topic, r.Topics[0].Partitions[0].Partition
		}
	}
	if part < 0 {
		return -1
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	ls := g.leaders[topic]
	if int(part) >= len(ls) {
		return -1
	}
	return ls[part]
}
