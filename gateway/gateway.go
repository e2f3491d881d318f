package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// Config configures the gateway.
type Config struct {
	// Seeds are upstream bootstrap brokers (host:port).
	Seeds []string
	// ListenHost is the host the per-broker listeners bind.
	ListenHost string
	// PortFirst and PortLast bound the per-broker listener ports.
	PortFirst, PortLast int
	// AdvertisedHost is the host clients are told to use.
	AdvertisedHost string
	// MaxUpstreamPerBroker bounds upstream connections per broker.
	MaxUpstreamPerBroker int
	// RequestTimeout bounds an upstream request (JoinGroup gets the
	// rebalance timeout on top).
	RequestTimeout time.Duration
	// DialTimeout bounds connecting to an upstream broker.
	DialTimeout time.Duration
	// UpstreamTLS, when set, connects to the upstream brokers over TLS.
	UpstreamTLS *tls.Config
	// RefreshInterval is how often the upstream cluster's brokers are re-read.
	RefreshInterval time.Duration
	// MaxFetchBytes caps what one Fetch may ask of the upstream
	// (--max-fetch-bytes): the forwarded request's MaxBytes is lowered to
	// it. 0 leaves requests as they are.
	MaxFetchBytes int64
	// Decode bounds what decoding a client's request may allocate (the
	// gateway decodes only to answer a request it could not forward).
	Decode kafka.DecodeLimits
	// Logger receives events.
	Logger *slog.Logger
	// Metrics receives the gateway's metrics.
	Metrics *metrics.Set
	// AddListener starts a Kafka listener whose connections carry tag.
	AddListener func(addr string, tag int32) (net.Addr, error)
	// SASL, when set, authenticates every upstream connection (sasl.go).
	SASL sasl.Mechanism
	// ResponseBuffer, when set, gives the buffers upstream answers are read
	// into (loop.Server.ResponseBuffer: the loop's pools, to which the loop
	// returns them once written to the client); nil or a nil buffer: the
	// gateway allocates.
	ResponseBuffer func(n int) []byte
	// SplicePipes is the pipes kept for relaying Fetch answers to
	// plaintext clients without copying them (splice.go): 0 is
	// DefaultSplicePipes, negative turns the relay off
	// (--gateway-splice-pipes, whose 0 is off, sets it). One client
	// connection may hold an eighth of them, one client IP a quarter.
	SplicePipes int
	// SplicePipeBytes is each pipe's capacity: 0 is 1 MiB or
	// /proc/sys/fs/pipe-max-size when that is less. Answers larger than
	// it are read into memory.
	SplicePipeBytes int
}

// Gateway forwards Kafka requests to an upstream cluster.
type Gateway struct {
	cfg  Config
	log  *slog.Logger
	dial dialer          // opens every upstream connection (TCP or TLS, then SASL)
	warn *limits.WarnLog // limit violations, once per second per limit

	versions [kafkaKeys]versionRange

	mu      sync.RWMutex
	brokers map[int32]*upstreamBroker
	leaders map[string][]int32 // topic -> partition -> leader node
	// coordinators caches each REST consumer group's coordinator node
	// (at most maxCoordinators).
	coordinators map[string]int32
	next         int // round robin for "any broker" requests

	stop chan struct{}
	kick chan struct{} // capacity 1: an upstream connection broke, re-read the cluster now
	done sync.WaitGroup

	upstreamConns *metrics.Gauge
	forwarded     *metrics.Counter
	// forwardedPieces counts Produce frames forwarded in the pieces they
	// arrived in (ServeRawChunks).
	forwardedPieces *metrics.Counter
	failed          *metrics.Counter
	fetchClamped    *metrics.Counter
	// retired counts upstream brokers seen at a new address, whose
	// connections to the old one were retired.
	retired *metrics.Counter
	// unmapped counts broker names pointed at port 0: no listener port
	// was left for the broker (local).
	unmapped *metrics.Counter
	// fetchFitted counts forwarded Fetches whose byte limit was lowered
	// to the memory budget's room for the client (loop.ClientConn.FetchRoom).
	fetchFitted *metrics.Counter
	connCount   atomic.Int64
	// pipes relays Fetch answers through pipes (splice.go); nil: off.
	pipes *pipePool

	// bootstrapped is set once the upstream's versions and brokers are
	// known; reachable while the last contact with an upstream broker
	// (metadata refresh or dial) succeeded. Together they are /ready.
	bootstrapped atomic.Bool
	reachable    atomic.Bool
}

// errGatewayClosed fails what is pending when the gateway shuts down.
var errGatewayClosed = errors.New("gateway closing")

const kafkaKeys = 128

type versionRange struct {
	min, max int16
	ok       bool
}

// upstreamBroker is one broker of the upstream cluster and its pool.
type upstreamBroker struct {
	id        int32
	addr      string // guarded by mu: move changes it
	localPort int32

	mu    sync.Mutex
	conns []*upstreamConn
	// leases carry the waiting requests (long polls, group joins) of
	// clients whose connection is shared, one at a time while they
	// suffice; at most MaxUpstreamPerBroker.
	leases       []*upstreamConn
	byClient     map[uint64]*upstreamConn
	dialFailedAt time.Time // last failed dial, for dialBackoff
	lastDial     dialOutcome
	dialing      int // dials under way
}

// move points the broker at addr when it has moved there (it reports the
// old address): new connections go to addr, and those to the old address
// are retired, closed once their requests are answered. A node id that
// answers at a new address is a broker restarted or rescheduled; what
// still answers at the old one (a process on its way out, a host that
// went away and may leave the connection half open) must get no more
// requests: it would answer NOT_LEADER for partitions the node leads
// now, or nothing, and the clients behind it would retry forever.
func (b *upstreamBroker) move(g *Gateway, addr string) (from string, moved bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.addr == addr {
		return "", false
	}
	from, b.addr = b.addr, addr
	for _, u := range b.conns {
		u.retire()
	}
	for _, u := range b.leases {
		u.retire()
	}
	b.conns = g.keepLive(b.conns)
	b.leases = g.keepLive(b.leases)
	g.retired.Inc()
	return from, true
}

// dialOutcome is how the last dial to a broker ended.
type dialOutcome uint8

const (
	dialNone dialOutcome = iota
	dialOK
	dialFailed
)

// New returns a gateway; Start connects it.
func New(cfg Config) (*Gateway, error) {
	if len(cfg.Seeds) == 0 {
		return nil, errors.New("gateway: --upstream-brokers is empty")
	}
	if cfg.PortFirst <= 0 || cfg.PortLast < cfg.PortFirst || cfg.PortLast > 65535 {
		return nil, fmt.Errorf("gateway: --gateway-listen-ports %d-%d is not a port range", cfg.PortFirst, cfg.PortLast)
	}
	if cfg.MaxUpstreamPerBroker <= 0 {
		cfg.MaxUpstreamPerBroker = 1000
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.NewSet()
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger, dial: dialer{timeout: cfg.DialTimeout, tls: cfg.UpstreamTLS, sasl: cfg.SASL, authTimeout: cfg.RequestTimeout}, warn: limits.NewWarnLog(cfg.Logger, time.Second), brokers: map[int32]*upstreamBroker{}, leaders: map[string][]int32{}, coordinators: map[string]int32{}, stop: make(chan struct{}), kick: make(chan struct{}, 1)}
	g.upstreamConns = cfg.Metrics.NewGauge("floodgate_gateway_upstream_connections", func() float64 { return float64(g.connCount.Load()) })
	g.forwarded = cfg.Metrics.NewCounter("floodgate_gateway_requests_forwarded_total")
	g.forwardedPieces = cfg.Metrics.NewCounter("floodgate_gateway_produce_in_pieces_total")
	g.failed = cfg.Metrics.NewCounter("floodgate_gateway_upstream_errors_total")
	g.retired = cfg.Metrics.NewCounter("floodgate_gateway_upstream_moves_total")
	g.unmapped = cfg.Metrics.NewCounter("floodgate_gateway_unmapped_brokers_total")
	g.fetchClamped = cfg.Metrics.NewCounter(`floodgate_gateway_fetch_clamped_total{limit="max-fetch-bytes"}`)
	g.fetchFitted = cfg.Metrics.NewCounter(`floodgate_gateway_fetch_clamped_total{limit="` + limits.Label(limits.RequestMemoryBytes) + `"}`)
	g.pipes = newPipePool(cfg.SplicePipes, cfg.SplicePipeBytes, cfg.Metrics, g.warn)
	return g, nil
}

// Start reads the upstream cluster's versions and brokers, opens a
// listener per broker, and keeps following the cluster. An upstream that
// does not answer is not fatal: the gateway serves (answering clients with
// retriable errors, /ready false) and keeps trying with a bounded backoff.
// An upstream that refuses floodgate's SASL credentials is: retrying does
// not mend a wrong password, and the operator learns it at once.
func (g *Gateway) Start(ctx context.Context) error {
	g.warnLoopbackAdvertised()
	if err := g.bootstrapAny(ctx); err != nil {
		if isAuthRefused(err) {
			return fmt.Errorf("gateway: %w", err)
		}
		g.log.Warn("no upstream seed answered; serving and retrying in the background",
			"seeds", g.cfg.Seeds, "error", err.Error())
	}
	g.done.Add(1)
	go g.refreshLoop()
	return nil
}

// Ready reports whether the upstream cluster is known and was reachable at
// the last contact (for /ready).
func (g *Gateway) Ready() bool { return g.bootstrapped.Load() && g.reachable.Load() }

// bootstrapAny bootstraps from the first seed that answers.
func (g *Gateway) bootstrapAny(ctx context.Context) error {
	var errs []error
	for _, seed := range g.cfg.Seeds {
		err := g.bootstrap(ctx, seed)
		if err == nil {
			g.bootstrapped.Store(true)
			g.reachable.Store(true)
			g.log.Info("upstream cluster reached", "seed", seed)
			return nil
		}
		errs = append(errs, fmt.Errorf("seed %s: %w", seed, err))
	}
	return errors.Join(errs...)
}

// warnLoopbackAdvertised warns about a configuration in which remote
// clients cannot connect: the per-broker listeners are advertised on a
// loopback host while the upstream cluster is elsewhere, so the gateway is
// evidently meant for clients on other machines.
func (g *Gateway) warnLoopbackAdvertised() {
	if !isLoopbackHost(g.cfg.AdvertisedHost) {
		return
	}
	for _, seed := range g.cfg.Seeds {
		host, _, err := net.SplitHostPort(seed)
		if err == nil && !isLoopbackHost(host) {
			g.log.Warn("gateway advertises a loopback host but the upstream cluster is remote: clients on other machines will be sent to themselves; set --gateway-advertised-host (or --advertised-kafka-addr) to an address they can reach",
				"advertised_host", g.cfg.AdvertisedHost, "upstream", seed)
			return
		}
	}
}

// isLoopbackHost reports a loopback IP or the name localhost.
func isLoopbackHost(host string) bool {
	if host == "" || strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Close stops following the cluster and closes upstream connections.
func (g *Gateway) Close() {
	close(g.stop)
	g.done.Wait()
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, b := range g.brokers {
		b.mu.Lock()
		for _, u := range b.conns {
			u.close(errGatewayClosed)
		}
		for _, u := range b.leases {
			u.close(errGatewayClosed)
		}
		b.conns, b.leases = nil, nil
		b.mu.Unlock()
	}
	g.pipes.close()
}

// bootstrap asks one seed for its ApiVersions and Metadata.
func (g *Gateway) bootstrap(ctx context.Context, seed string) error {
	av := kmsg.NewPtrApiVersionsRequest()
	av.SetVersion(3)
	av.ClientSoftwareName, av.ClientSoftwareVersion = "floodgate", "gateway"
	resp, err := g.control(ctx, seed, av)
	if err != nil {
		return err
	}
	avr := resp.(*kmsg.ApiVersionsResponse)
	if avr.ErrorCode != 0 {
		return fmt.Errorf("api versions from %s: error %d", seed, avr.ErrorCode)
	}
	g.setVersions(avr)
	return g.refreshFrom(ctx, seed)
}

// versionCaps caps APIs whose newer versions the gateway cannot serve:
// Produce v13 names topics by id, which the oversize skimmer (with which
// floodgate's loop answers a refused request itself) does not read; Fetch
// v16+ answers may name brokers (KIP-951 NodeEndpoints, on a leader
// change) with their upstream addresses, and a Fetch answer is relayed
// unread (spliced, or passed through whole), so its brokers could not be
// pointed at floodgate: a client would go round the gateway to them.
var versionCaps = map[int16]int16{0: 12, 1: 15}

// setVersions keeps, per key, the upstream's range capped at what kmsg
// (and so the rewriting here) understands.
func (g *Gateway) setVersions(avr *kmsg.ApiVersionsResponse) {
	var vs [kafkaKeys]versionRange
	for _, k := range avr.ApiKeys {
		if k.ApiKey < 0 || int(k.ApiKey) >= kafkaKeys {
			continue
		}
		req := kmsg.RequestForKey(k.ApiKey)
		if req == nil {
			continue
		}
		max := k.MaxVersion
		if m := req.MaxVersion(); m < max {
			max = m
		}
		if c, ok := versionCaps[k.ApiKey]; ok && c < max {
			max = c
		}
		if max < k.MinVersion {
			continue
		}
		vs[k.ApiKey] = versionRange{min: k.MinVersion, max: max, ok: true}
	}
	g.mu.Lock()
	g.versions = vs
	g.mu.Unlock()
}

// VersionRange reports what the gateway forwards.
func (g *Gateway) VersionRange(key int16) (min, max int16, ok bool) {
	if key < 0 || int(key) >= kafkaKeys {
		return 0, 0, false
	}
	g.mu.RLock()
	v := g.versions[key]
	g.mu.RUnlock()
	return v.min, v.max, v.ok
}

// Retries while the upstream does not answer start at retryMin and double
// up to retryMax (and never beyond the refresh interval).
const (
	retryMin = 100 * time.Millisecond
	retryMax = 5 * time.Second
)

// refreshLoop re-reads the cluster every RefreshInterval; while the
// upstream does not answer (or was never reached) it retries sooner, with
// a bounded backoff.
func (g *Gateway) refreshLoop() {
	defer g.done.Done()
	retry := retryMin
	t := time.NewTimer(g.nextRefresh(&retry, true))
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
		case <-g.kick:
			if !t.Stop() {
				<-t.C
			}
		}
		err := g.refreshOnce()
		g.reachable.Store(err == nil)
		if err != nil {
			g.warn.Warn("upstream:refresh", "upstream cluster unreachable; retrying", "error", err.Error(),
				"retry_in", retry.String())
		}
		t.Reset(g.nextRefresh(&retry, err == nil && g.bootstrapped.Load()))
	}
}

// upstreamBroke asks for a refresh at once: the cluster may have moved or
// gone (for /ready), and no refresh should wait for the interval.
func (g *Gateway) upstreamBroke() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// nextRefresh returns the wait before the next attempt: the refresh
// interval after a success, the doubling retry delay after a failure.
func (g *Gateway) nextRefresh(retry *time.Duration, ok bool) time.Duration {
	if ok && g.bootstrapped.Load() {
		*retry = retryMin
		return g.cfg.RefreshInterval
	}
	d := *retry
	*retry = min(*retry*2, retryMax, g.cfg.RefreshInterval)
	return d
}

// refreshOnce bootstraps (first contact) or re-reads the brokers.
func (g *Gateway) refreshOnce() error {
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.RequestTimeout)
	defer cancel()
	if !g.bootstrapped.Load() {
		return g.bootstrapAny(ctx)
	}
	var errs []error
	for _, addr := range g.knownAddrs() {
		err := g.refreshFrom(ctx, addr)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// knownAddrs lists upstream broker addresses, seeds last.
func (g *Gateway) knownAddrs() []string {
	g.mu.RLock()
	brokers := make([]*upstreamBroker, 0, len(g.brokers))
	for _, b := range g.brokers {
		brokers = append(brokers, b)
	}
	g.mu.RUnlock()
	out := make([]string, 0, len(brokers)+len(g.cfg.Seeds))
	for _, b := range brokers {
		// b.mu guards addr: a rewritten answer moves a broker (move)
		// while the refresh loop lists the addresses. Taken after g.mu
		// is let go, so no lock order between the two is assumed.
		b.mu.Lock()
		out = append(out, b.addr)
		b.mu.Unlock()
	}
	return append(out, g.cfg.Seeds...)
}

// refreshFrom reads the cluster's brokers from addr.
func (g *Gateway) refreshFrom(ctx context.Context, addr string) error {
	mr := kmsg.NewPtrMetadataRequest()
	mr.SetVersion(7)
	resp, err := g.control(ctx, addr, mr)
	if err != nil {
		return err
	}
	meta := resp.(*kmsg.MetadataResponse)
	err = g.learn(meta)
	g.keepTopicsOf(meta)
	return err
}

// keepTopicsOf forgets the leaders of topics a Metadata answer naming every
// topic (the refresh asks for all) no longer names: deleted upstream, they
// would stay in the map for the gateway's lifetime. A topic created since is
// learned again from the next answer that names it.
func (g *Gateway) keepTopicsOf(meta *kmsg.MetadataResponse) {
	names := make(map[string]struct{}, len(meta.Topics))
	for _, t := range meta.Topics {
		if t.Topic != nil {
			names[*t.Topic] = struct{}{}
		}
	}
	g.mu.Lock()
	for topic := range g.leaders {
		if _, ok := names[topic]; !ok {
			delete(g.leaders, topic)
		}
	}
	g.mu.Unlock()
}

// learn records brokers (opening listeners for new ones) and leaders.
func (g *Gateway) learn(meta *kmsg.MetadataResponse) error {
	sort.Slice(meta.Brokers, func(i, j int) bool { return meta.Brokers[i].NodeID < meta.Brokers[j].NodeID })
	var unmapped error // a broker with no port left: the rest is learned still
	for _, br := range meta.Brokers {
		addr := net.JoinHostPort(br.Host, strconv.Itoa(int(br.Port)))
		if _, err := g.ensureBroker(br.NodeID, addr); err != nil && unmapped == nil {
			unmapped = err
		}
	}
	g.mu.Lock()
	for _, t := range meta.Topics {
		if t.Topic == nil || t.ErrorCode != 0 {
			continue
		}
		leaders := make([]int32, len(t.Partitions))
		for _, p := range t.Partitions {
			if int(p.Partition) < len(leaders) {
				leaders[p.Partition] = p.Leader
			}
		}
		g.leaders[*t.Topic] = leaders
	}
	g.mu.Unlock()
	return unmapped
}

// ensureBroker returns the broker, registering it (and its listener) if new.
func (g *Gateway) ensureBroker(id int32, addr string) (*upstreamBroker, error) {
	g.mu.RLock() // every broker of every rewritten answer comes here: read-lock
	b, ok := g.brokers[id]
	port := g.cfg.PortFirst + len(g.brokers)
	g.mu.RUnlock()
	if ok {
		if from, moved := b.move(g, addr); moved {
			g.log.Info("upstream broker moved", "node", id, "from", from, "to", addr)
		}
		return b, nil
	}
	if port > g.cfg.PortLast {
		return nil, fmt.Errorf("gateway: no port left in --gateway-listen-ports for upstream broker %d", id)
	}
	bound, err := g.cfg.AddListener(net.JoinHostPort(g.cfg.ListenHost, strconv.Itoa(port)), id)
	if err != nil {
		return nil, err
	}
	b = &upstreamBroker{id: id, addr: addr, localPort: int32(bound.(*net.TCPAddr).Port), byClient: map[uint64]*upstreamConn{}}
	g.mu.Lock()
	if prev, ok := g.brokers[id]; ok { // raced with another refresh
		g.mu.Unlock()
		return prev, nil
	}
	g.brokers[id] = b
	g.mu.Unlock()
	g.log.Info("upstream broker mapped", "node", id, "upstream", addr, "local_port", b.localPort)
	return b, nil
}

// control sends one request on a short-lived connection (start-up and
// refresh, off the request path).
func (g *Gateway) control(ctx context.Context, addr string, req kmsg.Request) (kmsg.Response, error) {
	u := newUpstream(-1, addr, g.dial, g.cfg.RequestTimeout, nil, nil, nil)
	defer u.close(errUpstreamClosed)
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("floodgate-gateway")).AppendRequest(nil, req, 0)
	h := kafka.Header{APIKey: req.Key(), APIVersion: req.GetVersion(), Flexible: req.IsFlexible()}
	type result struct {
		frame []byte
		err   error
	}
	ch := make(chan result, 1)
	if err := u.send(frame[kafka.LengthSize:], nil, true, g.cfg.RequestTimeout, func(f []byte, err error) { ch <- result{f, err} }); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		return kafka.DecodeResponse(&h, r.frame)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func joinHostPort(host string, port int32) string {
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// check the gateway is a raw handler for the loop.
var _ loop.RawKafkaHandler = (*Gateway)(nil)
