package httpapi

// REST Proxy v2 consumer instances (POST /consumers/{group} and the
// /consumers/{group}/instances/{name}/... routes), as Confluent's REST
// Proxy defines them. An instance is a real member of its Kafka group: it
// joins, syncs, heartbeats, commits and fetches with kmsg requests to the
// Kafka handler, so it shares partitions with any other consumer of the
// group (a kgo or Java client) on the embedded broker and through the
// gateway alike.
//
// Each instance is served by one goroutine of its own (its actor): HTTP
// requests hand it a command and return at once, so a GET .../records
// that waits for records (or for a rebalance) holds no pool worker; the
// actor answers the request when it is done. The actor also heartbeats
// every few seconds and rejoins as soon as the coordinator announces a
// rebalance, so an instance that is not being polled never stalls its
// group (Java's consumer only rejoins inside poll()).
//
// What an instance holds (its goroutine, maps of its partitions, queued
// commands, the fetched batches of a poll) is bounded by
// --max-rest-consumer-instances (and per client IP), the command queue of
// instanceQueue entries and --max-rest-consumer-buffered-bytes, and is
// released when it is deleted or expires after
// --rest-consumer-instance-timeout without a request. Deviations from
// Confluent: records are never buffered between polls (a poll answers
// what its one fetch returned and the positions move past exactly those
// records), and avro/jsonschema/protobuf formats are not served. The
// gateway routes a request by its first partition and group requests to
// any upstream broker: fetches and ListOffsets are therefore sent one per
// partition leader, and group requests are sent again past
// NOT_COORDINATOR (callGroup).

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"runtime/debug"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// Membership timing of an instance. The actor heartbeats every
// heartbeatEvery; sessions and rebalances are as long as Kafka's defaults
// for a client that answers promptly.
const (
	sessionTimeout   = 30 * time.Second
	rebalanceTimeout = 30 * time.Second
	heartbeatEvery   = 3 * time.Second
	// kafkaSlack is added to a Kafka request's own wait to bound the wait
	// for its answer.
	kafkaSlack = 10 * time.Second
	// shutdownWait bounds each Kafka request of a deleted instance (the
	// last commit and the LeaveGroup).
	shutdownWait = 2 * time.Second
	// instanceQueue bounds the commands waiting for one instance's actor:
	// Confluent's proxy serialises the requests of an instance too.
	instanceQueue = 8
	// defaultPollWait is consumer.request.timeout.ms's default.
	defaultPollWait = time.Second
)

// Confluent REST Proxy error codes used by the consumer routes.
const (
	codeInstanceNotFound = 40403
	codeFormatMismatch   = 40601
	codeAlreadySubscribe = 40901
	codeInstanceExists   = 40902
	codeIllegalState     = 40903
	codeInvalidConfig    = 42204
	codeTooMany          = 42901
	codeKafka            = 50002
	codeKafkaRetriable   = 50003
)

// balancers are the assignors an instance offers, in order of preference:
// those of kgo and of the Java client, so that a REST instance can share
// a group with either (the coordinator picks the leader's first protocol
// every member supports).
func balancers() []kgo.GroupBalancer {
	return []kgo.GroupBalancer{kgo.CooperativeStickyBalancer(), kgo.RangeBalancer(), kgo.StickyBalancer(), kgo.RoundRobinBalancer()}
}

// tp is a topic partition.
type tp struct {
	topic     string
	partition int32
}

func sortTPs(s []tp) {
	sort.Slice(s, func(i, j int) bool {
		if s[i].topic != s[j].topic {
			return s[i].topic < s[j].topic
		}
		return s[i].partition < s[j].partition
	})
}

// consumerManager holds every consumer instance and their limits.
type consumerManager struct {
	a   *API
	cfg *limits.HTTPConfig

	mu    sync.Mutex
	byKey map[string]*instance // group + "\x00" + name
	perIP map[netip.Addr]int

	buffered atomic.Int64 // fetched bytes held by polls in progress

	created, expired, deleted *metrics.Counter
	tripInstances, tripPerIP  *metrics.Counter
	tripBuffered              *metrics.Counter

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func newConsumerManager(a *API) *consumerManager {
	set := a.cfg.Metrics
	m := &consumerManager{a: a, cfg: a.cfg.Limits, byKey: map[string]*instance{}, perIP: map[netip.Addr]int{},
		created: set.NewCounter("floodgate_rest_consumer_instances_created_total"),
		expired: set.NewCounter("floodgate_rest_consumer_instances_expired_total"),
		deleted: set.NewCounter("floodgate_rest_consumer_instances_deleted_total"),
		stop:    make(chan struct{}), done: make(chan struct{})}
	// The tripped counters are the gate's (floodgate_http_limit_tripped_total{limit}),
	// registered before the API serves anything.
	for _, f := range []string{"max-rest-consumer-instances", "max-rest-consumer-instances-per-client", "max-rest-consumer-buffered-bytes"} {
		a.gate.tripped[f] = set.NewCounter(`floodgate_http_limit_tripped_total{limit="` + f + `"}`)
	}
	m.tripInstances = a.gate.tripped["max-rest-consumer-instances"]
	m.tripPerIP = a.gate.tripped["max-rest-consumer-instances-per-client"]
	m.tripBuffered = a.gate.tripped["max-rest-consumer-buffered-bytes"]
	set.NewGauge("floodgate_rest_consumer_instances", func() float64 {
		m.mu.Lock()
		defer m.mu.Unlock()
		return float64(len(m.byKey))
	})
	set.NewGauge("floodgate_rest_consumer_buffered_bytes", func() float64 { return float64(m.buffered.Load()) })
	go m.reap()
	return m
}

// reap deletes instances idle for --rest-consumer-instance-timeout. It
// scans every instance once per tick: their number is bounded by
// --max-rest-consumer-instances.
func (m *consumerManager) reap() {
	defer close(m.done)
	every := min(max(m.cfg.RESTConsumerTimeout/4, 10*time.Millisecond), time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case now := <-t.C:
			var idle []*instance
			m.mu.Lock()
			for _, in := range m.byKey {
				if now.Sub(time.Unix(0, in.lastUsed.Load())) > m.cfg.RESTConsumerTimeout && in.busy.Load() == 0 {
					idle = append(idle, in)
					m.removeLocked(in)
				}
			}
			m.mu.Unlock()
			for _, in := range idle {
				m.expired.Inc()
				m.a.gate.warn.Warn("rest-consumer-expired", "REST consumer instance expired",
					"limit", "rest-consumer-instance-timeout", "configured", m.cfg.RESTConsumerTimeout.String(),
					"group", in.group, "instance", in.name)
				close(in.stop)
			}
		}
	}
}

// close deletes every instance and waits for their actors (each bounded
// by its shutdown requests' waits).
func (m *consumerManager) close() {
	m.closeOnce.Do(m.closeAll)
}

func (m *consumerManager) closeAll() {
	close(m.stop)
	<-m.done
	m.mu.Lock()
	var all []*instance
	for _, in := range m.byKey {
		all = append(all, in)
		m.removeLocked(in)
	}
	m.mu.Unlock()
	for _, in := range all {
		close(in.stop)
	}
	for _, in := range all {
		<-in.done
	}
}

// removeLocked takes in out of the manager; no command can reach it
// afterwards. The caller holds m.mu and closes in.stop after unlocking.
func (m *consumerManager) removeLocked(in *instance) {
	delete(m.byKey, in.key)
	if n := m.perIP[in.ip] - 1; n > 0 {
		m.perIP[in.ip] = n
	} else {
		delete(m.perIP, in.ip)
	}
	in.closed = true
}

// instanceSettings are the settings of POST /consumers/{group}.
type instanceSettings struct {
	name       string
	asJSON     bool
	reset      int64 // -2 earliest, -1 latest, 0 none
	autoCommit bool
	pollWait   time.Duration
}

// create registers a new instance, or answers why not.
func (m *consumerManager) create(group string, s instanceSettings, ip netip.Addr, user string) (*instance, *loop.HTTPResponse) {
	in := &instance{m: m, group: group, name: s.name, key: group + "\x00" + s.name, ip: ip, user: user, set: s,
		cmds: make(chan command, instanceQueue), stop: make(chan struct{}), done: make(chan struct{}),
		positions: map[tp]int64{}}
	in.lastUsed.Store(time.Now().UnixNano())
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.byKey[in.key]; ok {
		return nil, restError(409, codeInstanceExists, "Consumer with specified consumer ID already exists in the specified consumer group.")
	}
	if max := m.cfg.MaxRESTConsumers; len(m.byKey) >= max {
		m.tripInstances.Inc()
		return nil, m.refuse("max-rest-consumer-instances", int64(max), int64(len(m.byKey))+1,
			"the server holds --max-rest-consumer-instances consumer instances; delete unused ones")
	}
	if max := m.cfg.MaxRESTConsumersPerClient; max > 0 && m.perIP[ip] >= max {
		m.tripPerIP.Inc()
		return nil, m.refuse("max-rest-consumer-instances-per-client", int64(max), int64(m.perIP[ip])+1,
			"this client IP holds --max-rest-consumer-instances-per-client consumer instances; delete unused ones")
	}
	m.byKey[in.key] = in
	m.perIP[ip]++
	m.created.Inc()
	go in.run()
	return in, nil
}

// refuse answers a consumer limit: 429, Retry-After, the Confluent error
// shape with the limit's name and values; counted by the caller, logged
// here (rate-limited).
func (m *consumerManager) refuse(limit string, configured, actual int64, msg string) *loop.HTTPResponse {
	m.a.gate.warn.Warn(limit, "REST consumer request refused", "limit", limit, "configured", configured, "actual", actual)
	resp := limitAnswer(429, codeTooMany, limit, configured, actual, msg)
	resp.Header = append(resp.Header, [2]string{"Retry-After", "1"})
	return resp
}

// limitAnswer is a limit's refusal in Confluent's error shape, with the
// limit named as the loop's refusals name it.
func limitAnswer(status, code int, limit string, configured, actual int64, msg string) *loop.HTTPResponse {
	return jsonAnswer(status, ctV2, struct {
		ErrorCode  int    `json:"error_code"`
		Message    string `json:"message"`
		Limit      string `json:"limit"`
		Configured int64  `json:"configured"`
		Actual     int64  `json:"actual,omitempty"`
	}{code, msg, limit, configured, actual})
}

// lookup returns the instance named by a request of user and marks it
// used. Another user's instance is not found: its name says nothing, and
// polling, committing or deleting it would act on its creator's group
// membership.
func (m *consumerManager) lookup(group, name, user string) *instance {
	m.mu.Lock()
	in := m.byKey[group+"\x00"+name]
	m.mu.Unlock()
	if in == nil || in.user != user {
		return nil
	}
	in.lastUsed.Store(time.Now().UnixNano())
	return in
}

// delete removes an instance; its actor leaves the group and exits.
func (m *consumerManager) delete(in *instance) bool {
	m.mu.Lock()
	if in.closed {
		m.mu.Unlock()
		return false
	}
	m.removeLocked(in)
	m.mu.Unlock()
	m.deleted.Inc()
	close(in.stop)
	return true
}

// submit queues fn for the instance's actor, or answers the request
// itself: 404 once the instance is gone, 429 when its queue is full.
// Queued under m.mu, so that a command is either queued before the
// instance is closed (and answered by the actor's drain) or refused.
func (m *consumerManager) submit(in *instance, c *call, fn func()) {
	m.mu.Lock()
	if in.closed {
		m.mu.Unlock()
		c.respond(instanceNotFound())
		return
	}
	in.busy.Add(1)
	select {
	case in.cmds <- command{c: c, fn: fn}:
		m.mu.Unlock()
	default:
		in.busy.Add(-1)
		m.mu.Unlock()
		resp := restError(429, codeTooMany, fmt.Sprintf("this consumer instance has %d requests waiting; send one at a time", instanceQueue))
		resp.Header = [][2]string{{"Retry-After", "1"}}
		c.respond(resp)
	}
}

func instanceNotFound() *loop.HTTPResponse {
	return restError(404, codeInstanceNotFound, "Consumer instance not found.")
}

// command is one request for an instance's actor.
type command struct {
	c  *call
	fn func()
}

// instance is one consumer instance. The fields below "actor state" are
// only touched by its actor goroutine.
type instance struct {
	m                *consumerManager
	group, name, key string
	ip               netip.Addr
	// user is the HTTP user who created the instance ("" without
	// --http-auth): only that user reaches it, and its Kafka requests are
	// checked against that user's ACLs.
	user string
	set  instanceSettings

	lastUsed atomic.Int64 // unix nanos of the last request
	busy     atomic.Int32 // commands queued or running: never idle then
	closed   bool         // under m.mu: removed, takes no more commands
	cmds     chan command
	stop     chan struct{} // closed when deleted or expired
	done     chan struct{} // closed when the actor has exited

	// actor state
	abort      <-chan struct{}    // stop while serving; nil during shutdown
	topics     []string           // subscribed topics (sorted)
	pattern    *regexp.Regexp     // subscribed pattern
	manual     bool               // partitions assigned by POST .../assignments
	assigned   []tp               // sorted
	positions  map[tp]int64       // next offset to read, for assigned partitions that have one
	leaders    map[string][]int32 // partition leaders of the assigned topics, by partition (Metadata)
	memberID   string
	generation int32
	protocol   string
	member     bool // joined and synced in generation
	rejoin     bool // the group is rebalancing (or the subscription changed)
	nextHB     time.Time
	nextJoin   time.Time // no background join before (after a failed one)
}

// run is the actor: commands, heartbeats, and the goodbye.
func (in *instance) run() {
	defer close(in.done)
	in.abort = in.stop
	t := time.NewTicker(heartbeatEvery / 3)
	defer t.Stop()
	for {
		select {
		case <-in.stop:
			in.shutdown()
			return
		case cmd := <-in.cmds:
			in.exec(cmd)
		case <-t.C:
			in.keepAliveRecovering()
		}
	}
}

// exec runs one command; a panic answers its request 500 and the actor
// goes on.
func (in *instance) exec(cmd command) {
	defer in.busy.Add(-1)
	defer in.lastUsed.Store(time.Now().UnixNano())
	defer cmd.c.recover()
	cmd.fn()
}

// shutdown answers the queued commands 404, commits (auto.commit.enable)
// and leaves the group. Everything the instance held is garbage after it.
func (in *instance) shutdown() {
	in.abort = nil
	for {
		select {
		case cmd := <-in.cmds:
			in.busy.Add(-1)
			cmd.c.respond(instanceNotFound())
			continue
		default:
		}
		break
	}
	if in.set.autoCommit && len(in.positions) > 0 {
		_ = in.commit(in.positionList(nil), shutdownWait)
	}
	if in.member && in.memberID != "" {
		in.leaveGroup(shutdownWait)
	}
	in.positions, in.assigned, in.topics = nil, nil, nil
}

// leaveGroup tells the coordinator the instance's member leaves, waiting
// at most wait; the answer does not matter (a member that is gone already
// is gone either way).
func (in *instance) leaveGroup(wait time.Duration) {
	req, ok := kafkaRequest[kmsg.LeaveGroupRequest](in.m.a, 0, 4)
	if !ok {
		return
	}
	req.Group, req.MemberID = in.group, in.memberID
	lm := kmsg.NewLeaveGroupRequestMember()
	lm.MemberID = in.memberID
	req.Members = []kmsg.LeaveGroupRequestMember{lm}
	_, _ = in.callGroup(req, wait)
}

// errAborted: the instance was deleted while waiting for Kafka.
var errAborted = errors.New("consumer instance deleted")

// send hands req to the Kafka handler as the instance's user: the ACL
// guard checks it with that user's ACLs, as it checks the REST routes.
func (in *instance) send(req kmsg.Request, respond func(kmsg.Response)) {
	if ch, ok := in.m.a.cfg.Kafka.(loop.ClientKafkaHandler); ok {
		ch.ServeKafkaFrom(loop.ClientConn{Addr: in.ip.String(), ClientID: clientID, User: in.user}, req, respond)
		return
	}
	in.m.a.cfg.Kafka.ServeKafka(req, clientID, in.ip.String(), respond)
}

// call sends req to the Kafka handler and waits for the answer, at most
// wait (the request's own wait plus slack): the actor's requests are
// sequential, as a consumer's are.
func (in *instance) call(req kmsg.Request, wait time.Duration) (kmsg.Response, error) {
	ch := make(chan kmsg.Response, 1) // the responder never blocks
	in.send(req, func(r kmsg.Response) { ch <- r })
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case r := <-ch:
		if r == nil {
			return nil, errors.New("no response from the Kafka handler")
		}
		return r, nil
	case <-t.C:
		return nil, fmt.Errorf("no answer to %s within %v", kmsg.NameForKey(req.Key()), wait)
	case <-in.abort:
		return nil, errAborted
	}
}

// callGroup is call for a request to the group's coordinator, sent again
// while the answer says the coordinator moved or is not ready (a gateway
// finds the coordinator anew after such an answer; a cluster electing one
// answers COORDINATOR_NOT_AVAILABLE for a while), with a backoff from
// groupRetryMin doubling to groupRetryMax, up to groupRetries times.
func (in *instance) callGroup(req kmsg.Request, wait time.Duration) (kmsg.Response, error) {
	backoff := groupRetryMin
	for attempt := 0; ; attempt++ {
		resp, err := in.call(req, wait)
		if err != nil || !kafka.CoordinatorError(resp) || attempt == groupRetries {
			return resp, err
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-in.abort:
			t.Stop()
			return nil, errAborted
		}
		backoff = min(2*backoff, groupRetryMax)
	}
}

// Retries of a group request whose coordinator moved or is not ready:
// 4.55 s of waits in all (50 ms doubling to 1 s, 8 times).
const (
	groupRetries  = 8
	groupRetryMin = 50 * time.Millisecond
	groupRetryMax = time.Second
)

// leaderGroups splits ps by partition leader, learned with Metadata and
// cached: a gateway sends a partition request to the leader of its first
// partition, so each group is sent as a request of its own (against the
// embedded broker there is one group).
func (in *instance) leaderGroups(ps []tp) [][]tp {
	if in.leaders == nil {
		in.leaders = map[string][]int32{}
	}
	var missing []string
	for _, p := range ps {
		if _, ok := in.leaders[p.topic]; !ok && !slices.Contains(missing, p.topic) {
			missing = append(missing, p.topic)
		}
	}
	if len(missing) > 0 {
		if mr, err := in.metadata(missing); err == nil {
			for _, t := range mr.Topics {
				if t.Topic == nil || t.ErrorCode != 0 {
					continue
				}
				ls := make([]int32, len(t.Partitions))
				for _, p := range t.Partitions {
					if p.Partition >= 0 && int(p.Partition) < len(ls) {
						ls[p.Partition] = p.Leader
					}
				}
				in.leaders[*t.Topic] = ls
			}
		}
	}
	var out [][]tp
	index := map[int32]int{}
	for _, p := range ps {
		leader := int32(-1)
		if ls := in.leaders[p.topic]; int(p.partition) < len(ls) {
			leader = ls[p.partition]
		}
		i, ok := index[leader]
		if !ok {
			i = len(out)
			index[leader] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], p)
	}
	return out
}

// keepAliveRecovering runs keepAlive; a panic in it (a bug, or an answer
// of a shape nobody expected) is counted and logged and the instance goes
// on to rejoin, instead of ending the process from the actor goroutine.
func (in *instance) keepAliveRecovering() {
	defer func() {
		if p := recover(); p != nil {
			a := in.m.a
			a.gate.panics.Inc()
			if a.gate.warn.Allow("panic") {
				a.cfg.Logger.Error("REST consumer instance heartbeat panicked; it rejoins", "group", in.group,
					"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			}
			in.rejoin = true
		}
	}()
	in.keepAlive()
}

// keepAlive heartbeats when one is due, and rejoins when the group
// rebalances. Between requests it is the only thing an instance does.
func (in *instance) keepAlive() {
	if in.manual || !in.member || time.Now().Before(in.nextHB) {
		if in.rejoin && !in.manual && in.subscribed() {
			in.backgroundJoin()
		}
		return
	}
	in.nextHB = time.Now().Add(heartbeatEvery)
	req, ok := kafkaRequest[kmsg.HeartbeatRequest](in.m.a, 0, 4)
	if !ok {
		return
	}
	req.Group, req.Generation, req.MemberID = in.group, in.generation, in.memberID
	resp, err := in.callGroup(req, kafkaSlack)
	if err != nil {
		return
	}
	switch code := resp.(*kmsg.HeartbeatResponse).ErrorCode; code {
	case 0:
	case kafka.ErrRebalanceInProgress:
		in.rejoin = true
	case kafka.ErrUnknownMemberID, kafka.ErrIllegalGeneration, kafka.ErrFencedInstanceID:
		in.lose(code == kafka.ErrUnknownMemberID)
	default:
		in.rejoin = true
	}
	if in.rejoin {
		in.backgroundJoin()
	}
}

// backgroundJoin joins between requests; after a failure it waits a
// heartbeat interval before trying again, so that an instance whose group
// refuses it (full, say) does not send a JoinGroup every tick.
func (in *instance) backgroundJoin() {
	if time.Now().Before(in.nextJoin) {
		return
	}
	if err := in.join(); err != nil {
		in.nextJoin = time.Now().Add(heartbeatEvery)
	}
}

// lose forgets the membership (the coordinator forgot it first).
func (in *instance) lose(unknown bool) {
	if unknown {
		in.memberID = ""
	}
	in.member, in.rejoin, in.generation = false, true, -1
	in.setAssigned(nil)
}

func (in *instance) subscribed() bool { return len(in.topics) > 0 || in.pattern != nil }

// balancerNamed returns the assignor of protocol name (nil: not offered).
func balancerNamed(name string) kgo.GroupBalancer {
	for _, b := range balancers() {
		if b.ProtocolName() == name {
			return b
		}
	}
	return nil
}

// cooperative reports whether the group's current protocol keeps owned
// partitions across a rebalance.
func (in *instance) cooperative() bool {
	b := balancerNamed(in.protocol)
	return b != nil && b.IsCooperative()
}

// interests returns the subscribed topics; a pattern is matched against
// the cluster's topics at each join.
func (in *instance) interests() ([]string, error) {
	if in.pattern == nil {
		return in.topics, nil
	}
	mr, err := in.metadata(nil)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range mr.Topics {
		if t.Topic != nil && t.ErrorCode == 0 && !t.IsInternal && in.pattern.MatchString(*t.Topic) {
			out = append(out, *t.Topic)
		}
	}
	sort.Strings(out)
	return out, nil
}

// metadata asks for topics (nil: every topic).
func (in *instance) metadata(topics []string) (*kmsg.MetadataResponse, error) {
	req, ok := kafkaRequest[kmsg.MetadataRequest](in.m.a, 1, 12)
	if !ok {
		return nil, errors.New("the Kafka handler does not serve Metadata")
	}
	req.Topics = metadataTopics(topics)
	resp, err := in.call(req, kafkaSlack)
	if err != nil {
		return nil, err
	}
	return resp.(*kmsg.MetadataResponse), nil
}

// joinError wraps a failed join: the request is answered 503 (retriable).
type joinError struct{ err error }

func (e *joinError) Error() string { return "joining group: " + e.err.Error() }

// join (re)joins the group and syncs: JoinGroup (twice for a new member,
// KIP-394), the assignment when this instance leads, SyncGroup; under a
// cooperative protocol a member that lost partitions joins once more so
// that the leader can hand them on. Positions of partitions it keeps are
// kept.
func (in *instance) join() error {
	a := in.m.a
	jv, ok1 := a.version(11, 4, 9)
	sv, ok2 := a.version(14, 3, 5)
	if !ok1 || !ok2 {
		return &joinError{errors.New("the Kafka handler does not serve JoinGroup v4+ and SyncGroup v3+")}
	}
	for attempt := 0; attempt < 8; attempt++ {
		if in.abort != nil {
			select {
			case <-in.abort:
				return errAborted
			default:
			}
		}
		topics, err := in.interests()
		if err != nil {
			return &joinError{err}
		}
		if !in.cooperative() {
			// Eager protocols revoke everything before joining.
			in.commitOnRevoke(in.assigned)
			in.setAssigned(nil)
		}
		current := map[string][]int32{}
		for _, p := range in.assigned {
			current[p.topic] = append(current[p.topic], p.partition)
		}
		req := kmsg.NewPtrJoinGroupRequest()
		req.SetVersion(jv)
		req.Group = in.group
		req.SessionTimeoutMillis = int32(sessionTimeout.Milliseconds())
		req.RebalanceTimeoutMillis = int32(rebalanceTimeout.Milliseconds())
		req.MemberID = in.memberID
		req.ProtocolType = "consumer"
		for _, b := range balancers() {
			jp := kmsg.NewJoinGroupRequestProtocol()
			jp.Name = b.ProtocolName()
			jp.Metadata = b.JoinGroupMetadata(append([]string(nil), topics...), current, in.generation)
			req.Protocols = append(req.Protocols, jp)
		}
		resp, err := in.callGroup(req, rebalanceTimeout+kafkaSlack)
		if err != nil {
			return &joinError{err}
		}
		jr := resp.(*kmsg.JoinGroupResponse)
		switch jr.ErrorCode {
		case 0:
		case kafka.ErrMemberIDRequired:
			in.memberID = jr.MemberID
			continue
		case kafka.ErrUnknownMemberID:
			in.memberID = ""
			continue
		case kafka.ErrRebalanceInProgress, kafka.ErrNotCoordinator, kafka.ErrCoordinatorLoadInProgress, kafka.ErrCoordinatorNotAvailable:
			continue
		default:
			return &joinError{kafkaErr(jr.ErrorCode)}
		}
		in.memberID, in.generation = jr.MemberID, jr.Generation
		if jr.Protocol != nil {
			in.protocol = *jr.Protocol
		}
		b := balancerNamed(in.protocol)
		if b == nil {
			return &joinError{fmt.Errorf("the group chose protocol %q, which REST consumers do not offer", in.protocol)}
		}
		sreq := kmsg.NewPtrSyncGroupRequest()
		sreq.SetVersion(sv)
		sreq.Group, sreq.Generation, sreq.MemberID = in.group, jr.Generation, jr.MemberID
		sreq.ProtocolType, sreq.Protocol = kmsg.StringPtr("consumer"), kmsg.StringPtr(in.protocol)
		if jr.LeaderID == jr.MemberID && !jr.SkipAssignment {
			if sreq.GroupAssignment, err = in.balance(b, jr.Members); err != nil {
				return &joinError{err}
			}
		}
		resp, err = in.callGroup(sreq, rebalanceTimeout+kafkaSlack)
		if err != nil {
			return &joinError{err}
		}
		sr := resp.(*kmsg.SyncGroupResponse)
		switch sr.ErrorCode {
		case 0:
		case kafka.ErrUnknownMemberID:
			in.memberID = ""
			continue
		case kafka.ErrRebalanceInProgress, kafka.ErrIllegalGeneration, kafka.ErrNotCoordinator:
			continue
		default:
			return &joinError{kafkaErr(sr.ErrorCode)}
		}
		got, err := b.ParseSyncAssignment(sr.MemberAssignment)
		if err != nil {
			return &joinError{fmt.Errorf("parsing the assignment: %w", err)}
		}
		var next []tp
		for t, ps := range got {
			for _, p := range ps {
				next = append(next, tp{t, p})
			}
		}
		lost := in.setAssigned(next)
		in.member, in.rejoin = true, false
		in.nextHB = time.Now().Add(heartbeatEvery)
		if len(lost) > 0 && b.IsCooperative() {
			continue // KIP-429: give the revoked partitions back at once
		}
		return nil
	}
	in.rejoin = true
	return &joinError{errors.New("the group kept rebalancing")}
}

// balance assigns the group's partitions as its leader, with the assignor
// the group chose.
func (in *instance) balance(b kgo.GroupBalancer, members []kmsg.JoinGroupResponseMember) ([]kmsg.SyncGroupRequestGroupAssignment, error) {
	sort.Slice(members, func(i, j int) bool { // the order kgo's balancers expect
		l, r := &members[i], &members[j]
		if l.InstanceID != nil {
			return r.InstanceID == nil || *l.InstanceID < *r.InstanceID
		}
		return r.InstanceID == nil && l.MemberID < r.MemberID
	})
	mb, topics, err := b.MemberBalancer(members)
	if err != nil {
		return nil, fmt.Errorf("reading the members' metadata: %w", err)
	}
	names := make([]string, 0, len(topics))
	for t := range topics {
		names = append(names, t)
	}
	counts := map[string]int32{}
	if len(names) > 0 {
		mr, err := in.metadata(names)
		if err != nil {
			return nil, err
		}
		for _, t := range mr.Topics {
			if t.Topic != nil && t.ErrorCode == 0 {
				counts[*t.Topic] = int32(len(t.Partitions))
			}
		}
	}
	var plan kgo.IntoSyncAssignment
	if be, ok := mb.(kgo.GroupMemberBalancerOrError); ok {
		if plan, err = be.BalanceOrError(counts); err != nil {
			return nil, fmt.Errorf("balancing: %w", err)
		}
	} else {
		plan = mb.Balance(counts)
	}
	if plan == nil {
		return nil, errors.New("the assignor returned no plan")
	}
	return plan.IntoSyncAssignment(), nil
}

// setAssigned replaces the assignment, keeping the positions of the
// partitions that stay, and returns the partitions lost (their positions
// committed first under auto.commit.enable).
func (in *instance) setAssigned(next []tp) (lost []tp) {
	keep := make(map[tp]bool, len(next))
	for _, p := range next {
		keep[p] = true
	}
	for _, p := range in.assigned {
		if !keep[p] {
			lost = append(lost, p)
		}
	}
	in.commitOnRevoke(lost)
	for _, p := range lost {
		delete(in.positions, p)
	}
	sortTPs(next)
	in.assigned = next
	in.leaders = nil // learnt again for the new partitions
	return lost
}

// commitOnRevoke commits the positions of partitions about to be revoked
// when auto.commit.enable (as the Java consumer does before a rebalance).
func (in *instance) commitOnRevoke(ps []tp) {
	if !in.set.autoCommit || len(ps) == 0 || !in.member {
		return
	}
	if list := in.positionList(ps); len(list) > 0 {
		_ = in.commit(list, kafkaSlack)
	}
}

// tpOffset is a partition and an offset.
type tpOffset struct {
	tp
	offset   int64
	metadata *string // committed with the offset (nil: none)
}

// positionList returns the known positions of ps (nil: every assigned
// partition).
func (in *instance) positionList(ps []tp) []tpOffset {
	if ps == nil {
		ps = in.assigned
	}
	var out []tpOffset
	for _, p := range ps {
		if off, ok := in.positions[p]; ok {
			out = append(out, tpOffset{tp: p, offset: off})
		}
	}
	return out
}

// kafkaErr is a Kafka error code as an error.
func kafkaErr(code int16) error { return kerr.ErrorForCode(code) }

// commitError is a commit the coordinator refused.
type commitError struct {
	code int16
}

func (e *commitError) Error() string { return "commit refused: " + kafkaErr(e.code).Error() }

// commit commits offsets (the next offsets to read) for the group, as the
// current generation's member, or outside any generation for manually
// assigned partitions.
func (in *instance) commit(offs []tpOffset, wait time.Duration) error {
	if len(offs) == 0 {
		return nil
	}
	req, ok := kafkaRequest[kmsg.OffsetCommitRequest](in.m.a, 2, 8)
	if !ok {
		return errors.New("the Kafka handler does not serve OffsetCommit v2+")
	}
	req.Group = in.group
	req.Generation, req.MemberID = -1, ""
	if in.member && !in.manual {
		req.Generation, req.MemberID = in.generation, in.memberID
	}
	req.RetentionTimeMillis = -1
	byTopic := map[string]int{}
	for _, o := range offs {
		rt := requestTopic(byTopic, &req.Topics, o.topic, func(t string) kmsg.OffsetCommitRequestTopic {
			rt := kmsg.NewOffsetCommitRequestTopic()
			rt.Topic = t
			return rt
		})
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = o.partition, o.offset, -1, o.metadata
		rt.Partitions = append(rt.Partitions, rp)
	}
	resp, err := in.callGroup(req, wait)
	if err != nil {
		return err
	}
	for _, t := range resp.(*kmsg.OffsetCommitResponse).Topics {
		for _, p := range t.Partitions {
			switch p.ErrorCode {
			case 0:
			case kafka.ErrRebalanceInProgress, kafka.ErrIllegalGeneration, kafka.ErrUnknownMemberID:
				in.rejoin = true
				return &commitError{p.ErrorCode}
			default:
				return &commitError{p.ErrorCode}
			}
		}
	}
	return nil
}

// committed returns the group's committed offsets of ps, with their
// metadata (absent: none).
func (in *instance) committed(ps []tp) (map[tp]tpOffset, error) {
	out := map[tp]tpOffset{}
	if len(ps) == 0 {
		return out, nil
	}
	req, ok := kafkaRequest[kmsg.OffsetFetchRequest](in.m.a, 1, 7)
	if !ok {
		return nil, errors.New("the Kafka handler does not serve OffsetFetch v1+")
	}
	req.Group = in.group
	byTopic := map[string]int{}
	for _, p := range ps {
		rt := requestTopic(byTopic, &req.Topics, p.topic, func(t string) kmsg.OffsetFetchRequestTopic {
			rt := kmsg.NewOffsetFetchRequestTopic()
			rt.Topic = t
			return rt
		})
		rt.Partitions = append(rt.Partitions, p.partition)
	}
	resp, err := in.callGroup(req, kafkaSlack)
	if err != nil {
		return nil, err
	}
	or := resp.(*kmsg.OffsetFetchResponse)
	if or.ErrorCode != 0 {
		return nil, kafkaErr(or.ErrorCode)
	}
	for _, t := range or.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode == 0 && p.Offset >= 0 {
				k := tp{t.Topic, p.Partition}
				out[k] = tpOffset{tp: k, offset: p.Offset, metadata: p.Metadata}
			}
		}
	}
	return out, nil
}

// listOffsets resolves ts (-2 earliest, -1 latest) for ps, one request
// per partition leader.
func (in *instance) listOffsets(ps []tp, ts int64) (map[tp]int64, error) {
	out := map[tp]int64{}
	for _, group := range in.leaderGroups(ps) {
		if err := in.listOffsetsOf(group, ts, out); err != nil {
			in.leaders = nil // perhaps a leader moved: learn them again
			return nil, err
		}
	}
	return out, nil
}

func (in *instance) listOffsetsOf(ps []tp, ts int64, out map[tp]int64) error {
	req, ok := kafkaRequest[kmsg.ListOffsetsRequest](in.m.a, 1, 4)
	if !ok {
		return errors.New("the Kafka handler does not serve ListOffsets v1+")
	}
	req.ReplicaID = -1
	byTopic := map[string]int{}
	for _, p := range ps {
		lt := requestTopic(byTopic, &req.Topics, p.topic, func(t string) kmsg.ListOffsetsRequestTopic {
			lt := kmsg.NewListOffsetsRequestTopic()
			lt.Topic = t
			return lt
		})
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Partition, lp.Timestamp, lp.CurrentLeaderEpoch = p.partition, ts, -1
		lt.Partitions = append(lt.Partitions, lp)
	}
	resp, err := in.call(req, kafkaSlack)
	if err != nil {
		return err
	}
	for _, t := range resp.(*kmsg.ListOffsetsResponse).Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				return fmt.Errorf("%s[%d]: %w", t.Topic, p.Partition, kafkaErr(p.ErrorCode))
			}
			out[tp{t.Topic, p.Partition}] = p.Offset
		}
	}
	return nil
}

// noResetError: auto.offset.reset is none and a partition has no committed
// offset.
type noResetError struct{ p tp }

func (e *noResetError) Error() string {
	return fmt.Sprintf("no committed offset for %s[%d] and auto.offset.reset is none", e.p.topic, e.p.partition)
}

// resolvePositions gives every assigned partition a position: the
// committed offset, else auto.offset.reset.
func (in *instance) resolvePositions() error {
	var missing []tp
	for _, p := range in.assigned {
		if _, ok := in.positions[p]; !ok {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	got, err := in.committed(missing)
	if err != nil {
		return err
	}
	var reset []tp
	for _, p := range missing {
		if c, ok := got[p]; ok {
			in.positions[p] = c.offset
		} else {
			reset = append(reset, p)
		}
	}
	if len(reset) == 0 {
		return nil
	}
	if in.set.reset == 0 {
		return &noResetError{reset[0]}
	}
	offs, err := in.listOffsets(reset, in.set.reset)
	if err != nil {
		return err
	}
	for p, off := range offs {
		in.positions[p] = off
	}
	return nil
}

// newInstanceName returns a name for an instance created without one.
func newInstanceName() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "rest-consumer-" + hex.EncodeToString(b[:])
}
