package httpapi

// The HTTP side of the v2 consumer instances: parsing the routes and
// bodies, and the commands each route hands to its instance's actor.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/loop"
)

// consumerPath is a parsed /consumers/{group}[/instances/{name}[/{sub}[/{sub2}]]].
type consumerPath struct {
	group, name, sub, sub2 string
	depth                  int // 1: group, 3: instance, 4 or 5: a resource of it
}

func parseConsumerPath(path []byte) (consumerPath, error) {
	var cp consumerPath
	segs := strings.Split(strings.TrimPrefix(string(path), "/consumers/"), "/")
	if len(segs) > 5 || len(segs) == 2 || (len(segs) >= 2 && segs[1] != "instances") {
		return cp, errors.New("no such route")
	}
	g, err := url.PathUnescape(segs[0])
	if err != nil || !validGroup(g) {
		return cp, fmt.Errorf("invalid consumer group name %q", segs[0])
	}
	cp.group, cp.depth = g, len(segs)
	if len(segs) >= 3 {
		n, err := url.PathUnescape(segs[2])
		if err != nil || !validTopic(n) {
			return cp, fmt.Errorf("invalid consumer instance name %q", segs[2])
		}
		cp.name = n
	}
	if len(segs) >= 4 {
		cp.sub = segs[3]
	}
	if len(segs) == 5 {
		cp.sub2 = segs[4]
	}
	return cp, nil
}

// validGroup bounds a group name: non-empty, at most 255 bytes, printable
// ASCII (it is a URL segment and a log field).
func validGroup(g string) bool {
	if g == "" || len(g) > 255 {
		return false
	}
	for i := 0; i < len(g); i++ {
		if g[i] <= ' ' || g[i] >= 0x7f {
			return false
		}
	}
	return true
}

// v2Body checks a v2 request body's Content-Type (absent is taken as
// JSON) and decodes it into v; an empty body leaves v as it is. The
// decoded values are charged to the request (twice the body, a bound on
// what encoding/json builds from it).
func v2Body(c *call, body []byte, v any) *loop.HTTPResponse {
	switch ct := mediaType(c.r.Head.HeaderBytes("Content-Type")); ct {
	case "", ctV2, "application/vnd.kafka+json", "application/json":
	default:
		return restError(415, 415, "Content-Type "+strconv.Quote(ct)+" is not supported: use "+ctV2)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if !c.ch.take(2 * int64(len(body))) {
		return c.a.gate.budgetRefusal("decoding a request body")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return restError(422, 42201, "malformed request body: "+err.Error())
	}
	return nil
}

// createBody is POST /consumers/{group}'s body.
type createBody struct {
	Name           string          `json:"name"`
	Format         string          `json:"format"`
	Reset          string          `json:"auto.offset.reset"`
	AutoCommit     json.RawMessage `json:"auto.commit.enable"`
	RequestTimeout json.RawMessage `json:"consumer.request.timeout.ms"`
	FetchMinBytes  json.RawMessage `json:"fetch.min.bytes"`
}

// settings validates a create body; a poll waits at most maxWait
// (--max-rest-fetch-wait).
func (b *createBody) settings(maxWait time.Duration) (instanceSettings, error) {
	s := instanceSettings{name: b.Name, reset: -1, autoCommit: true, pollWait: defaultPollWait}
	if s.name == "" {
		s.name = newInstanceName()
	} else if !validTopic(s.name) {
		return s, fmt.Errorf("invalid consumer instance name %q: use at most 249 letters, digits, '.', '_' or '-'", s.name)
	}
	switch strings.ToLower(b.Format) {
	case "", "binary":
	case "json":
		s.asJSON = true
	default:
		return s, fmt.Errorf("format %q is not supported: use binary or json", b.Format)
	}
	switch strings.ToLower(b.Reset) {
	case "", "latest":
	case "earliest", "smallest":
		s.reset = -2
	case "none":
		s.reset = 0
	default:
		return s, fmt.Errorf("auto.offset.reset %q: use earliest, latest or none", b.Reset)
	}
	if len(b.AutoCommit) > 0 {
		v := strings.Trim(string(b.AutoCommit), `" `)
		switch strings.ToLower(v) {
		case "true":
		case "false":
			s.autoCommit = false
		default:
			return s, fmt.Errorf("auto.commit.enable %s: use true or false", b.AutoCommit)
		}
	}
	if len(b.RequestTimeout) > 0 {
		ms, err := strconv.ParseInt(strings.Trim(string(b.RequestTimeout), `" `), 10, 64)
		if err != nil || ms < 0 {
			return s, fmt.Errorf("consumer.request.timeout.ms %s: want a non-negative integer", b.RequestTimeout)
		}
		s.pollWait = min(time.Duration(ms)*time.Millisecond, maxWait)
	}
	return s, nil
}

// serveConsumers routes /consumers/...
func (a *API) serveConsumers(c *call, body []byte) {
	m := a.consumers
	cp, err := parseConsumerPath(c.r.Head.Path)
	if err != nil {
		c.respond(restError(404, 404, err.Error()))
		return
	}
	method := c.r.Head.Method
	if cp.depth == 1 {
		if method != "POST" {
			c.respond(methodNotAllowed("POST"))
			return
		}
		a.createInstance(c, cp.group, body)
		return
	}
	in := m.lookup(cp.group, cp.name, c.r.User)
	if in == nil {
		c.respond(instanceNotFound())
		return
	}
	route := cp.sub
	if cp.sub2 != "" {
		route += "/" + cp.sub2
	}
	switch route {
	case "":
		if method != "DELETE" {
			c.respond(methodNotAllowed("DELETE"))
			return
		}
		if !m.delete(in) {
			c.respond(instanceNotFound())
			return
		}
		c.respond(&loop.HTTPResponse{Status: 204})
	case "subscription":
		switch method {
		case "POST":
			var b struct {
				Topics  []string `json:"topics"`
				Pattern string   `json:"topic_pattern"`
			}
			if r := v2Body(c, body, &b); r != nil {
				c.respond(r)
				return
			}
			m.submit(in, c, func() { c.respond(in.subscribe(b.Topics, b.Pattern)) })
		case "GET", "HEAD":
			m.submit(in, c, func() {
				topics := append([]string{}, in.topics...)
				if in.pattern != nil {
					topics, _ = in.interests()
				}
				c.respond(jsonAnswer(200, ctV2, struct {
					Topics []string `json:"topics"`
				}{append([]string{}, topics...)}))
			})
		case "DELETE":
			m.submit(in, c, func() {
				in.unsubscribe()
				c.respond(&loop.HTTPResponse{Status: 204})
			})
		default:
			c.respond(methodNotAllowed("GET, HEAD, POST, DELETE"))
		}
	case "records":
		if method != "GET" { // a poll moves the positions: HEAD would lose records
			c.respond(methodNotAllowed("GET"))
			return
		}
		a.pollRecords(c, in)
	case "offsets":
		switch method {
		case "POST":
			var b struct {
				Offsets []partOffset `json:"offsets"`
			}
			if r := v2Body(c, body, &b); r != nil {
				c.respond(r)
				return
			}
			m.submit(in, c, func() { c.respond(in.commitRequest(b.Offsets)) })
		case "GET", "HEAD":
			var b struct {
				Partitions []partOffset `json:"partitions"`
			}
			if r := v2Body(c, body, &b); r != nil {
				c.respond(r)
				return
			}
			m.submit(in, c, func() { c.respond(in.committedRequest(b.Partitions)) })
		default:
			c.respond(methodNotAllowed("GET, HEAD, POST"))
		}
	case "positions", "positions/beginning", "positions/end":
		if method != "POST" {
			c.respond(methodNotAllowed("POST"))
			return
		}
		var b struct {
			Offsets    []partOffset `json:"offsets"`
			Partitions []partOffset `json:"partitions"`
		}
		if r := v2Body(c, body, &b); r != nil {
			c.respond(r)
			return
		}
		m.submit(in, c, func() { c.respond(in.seek(cp.sub2, b.Offsets, b.Partitions)) })
	case "assignments":
		switch method {
		case "POST":
			var b struct {
				Partitions []partOffset `json:"partitions"`
			}
			if r := v2Body(c, body, &b); r != nil {
				c.respond(r)
				return
			}
			m.submit(in, c, func() { c.respond(in.assign(b.Partitions)) })
		case "GET", "HEAD":
			m.submit(in, c, func() {
				out := []partOffset{}
				for _, p := range in.assigned {
					out = append(out, partOffset{Topic: p.topic, Partition: p.partition})
				}
				c.respond(jsonAnswer(200, ctV2, struct {
					Partitions []partOffset `json:"partitions"`
				}{out}))
			})
		default:
			c.respond(methodNotAllowed("GET, HEAD, POST"))
		}
	default:
		c.respond(restError(404, 404, "no such route"))
	}
}

// partOffset is a partition, with an offset where the route takes one.
type partOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    *int64 `json:"offset,omitempty"`
	Metadata  string `json:"metadata,omitempty"`
}

// createInstance answers POST /consumers/{group}.
func (a *API) createInstance(c *call, group string, body []byte) {
	var b createBody
	if r := v2Body(c, body, &b); r != nil {
		c.respond(r)
		return
	}
	s, err := b.settings(a.gate.conf().MaxRESTFetchWait)
	if err != nil {
		c.respond(restError(422, codeInvalidConfig, err.Error()))
		return
	}
	if _, err := a.consumers.create(group, s, c.r.RemoteIP, c.r.User); err != nil {
		c.respond(err)
		return
	}
	c.respond(jsonAnswer(200, ctV2, struct {
		InstanceID string `json:"instance_id"`
		BaseURI    string `json:"base_uri"`
	}{s.name, base(c) + "/consumers/" + url.PathEscape(group) + "/instances/" + s.name}))
}

// validTPs checks a list of partitions of a body.
func validTPs(list []partOffset, needOffset bool) ([]tp, *loop.HTTPResponse) {
	out := make([]tp, 0, len(list))
	seen := map[tp]bool{}
	for _, p := range list {
		if !validTopic(p.Topic) || p.Partition < 0 {
			return nil, restError(422, 42201, fmt.Sprintf("invalid partition %q[%d]", p.Topic, p.Partition))
		}
		if needOffset && (p.Offset == nil || *p.Offset < 0) {
			return nil, restError(422, 42201, fmt.Sprintf("%s[%d]: a non-negative offset is required", p.Topic, p.Partition))
		}
		k := tp{p.Topic, p.Partition}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out, nil
}

// subscribe answers POST .../subscription.
func (in *instance) subscribe(topics []string, pattern string) *loop.HTTPResponse {
	if in.manual {
		return restError(409, codeAlreadySubscribe, "Subscription to topics, partitions and pattern are mutually exclusive.")
	}
	if (len(topics) == 0) == (pattern == "") {
		return restError(422, 42201, "give either topics or topic_pattern")
	}
	var re *regexp.Regexp
	if pattern != "" {
		var err error
		if re, err = regexp.Compile("^(?:" + pattern + ")$"); err != nil {
			return restError(422, 42201, "topic_pattern: "+err.Error())
		}
	}
	set := map[string]bool{}
	var list []string
	for _, t := range topics {
		if !validTopic(t) {
			return restError(422, 42201, fmt.Sprintf("invalid topic name %q", t))
		}
		if !set[t] {
			set[t] = true
			list = append(list, t)
		}
	}
	sort.Strings(list)
	in.topics, in.pattern = list, re
	in.rejoin = true // the actor joins at its next tick: the first poll finds partitions ready
	return &loop.HTTPResponse{Status: 204}
}

// unsubscribe answers DELETE .../subscription: the instance leaves its
// group (committing first under auto.commit.enable) and forgets its
// partitions, its manual assignment included.
func (in *instance) unsubscribe() {
	if in.member && !in.manual {
		in.commitOnRevoke(in.assigned)
		in.leaveGroup(kafkaSlack)
	}
	in.topics, in.pattern, in.manual = nil, nil, false
	in.member, in.rejoin, in.memberID, in.generation = false, false, "", -1
	in.assigned = nil
	clear(in.positions)
}

// assign answers POST .../assignments.
func (in *instance) assign(list []partOffset) *loop.HTTPResponse {
	if in.subscribed() {
		return restError(409, codeAlreadySubscribe, "Subscription to topics, partitions and pattern are mutually exclusive.")
	}
	ps, bad := validTPs(list, false)
	if bad != nil {
		return bad
	}
	in.manual = true
	in.setAssigned(ps)
	return &loop.HTTPResponse{Status: 204}
}

// seek answers POST .../positions[/beginning|/end].
func (in *instance) seek(where string, offs, parts []partOffset) *loop.HTTPResponse {
	list := parts
	if where == "" {
		list = offs
	}
	ps, bad := validTPs(list, where == "")
	if bad != nil {
		return bad
	}
	if where == "" && len(ps) != len(list) {
		return restError(422, 42201, "a partition is listed twice")
	}
	if !in.manual && in.subscribed() && (!in.member || in.rejoin) {
		if err := in.join(); err != nil {
			return joinFailure(err)
		}
	}
	assigned := map[tp]bool{}
	for _, p := range in.assigned {
		assigned[p] = true
	}
	for _, p := range ps {
		if !assigned[p] {
			return restError(409, codeIllegalState, fmt.Sprintf("No current assignment for partition %s-%d", p.topic, p.partition))
		}
	}
	switch where {
	case "":
		for i, p := range ps {
			in.positions[p] = *list[i].Offset
		}
	case "beginning", "end":
		ts := int64(-2)
		if where == "end" {
			ts = -1
		}
		got, err := in.listOffsets(ps, ts)
		if err != nil {
			return kafkaFailure(err)
		}
		for p, off := range got {
			in.positions[p] = off
		}
	default:
		return restError(404, 404, "no such route")
	}
	return &loop.HTTPResponse{Status: 204}
}

// commitRequest answers POST .../offsets: the listed offsets (each the
// last record consumed: the group resumes after it, as Confluent's proxy
// commits offset+1), or with an empty body every position.
func (in *instance) commitRequest(list []partOffset) *loop.HTTPResponse {
	var offs []tpOffset
	if len(list) == 0 {
		offs = in.positionList(nil)
	} else {
		ps, bad := validTPs(list, true)
		if bad != nil {
			return bad
		}
		if len(ps) != len(list) {
			return restError(422, 42201, "a partition is listed twice")
		}
		for i, p := range ps {
			o := tpOffset{tp: p, offset: *list[i].Offset + 1}
			if m := list[i].Metadata; m != "" {
				o.metadata = &m
			}
			offs = append(offs, o)
		}
	}
	if err := in.commit(offs, kafkaSlack); err != nil {
		return kafkaFailure(err)
	}
	return &loop.HTTPResponse{Status: 204}
}

// committedRequest answers GET .../offsets: the group's committed offsets
// of the listed partitions (those without one are left out).
func (in *instance) committedRequest(list []partOffset) *loop.HTTPResponse {
	ps, bad := validTPs(list, false)
	if bad != nil {
		return bad
	}
	got, err := in.committed(ps)
	if err != nil {
		return kafkaFailure(err)
	}
	type committedOffset struct {
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		Offset    int64  `json:"offset"`
		Metadata  string `json:"metadata"`
	}
	res := make([]committedOffset, 0, len(ps))
	for _, p := range ps {
		if c, ok := got[p]; ok {
			md := ""
			if c.metadata != nil {
				md = *c.metadata
			}
			res = append(res, committedOffset{p.topic, p.partition, c.offset, md})
		}
	}
	return jsonAnswer(200, ctV2, struct {
		Offsets []committedOffset `json:"offsets"`
	}{res})
}

// kafkaFailure answers an error of the instance's Kafka requests.
func kafkaFailure(err error) *loop.HTTPResponse {
	var ce *commitError
	var nr *noResetError
	switch {
	case errors.Is(err, errAborted):
		return instanceNotFound()
	case errors.As(err, &ce) && (ce.code == kafka.ErrRebalanceInProgress || ce.code == kafka.ErrIllegalGeneration || ce.code == kafka.ErrUnknownMemberID):
		return restError(409, codeIllegalState, err.Error()+" (the group rebalanced: poll again, then commit)")
	case errors.As(err, &nr):
		return restError(409, codeIllegalState, err.Error())
	}
	return restError(503, codeKafkaRetriable, err.Error())
}

func joinFailure(err error) *loop.HTTPResponse {
	if errors.Is(err, errAborted) {
		return instanceNotFound()
	}
	return restError(503, codeKafkaRetriable, err.Error())
}

// pollRecords answers GET .../records?timeout=&max_bytes=: the Accept
// header must name the instance's format (or nothing, or a wildcard).
func (a *API) pollRecords(c *call, in *instance) {
	ct := ctBinaryV2
	if in.set.asJSON {
		ct = ctJSONV2
	}
	if accept := c.r.Head.HeaderBytes("Accept"); accept != nil && !acceptable(accept, ct) {
		c.respond(restError(406, codeFormatMismatch, "The requested embedded data format does not match the deserializer for this consumer instance"))
		return
	}
	q, err := url.ParseQuery(string(c.r.Head.RawQuery))
	if err != nil {
		c.respond(restError(400, 40001, "malformed query: "+err.Error()))
		return
	}
	timeout, err1 := queryInt(q, "timeout", -1)
	maxBytes, err2 := queryInt(q, "max_bytes", 0)
	if err := errors.Join(err1, err2); err != nil {
		c.respond(restError(400, 40001, err.Error()))
		return
	}
	wait := in.set.pollWait
	if timeout >= 0 {
		wait = min(time.Duration(timeout)*time.Millisecond, a.gate.conf().MaxRESTFetchWait)
	}
	limit := a.gate.conf().MaxRESTResponseBytes
	if maxBytes > 0 {
		limit = max(min(maxBytes, limit), 1024)
	}
	limit = min(limit, math.MaxInt32)
	deadline := time.Now().Add(wait)
	a.consumers.submit(in, c, func() { c.respond(in.poll(c, deadline, limit, ct)) })
}

// poll fetches from the assigned partitions until records come or the
// deadline passes, heartbeating (and rejoining) meanwhile. Each fetch
// waits on the broker (no worker is held; this goroutine is the
// instance's own).
func (in *instance) poll(c *call, deadline time.Time, limit int64, ct string) *loop.HTTPResponse {
	if !in.manual && !in.subscribed() {
		return restError(409, codeIllegalState, "Consumer is not subscribed to any topics or assigned any partitions")
	}
	for {
		if !in.manual && (!in.member || in.rejoin) {
			if err := in.join(); err != nil {
				return joinFailure(err)
			}
		}
		if err := in.resolvePositions(); err != nil {
			return kafkaFailure(err)
		}
		now := time.Now()
		left := deadline.Sub(now)
		step := left
		if in.member && !in.manual {
			step = min(step, in.nextHB.Sub(now))
		}
		step = max(step, 0)
		if len(in.assigned) == 0 {
			if left <= 0 {
				return &loop.HTTPResponse{Status: 200, ContentType: ct, Body: []byte("[]\n")}
			}
			if !in.sleep(max(step, 10*time.Millisecond)) {
				return instanceNotFound()
			}
			in.keepAlive()
			continue
		}
		resp, n, quick := in.fetchOnce(c, step, limit, ct)
		if resp != nil && (n > 0 || resp.Status != 200) {
			return resp
		}
		if time.Until(deadline) <= 0 {
			return &loop.HTTPResponse{Status: 200, ContentType: ct, Body: []byte("[]\n")}
		}
		if quick && !in.sleep(min(100*time.Millisecond, max(time.Until(deadline), 0))) {
			return instanceNotFound()
		}
		in.keepAlive()
	}
}

// sleep waits d, false when the instance is deleted meanwhile.
func (in *instance) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-in.abort:
		return false
	}
}

// fetchOnce fetches every assigned partition at its position, one Fetch
// per partition leader (one against the embedded broker), and renders
// what comes back: the answer (nil with n == 0 when nothing came), the
// number of records, and whether the broker answered at once without
// records (errors: the caller pauses before the next try).
func (in *instance) fetchOnce(c *call, wait time.Duration, limit int64, ct string) (resp *loop.HTTPResponse, n int, quick bool) {
	a := in.m.a
	v, ok := a.version(1, 4, 12)
	if !ok {
		return restError(502, codeKafka, "the Kafka handler does not serve Fetch v4+"), 0, false
	}
	var reqs []kmsg.Request
	for _, group := range in.leaderGroups(in.assigned) {
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(v)
		req.ReplicaID = -1
		req.MaxWaitMillis = int32(wait.Milliseconds())
		req.MinBytes = 1
		req.MaxBytes = int32(limit)
		req.SessionEpoch = -1
		byTopic := map[string]int{}
		for _, p := range group {
			ft := requestTopic(byTopic, &req.Topics, p.topic, func(t string) kmsg.FetchRequestTopic { ft := kmsg.NewFetchRequestTopic(); ft.Topic = t; return ft })
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = p.partition, in.positions[p], int32(limit)
			fp.CurrentLeaderEpoch, fp.LastFetchedEpoch, fp.LogStartOffset = -1, -1, -1
			ft.Partitions = append(ft.Partitions, fp)
		}
		reqs = append(reqs, req)
	}
	started := time.Now()
	fr, err := in.fetchAll(reqs, wait+kafkaSlack)
	if err != nil {
		return kafkaFailure(err), 0, false
	}
	for _, t := range fr.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 && p.ErrorCode != kafka.ErrOffsetOutOfRange {
				in.leaders = nil // a leader moved or a topic changed: learn them again
				quick = true
			}
		}
	}
	resp, n, err = in.render(c, fr, limit, ct)
	if err != nil {
		return kafkaFailure(err), 0, false
	}
	if resp != nil && n > 0 && in.set.autoCommit {
		_ = in.commit(in.positionList(nil), kafkaSlack) // as the Java consumer's auto-commit; a refusal means a rebalance, seen at the next heartbeat
	}
	return resp, n, quick || n == 0 && time.Since(started) < wait/2
}

// fetchAll sends the fetches at once and merges their answers: it waits
// for the first that brings records (or for all), then takes what else
// has arrived. A fetch still waiting on its broker is left to answer into
// a buffered channel nobody reads: its partitions keep their positions.
func (in *instance) fetchAll(reqs []kmsg.Request, wait time.Duration) (*kmsg.FetchResponse, error) {
	merged := kmsg.NewPtrFetchResponse()
	if len(reqs) == 1 {
		r, err := in.call(reqs[0], wait)
		if err != nil {
			return nil, err
		}
		return r.(*kmsg.FetchResponse), nil
	}
	ch := make(chan kmsg.Response, len(reqs))
	for _, req := range reqs {
		in.send(req, func(r kmsg.Response) { ch <- r })
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	take := func(r kmsg.Response) bool {
		fr, ok := r.(*kmsg.FetchResponse)
		if !ok || fr.ErrorCode != 0 {
			return false
		}
		data := false
		for _, t := range fr.Topics {
			merged.Topics = append(merged.Topics, t)
			for _, p := range t.Partitions {
				data = data || len(p.RecordBatches) > 0
			}
		}
		return data
	}
	for got := 0; got < len(reqs); got++ {
		select {
		case r := <-ch:
			if !take(r) {
				continue
			}
		case <-t.C:
			return merged, nil
		case <-in.abort:
			return nil, errAborted
		}
		for { // records came: take what else is there, without waiting
			select {
			case r := <-ch:
				take(r)
				continue
			default:
			}
			return merged, nil
		}
	}
	return merged, nil
}

// render turns a Fetch answer into the records answer and moves the
// positions past what it holds. The fetched batches are charged to the
// request and to --max-rest-consumer-buffered-bytes while they are read.
func (in *instance) render(c *call, fr *kmsg.FetchResponse, limit int64, ct string) (*loop.HTTPResponse, int, error) {
	m, g := in.m, in.m.a.gate
	var fetched int64
	var outOfRange []tp
	for _, t := range fr.Topics {
		for _, p := range t.Partitions {
			fetched += int64(len(p.RecordBatches))
			if p.ErrorCode == kafka.ErrOffsetOutOfRange {
				outOfRange = append(outOfRange, tp{t.Topic, p.Partition})
			}
		}
	}
	if len(outOfRange) > 0 {
		// auto.offset.reset, as the Java consumer applies it.
		for _, p := range outOfRange {
			delete(in.positions, p)
		}
		if in.set.reset == 0 {
			return nil, 0, &noResetError{outOfRange[0]}
		}
		offs, err := in.listOffsets(outOfRange, in.set.reset)
		if err != nil {
			return nil, 0, err
		}
		for p, off := range offs {
			in.positions[p] = off
		}
	}
	if fetched == 0 {
		return nil, 0, nil
	}
	if max := m.cfg.MaxRESTConsumerBuffered; m.buffered.Add(fetched) > max {
		now := m.buffered.Add(-fetched) + fetched
		m.tripBuffered.Inc()
		return m.refuse("max-rest-consumer-buffered-bytes", max, now,
			"consumer instances hold --max-rest-consumer-buffered-bytes of fetched records; poll again shortly or with a smaller max_bytes"), 0, nil
	}
	defer m.buffered.Add(-fetched)
	if !c.ch.take(fetched) {
		return g.budgetRefusal("reading fetched batches"), 0, nil
	}
	out, err := c.ch.grow(nil, 512)
	if err != nil {
		return g.budgetRefusal("building a records answer"), 0, nil
	}
	asJSON := in.set.asJSON
	out = append(out, '[')
	n := 0
	next := map[tp]int64{}
	var tooBig *bigRecordError
	var growErr error
	for _, t := range fr.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
				continue
			}
			k := tp{t.Topic, p.Partition}
			from, ok := in.positions[k]
			if !ok {
				continue // revoked meanwhile
			}
			d := &batchDecoder{ch: c.ch, maxOut: limit, room: func() int64 {
				if asJSON {
					return limit - int64(len(out))
				}
				return (limit - int64(len(out))) * 3 / 4
			}, passed: func(off int64) { next[k] = max(next[k], off) }}
			err = d.decode(p.RecordBatches, from, func(off int64, key, value []byte) bool {
				first := len(out) == 1
				size := recordJSONBound(t.Topic, key, value, asJSON)
				if int64(len(out))+size+3 > limit {
					if first {
						tooBig = &bigRecordError{offset: off, size: size + 3}
					}
					return false
				}
				var gerr error
				if out, gerr = c.ch.grow(out, int(size)+1); gerr != nil {
					growErr = gerr
					return false
				}
				if !first {
					out = append(out, ',')
				}
				out = appendRecordJSON(out, t.Topic, key, value, p.Partition, off, asJSON)
				next[k] = max(next[k], off+1)
				n++
				return true
			})
			var big *bigBatchError
			var corrupt *corruptBatchError
			switch {
			case errors.Is(err, errBudget), growErr != nil:
				return g.budgetRefusal("building a records answer"), 0, nil
			case tooBig != nil:
				return g.restLimit(422, 42202, "max-rest-response-bytes", limit, tooBig.size,
					fmt.Sprintf("the record at %s[%d] offset %d does not fit in a records answer of max_bytes (seek past it with POST .../positions)", t.Topic, p.Partition, tooBig.offset), nil), 0, nil
			case errors.As(err, &big):
				return g.restLimit(422, 42202, "max-rest-response-bytes", limit, 0, big.Error(), &resume{Offset: big.base, NextOffset: big.next}), 0, nil
			case errors.As(err, &corrupt):
				g.corrupt.Inc()
				return restError(500, 50003, fmt.Sprintf("%s[%d]: %v", t.Topic, p.Partition, corrupt)), 0, nil
			case err != nil:
				return nil, 0, err
			}
		}
	}
	for k, off := range next {
		if cur, ok := in.positions[k]; ok && off > cur {
			in.positions[k] = off
		}
	}
	out = append(out, ']', '\n')
	return &loop.HTTPResponse{Status: 200, ContentType: ct, Body: out}, n, nil
}

// acceptable reports whether an Accept header admits media type ct: a
// listed type equal to it, its type's wildcard or */*, without q=0.
func acceptable(accept []byte, ct string) bool {
	typ, _, _ := strings.Cut(ct, "/")
	for _, part := range strings.Split(string(accept), ",") {
		mt, params, _ := strings.Cut(part, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
		if q := strings.TrimSpace(params); strings.HasPrefix(q, "q=0") && strings.Trim(q[3:], ".0") == "" {
			continue
		}
		if mt == ct || mt == "*/*" || mt == typ+"/*" {
			return true
		}
	}
	return false
}
