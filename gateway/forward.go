package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/limits"
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
// stands for (or any live broker for bootstrap and cluster-wide APIs). It
// only queues the frame: the pool worker is free again at once, whatever
// the upstream does.
func (g *Gateway) ServeRaw(cl loop.ClientConn, h *kafka.Header, frame []byte, respond func([]byte)) {
	g.serveRaw(cl, h, frame, nil, respond)
}

// ServeRawSplice is ServeRaw for a Fetch from a plaintext client: its
// answer may be relayed through a pipe (splice.go).
func (g *Gateway) ServeRawSplice(cl loop.ClientConn, h *kafka.Header, frame []byte, sr loop.SpliceResponder) {
	g.serveRawTo(cl, h, frame, nil, sr.Respond, sr)
}

// ServeRawChunks forwards a Produce frame that arrived in pieces (frame,
// then more) as it is: the pieces are written upstream with one writev,
// never joined.
func (g *Gateway) ServeRawChunks(cl loop.ClientConn, h *kafka.Header, frame []byte, more [][]byte, respond func([]byte)) {
	g.forwardedPieces.Inc()
	g.serveRaw(cl, h, frame, more, respond)
}

// serveRaw forwards frame and the pieces that follow it (more, nil for a
// frame in one piece).
func (g *Gateway) serveRaw(cl loop.ClientConn, h *kafka.Header, frame []byte, more [][]byte, respond func([]byte)) {
	g.serveRawTo(cl, h, frame, more, respond, nil)
}

// serveRawTo is serveRaw whose answer may also go through a pipe to sr
// (nil: never).
func (g *Gateway) serveRawTo(cl loop.ClientConn, h *kafka.Header, frame []byte, more [][]byte, respond func([]byte), sr loop.SpliceResponder) {
	g.forwarded.Inc()
	expect := true
	switch h.APIKey {
	case 0:
		acks, ok := kafka.ProduceAcks(h.APIVersion, frame[h.Size:])
		if !ok && len(more) > 0 {
			// acks lies beyond the first piece (a client id and a
			// transactional id of tens of kilobytes each): a skimmer
			// reads it across the pieces, which are never joined.
			sk := skimPieces(h, frame, more, 1)
			acks, ok = sk.Acks(), true
		}
		if ok && acks == 0 {
			expect = false
		}
	case 1:
		if f := g.clampFetch(h, frame, cl.FetchRoom); f != nil {
			frame = f
		}
	}
	corr := h.CorrelationID
	hdr := *h
	hdr.ClientID = nil
	target := cl.Tag
	if target == loop.BootstrapTag || anyBroker(h.APIKey) {
		target = g.pickAny(target)
	}
	var spl *spliceTo
	if sr != nil && h.APIKey == 1 && g.pipes != nil {
		spl = &spliceTo{sr: sr, client: cl.ID, ip: cl.Addr, corr: corr}
	}
	g.forwardTo(cl.ID, target, &hdr, frame, more, expect, spl, func(resp []byte, err error) {
		switch {
		case errors.Is(err, errClientGone):
			respond(nil) // the client is gone: nothing to answer, nothing to log
		case err != nil:
			g.failed.Inc()
			respond(g.errorFrame(target, &hdr, frame, more, err))
		case resp == nil:
			respond(nil) // Produce acks=0, written
		default:
			respond(g.rewrite(&hdr, corr, resp))
		}
	})
}

// waits reports requests an upstream broker may hold for long: a Fetch
// with a wait (long poll), JoinGroup (until the rebalance) and SyncGroup
// (until the leader's assignment). On a shared upstream connection they
// would hold every request queued behind them, since a broker answers a
// connection's requests one at a time and in order.
func waits(h *kafka.Header, frame []byte) bool {
	switch h.APIKey {
	case 11, 14:
		return true
	case 1:
		off := h.Size + 4 // after ReplicaID
		if h.APIVersion >= 15 {
			off = h.Size // v15+ has no ReplicaID
		}
		return len(frame) >= off+4 && int32(binary.BigEndian.Uint32(frame[off:])) > 0
	}
	return false
}

// forward sends frame to node, retrying once on a fresh connection when
// the chosen one is already broken. cb gets the answer (nil, nil for a
// written Produce acks=0) or the error, exactly once.
func (g *Gateway) forward(client uint64, node int32, h *kafka.Header, frame []byte, more [][]byte, expect bool, cb responseFunc) {
	g.forwardTo(client, node, h, frame, more, expect, nil, cb)
}

// forwardTo is forward for a request whose answer may also be relayed
// through a pipe to spl (nil: never).
func (g *Gateway) forwardTo(client uint64, node int32, h *kafka.Header, frame []byte, more [][]byte, expect bool, spl *spliceTo, cb responseFunc) {
	timeout := g.cfg.RequestTimeout
	if h.APIKey == 11 { // JoinGroup waits for the rebalance
		timeout += 5 * time.Minute
	}
	long := waits(h, frame)
	for attempt := 0; attempt < 2; attempt++ {
		u, counted, err := g.upstreamFor(client, node, long)
		if err != nil {
			cb(nil, err)
			return
		}
		done := cb
		if counted {
			done = func(resp []byte, err error) {
				u.waiting.Add(-1)
				cb(resp, err)
			}
		}
		if spl != nil {
			spl.waiting = nil
			if counted {
				spl.waiting = &u.waiting
			}
		}
		if u.sendSplice(frame, more, expect, timeout, done, spl) == nil {
			return
		}
		if counted {
			u.waiting.Add(-1)
		}
		// It broke before this request was queued: once more on a fresh one.
	}
	cb(nil, errUpstreamClosed)
}

// dialBackoff is how long an upstream broker whose dial failed is answered
// with an error at once instead of being dialled again.
const dialBackoff = time.Second

// pickAny returns a broker for requests any broker answers: the preferred
// one if it is not known to be failing, else round robin over the
// healthiest known brokers (a broker whose dials fail, or whose first dial
// is still under way, is used only when no other is left).
func (g *Gateway) pickAny(prefer int32) int32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if b, ok := g.brokers[prefer]; ok && b.health() < healthDialing {
		return prefer
	}
	ids := make([]int32, 0, len(g.brokers))
	best := healthDown + 1
	for id, b := range g.brokers {
		switch h := b.health(); {
		case h < best:
			best = h
			ids = append(ids[:0], id)
		case h == best:
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return -1
	}
	slices.Sort(ids) // map order is random: sort for a fair rotation
	g.next++
	return ids[g.next%len(ids)]
}

// Health of an upstream broker as its pool saw it, best first.
const (
	healthUp      = iota // the last dial succeeded
	healthUnknown        // never dialled
	healthDialing        // never reached, a dial under way
	healthDown           // the last dial failed
)

// health ranks the broker for requests any broker can answer.
func (b *upstreamBroker) health() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.lastDial == dialFailed:
		return healthDown
	case b.lastDial == dialOK:
		return healthUp
	case b.dialing > 0:
		return healthDialing
	}
	return healthUnknown
}

// restClient is the client id of the HTTP REST API's requests, which
// share the pool's connections.
const restClient = 0

// upstreamFor returns the connection for one request of client to node:
// the client's own connection while the broker's pool has room, a shared
// one beyond it. A request that waits (long poll, group join) of a client
// whose connection is shared, or may become shared because the pool is
// full, goes to a long-poll connection instead, so it never holds other
// clients' requests. A waiting request is counted in its connection's
// waiting until answered (counted reports it), on a long-poll connection
// and on the client's own, which shareLocked then passes over. It never
// dials itself: a new connection dials in its own goroutine.
func (g *Gateway) upstreamFor(client uint64, node int32, long bool) (u *upstreamConn, counted bool, err error) {
	g.mu.RLock()
	b := g.brokers[node]
	g.mu.RUnlock()
	if b == nil {
		return nil, false, fmt.Errorf("upstream broker %d unknown", node)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	u = b.byClient[client]
	if u != nil && u.isDead() {
		// Not dropLocked: a retired connection still owes this client
		// answers, and closes itself once they are in.
		delete(b.byClient, client)
		u.clients--
		u = nil
	}
	if u == nil {
		b.conns = g.keepLive(b.conns)
		if len(b.conns) >= g.cfg.MaxUpstreamPerBroker {
			u = b.shareLocked(client)
		} else {
			if err := b.backoffLocked(); err != nil {
				return nil, false, err
			}
			u = b.dialLocked(g)
			b.conns = append(b.conns, u)
			u.clients++
			b.byClient[client] = u
		}
	}
	// On a full pool any connection may be given to another client while
	// the request waits (shareLocked), so a long request goes to a long-poll
	// connection then too, not only once its connection is shared.
	if !long {
		return u, false, nil
	}
	if u.clients > 1 || client == restClient || len(b.conns) >= g.cfg.MaxUpstreamPerBroker {
		l, err := b.leaseLocked(g)
		if err != nil {
			return nil, false, err
		}
		return l, true, nil
	}
	// The client's own connection while the pool has room. The pool may
	// fill while the request waits upstream: counted, the connection is
	// not given to a new client until it is answered (shareLocked).
	u.waiting.Add(1)
	return u, true, nil
}

// backoffLocked refuses a dial for a moment after one failed: the client
// is answered at once rather than after another dial timeout.
func (b *upstreamBroker) backoffLocked() error {
	if wait := time.Until(b.dialFailedAt.Add(dialBackoff)); wait > 0 {
		return fmt.Errorf("upstream broker %d unreachable (last dial failed %v ago)", b.id, (dialBackoff - wait).Round(time.Millisecond))
	}
	return nil
}

// dialLocked starts a new connection to the broker (it dials in its own
// goroutine; requests queue meanwhile).
func (b *upstreamBroker) dialLocked(g *Gateway) *upstreamConn {
	g.connCount.Add(1)
	b.dialing++
	return newUpstreamPipes(b.id, b.addr, g.dial, g.cfg.RequestTimeout, g.cfg.ResponseBuffer, g.pipes, func(err error) {
		b.mu.Lock()
		b.dialing--
		if err != nil {
			b.dialFailedAt = time.Now()
			b.lastDial = dialFailed
		} else {
			b.dialFailedAt = time.Time{}
			b.lastDial = dialOK
		}
		b.mu.Unlock()
		if err == nil {
			g.reachable.Store(true)
		}
	}, g.upstreamBroke)
}

// leaseLocked returns the long-poll connection with the fewest waiting
// requests, a new one when all are busy and the pool has room (at most
// --max-upstream-connections-per-broker of them); beyond that waiting
// requests queue behind each other, never behind other requests. The
// caller owns one count of the connection's waiting until the answer.
func (b *upstreamBroker) leaseLocked(g *Gateway) (*upstreamConn, error) {
	b.leases = g.keepLive(b.leases)
	var best *upstreamConn
	for _, l := range b.leases {
		if best == nil || l.waiting.Load() < best.waiting.Load() {
			best = l
		}
	}
	if (best == nil || best.waiting.Load() > 0) && len(b.leases) < g.cfg.MaxUpstreamPerBroker && b.backoffLocked() == nil {
		best = b.dialLocked(g)
		b.leases = append(b.leases, best)
	}
	if best == nil {
		return nil, b.backoffLocked()
	}
	best.waiting.Add(1)
	return best, nil
}

// shareLocked assigns client a connection of a full pool: the one with the
// fewest clients among those no waiting request holds (a long poll or
// group join its owner sent while the pool had room: a broker answers a
// connection's requests in order, so a client given it would wait behind
// it for up to the poll's max wait); only when every connection holds one,
// the one with the fewest clients.
func (b *upstreamBroker) shareLocked(client uint64) *upstreamConn {
	u := b.conns[0]
	for _, c := range b.conns[1:] {
		if cw, uw := c.waiting.Load() > 0, u.waiting.Load() > 0; cw != uw {
			if uw {
				u = c
			}
			continue
		}
		if c.clients < u.clients {
			u = c
		}
	}
	u.clients++
	b.byClient[client] = u
	return u
}

// keepLive returns conns, in place, without the connections that broke,
// which it stops counting.
func (g *Gateway) keepLive(conns []*upstreamConn) []*upstreamConn {
	kept := conns[:0]
	for _, u := range conns {
		if u.isDead() {
			g.connCount.Add(-1)
			continue
		}
		kept = append(kept, u)
	}
	clear(conns[len(kept):])
	return kept
}

// dropLocked forgets one client's use of u; a connection no client uses
// any more is closed, failing what is still pending on it (requests of
// clients that left) quietly.
func (b *upstreamBroker) dropLocked(u *upstreamConn) {
	u.clients--
	if u.clients <= 0 {
		u.close(errClientGone)
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
			b.dropLocked(u)
			b.conns = g.keepLive(b.conns)
		}
		b.mu.Unlock()
	}
}

// errorFrame answers a request whose upstream broker could not be reached
// with a retriable error in the API's shape: clients refresh metadata and
// retry, nothing hangs.
func (g *Gateway) errorFrame(node int32, h *kafka.Header, frame []byte, more [][]byte, cause error) []byte {
	if !errors.Is(cause, errGatewayClosed) {
		g.warn.Warn("upstream:"+strconv.Itoa(int(node)), "upstream request failed", "node", node,
			"api", kmsg.NameForKey(h.APIKey), "error", cause.Error())
	}
	code := kafka.ErrRequestTimedOut
	switch h.APIKey {
	case 0, 1, 2, 23: // Produce, Fetch, ListOffsets, OffsetForLeaderEpoch
		code = kafka.ErrNotLeaderForPartition
	case 8, 9, 10, 11, 12, 13, 14, 15, 42, 47: // group APIs
		code = kafka.ErrCoordinatorNotAvailable
	}
	if len(more) > 0 {
		// A Produce frame in pieces is answered per partition by a
		// skimmer fed the pieces: no copy of the frame in one piece,
		// which the memory budget never charged (a broker failing under
		// many large produces would otherwise copy each of them at once).
		resp, ok := skimPieces(h, frame, more, g.cfg.Decode.MaxPartitions).Refusal(code)
		if !ok {
			return nil // names no partition: the connection is closed
		}
		return kafka.AppendResponse(nil, h, resp)
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

// skimPieces reads a Produce frame in pieces (frame, then more) with a
// ProduceSkimmer whose answer names at most maxPartitions partitions (0,
// unbounded decoding: the default --max-partitions-per-request).
func skimPieces(h *kafka.Header, frame []byte, more [][]byte, maxPartitions int) *kafka.ProduceSkimmer {
	if maxPartitions <= 0 {
		maxPartitions = limits.Defaults().MaxPartitionsPerRequest
	}
	sk := new(kafka.ProduceSkimmer)
	sk.Reset(h.APIVersion, maxPartitions)
	sk.Feed(frame[h.Size:])
	for _, b := range more {
		sk.Feed(b)
	}
	return sk
}

// rewrite restores the client's correlation id and points every broker a
// response names at floodgate: Metadata, FindCoordinator, DescribeCluster,
// and the leaders a Produce (v10+) or share-group answer names after a
// leader change (KIP-951), which a client would otherwise dial directly,
// going round the gateway and every limit it enforces. (Fetch, relayed
// unread, is capped below v16, which names them: versionCaps.)
func (g *Gateway) rewrite(h *kafka.Header, corr int32, resp []byte) []byte {
	switch h.APIKey {
	case 3, 10, 60, 18, 78, 79:
	case 0:
		if h.APIVersion >= 10 {
			if body, err := kafka.ResponseBody(h, resp); err != nil || kafka.ProduceAnswerHasTags(h.APIVersion, body) {
				break
			}
		}
		fallthrough
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
	case *kmsg.ProduceResponse:
		if len(r.Brokers) == 0 { // no leader changed: the answer as it came
			kafka.SetCorrelationID(resp, corr)
			return resp
		}
		localAll(g, r.Brokers, func(b *kmsg.ProduceResponseBroker) (int32, *string, *int32) { return b.NodeID, &b.Host, &b.Port })
	case *kmsg.ShareFetchResponse:
		localAll(g, r.NodeEndpoints, func(b *kmsg.ShareFetchResponseNodeEndpoint) (int32, *string, *int32) {
			return b.NodeID, &b.Host, &b.Port
		})
	case *kmsg.ShareAcknowledgeResponse:
		localAll(g, r.NodeEndpoints, func(b *kmsg.ShareAcknowledgeResponseNodeEndpoint) (int32, *string, *int32) {
			return b.NodeID, &b.Host, &b.Port
		})
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
		localAll(g, r.Brokers, func(b *kmsg.DescribeClusterResponseBroker) (int32, *string, *int32) {
			return b.NodeID, &b.Host, &b.Port
		})
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
	localAll(g, m.Brokers, func(b *kmsg.MetadataResponseBroker) (int32, *string, *int32) { return b.NodeID, &b.Host, &b.Port })
}

// localAll points every broker an answer names (bs) at floodgate's
// listener for it (local); at says where a broker's node id, host and port
// are, as each API has a struct of its own for them.
func localAll[T any](g *Gateway, bs []T, at func(*T) (node int32, host *string, port *int32)) {
	for i := range bs {
		node, host, port := at(&bs[i])
		*host, *port = g.local(node, *host, *port)
	}
}

// local maps an upstream broker to floodgate's listener for it, learning
// a broker that is new or answers at a new address (ensureBroker). A broker
// it cannot map (no port left in --gateway-listen-ports) is named at
// floodgate's host and port 0, which no client can reach: never at its
// upstream address, which would let the client go round the gateway and
// every limit it enforces. Clients treat it as a broker that is down and
// retry; the operator gets a WARN and floodgate_gateway_unmapped_brokers_total.
func (g *Gateway) local(node int32, host string, port int32) (string, int32) {
	b, err := g.ensureBroker(node, joinHostPort(host, port))
	if err != nil {
		g.unmapped.Inc()
		g.warn.Warn("unmapped:"+strconv.Itoa(int(node)), "cannot map upstream broker; clients are given port 0 for it",
			"node", node, "error", err.Error())
		return g.cfg.AdvertisedHost, 0
	}
	return g.cfg.AdvertisedHost, b.localPort
}

// ServeKafka serves a decoded request (the HTTP REST API uses it): it is
// encoded and forwarded, Produce/Fetch/ListOffsets to the leader of their
// first partition, group requests to the group's coordinator.
func (g *Gateway) ServeKafka(req kmsg.Request, clientID, addr string, respond func(kmsg.Response)) {
	if f, ok := req.(*kmsg.FetchRequest); ok {
		clampFetchRequest(f, g.cfg.MaxFetchBytes)
	}
	if group, ok := kafka.GroupOf(req); ok {
		g.coordinatorFor(group, func(node int32) { g.serveDecoded(req, clientID, node, group, respond) })
		return
	}
	node := g.leaderOf(req)
	if node < 0 {
		node = g.pickAny(-1)
	}
	g.serveDecoded(req, clientID, node, "", respond)
}

// serveDecoded encodes req and forwards it to node; group names the group
// of a group request, whose cached coordinator is forgotten when the
// answer says it moved.
func (g *Gateway) serveDecoded(req kmsg.Request, clientID string, node int32, group string, respond func(kmsg.Response)) {
	frame, h, err := encodeRequest(req, clientID)
	if err != nil {
		respond(kafka.ErrorResponse(req, kafka.ErrUnknownServerError))
		return
	}
	expect := true
	if p, ok := req.(*kmsg.ProduceRequest); ok && p.Acks == 0 {
		expect = false
	}
	g.forward(restClient, node, h, frame, nil, expect, func(resp []byte, err error) {
		switch {
		case err != nil:
			g.failed.Inc()
			if !errors.Is(err, errGatewayClosed) {
				g.warn.Warn("upstream:"+strconv.Itoa(int(node)), "upstream request failed", "node", node,
					"api", kmsg.NameForKey(h.APIKey), "error", err.Error())
			}
			code := kafka.ErrNotLeaderForPartition
			if group != "" {
				g.forgetCoordinator(group)
				code = kafka.ErrNotCoordinator
			}
			respond(kafka.ErrorResponse(req, code))
			return
		case resp == nil:
			respond(nil)
			return
		}
		r, err := kafka.DecodeResponse(h, resp)
		if err != nil {
			respond(kafka.ErrorResponse(req, kafka.ErrUnknownServerError))
			return
		}
		if group != "" && kafka.CoordinatorError(r) {
			g.forgetCoordinator(group)
		}
		respond(r)
	})
}

// encodeRequest encodes req as a frame without its length prefix, as the
// loop hands frames on, and parses its header.
func encodeRequest(req kmsg.Request, clientID string) ([]byte, *kafka.Header, error) {
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID(clientID)).AppendRequest(nil, req, 0)[kafka.LengthSize:]
	h := new(kafka.Header)
	if err := kafka.ParseHeader(frame, int32(len(frame)), h); err != nil {
		return nil, nil, fmt.Errorf("encoding %s: %w", kmsg.NameForKey(req.Key()), err)
	}
	return frame, h, nil
}

// maxCoordinators bounds the coordinator cache; it is emptied when full
// (each REST consumer group costs one FindCoordinator again).
const maxCoordinators = 4096

// coordinatorFor calls then with the upstream node that coordinates group:
// cached, or asked of any broker with FindCoordinator. When it cannot be
// learned, then gets any broker, whose NOT_COORDINATOR answer tells the
// caller to retry. then runs on the caller's goroutine on a hit, on a
// goroutine of its own after a lookup (never on the upstream reader, which
// must not wait on another upstream).
func (g *Gateway) coordinatorFor(group string, then func(node int32)) {
	g.mu.RLock()
	node, ok := g.coordinators[group]
	g.mu.RUnlock()
	if ok {
		then(node)
		return
	}
	asked := g.pickAny(-1)
	_, max, ok := g.VersionRange(10)
	if !ok {
		then(asked)
		return
	}
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.SetVersion(min(max, 3)) // v4+ batches keys; one is asked here
	fc.CoordinatorKey = group
	frame, h, err := encodeRequest(fc, "floodgate-gateway")
	if err != nil {
		then(asked)
		return
	}
	g.forward(restClient, asked, h, frame, nil, true, func(resp []byte, err error) {
		node := asked
		if err == nil {
			if r, derr := kafka.DecodeResponse(h, resp); derr == nil {
				if fr := r.(*kmsg.FindCoordinatorResponse); fr.ErrorCode == 0 && g.learnBroker(fr.NodeID, fr.Host, fr.Port) {
					node = fr.NodeID
					g.mu.Lock()
					if len(g.coordinators) >= maxCoordinators {
						clear(g.coordinators)
					}
					g.coordinators[group] = node
					g.mu.Unlock()
				}
			}
		}
		go then(node)
	})
}

// learnBroker reports whether node is an upstream broker the gateway
// forwards to (ensureBroker: added when new, moved when at a new address).
func (g *Gateway) learnBroker(node int32, host string, port int32) bool {
	_, err := g.ensureBroker(node, joinHostPort(host, port))
	return err == nil
}

// forgetCoordinator drops group's cached coordinator: the next request
// finds it anew.
func (g *Gateway) forgetCoordinator(group string) {
	g.mu.Lock()
	delete(g.coordinators, group)
	g.mu.Unlock()
}

// clampFetch enforces --max-fetch-bytes on a forwarded Fetch, and the
// memory budget's room for its answer (room, loop.ClientConn.FetchRoom; 0:
// none given) when that is less: the request's MaxBytes (v3+, at a fixed
// place) is lowered in place; older versions, which have only
// per-partition limits, are decoded and re-encoded with each partition's
// share. It returns the frame to forward when it had to build a new one.
// Fitting the answer to the room keeps what the upstream sends for one
// client (read into memory whole before it is charged to the budget)
// within what the client's IP may hold, as the loop fits a decoded Fetch
// for the embedded broker; Kafka still returns at least one batch.
func (g *Gateway) clampFetch(h *kafka.Header, frame []byte, room int64) []byte {
	limit, clamped := g.cfg.MaxFetchBytes, g.fetchClamped
	if limit > 1<<31-1 {
		limit = 0
	}
	if room > 0 && (limit <= 0 || room < limit) {
		limit, clamped = min(room, 1<<31-1), g.fetchFitted
	}
	if limit <= 0 {
		return nil
	}
	if h.APIVersion >= 3 {
		off := h.Size + 12 // ReplicaID, MaxWaitMillis, MinBytes
		if h.APIVersion >= 15 {
			off = h.Size + 8
		}
		if len(frame) < off+4 {
			return nil
		}
		if mb := int32(binary.BigEndian.Uint32(frame[off:])); mb <= 0 || int64(mb) > limit {
			binary.BigEndian.PutUint32(frame[off:], uint32(limit))
			clamped.Inc()
		}
		return nil
	}
	req, err := kafka.DecodeRequestLimited(h, frame[h.Size:], g.cfg.Decode)
	if err != nil {
		return nil // the upstream answers it as it is (or the loop refused it)
	}
	f := req.(*kmsg.FetchRequest)
	if !clampFetchRequest(f, limit) {
		return nil
	}
	clamped.Inc()
	out := kmsg.NewRequestFormatter(kmsg.FormatterClientID(string(h.ClientID))).AppendRequest(nil, f, h.CorrelationID)
	return out[kafka.LengthSize:]
}

// clampFetchRequest lowers a Fetch's byte limits to limit: MaxBytes, and
// each partition's to its share of limit (Kafka returns at least one
// batch whatever the limits say). It reports whether it changed anything.
func clampFetchRequest(f *kmsg.FetchRequest, limit int64) bool {
	if limit <= 0 || limit > 1<<31-1 {
		return false
	}
	changed := false
	if f.MaxBytes <= 0 || int64(f.MaxBytes) > limit {
		f.MaxBytes = int32(limit)
		changed = true
	}
	if f.Version >= 3 {
		return changed // MaxBytes bounds the whole response
	}
	n := 0
	for _, t := range f.Topics {
		n += len(t.Partitions)
	}
	share := int32(max(limit/int64(max(n, 1)), 1))
	for i := range f.Topics {
		for j := range f.Topics[i].Partitions {
			if p := &f.Topics[i].Partitions[j]; p.PartitionMaxBytes <= 0 || p.PartitionMaxBytes > share {
				p.PartitionMaxBytes = share
				changed = true
			}
		}
	}
	return changed
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
