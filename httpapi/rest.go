package httpapi

// The REST API for topics, compatible with Confluent REST Proxy v2 for the
// parts it implements. Every route is served by building real Kafka
// requests (Metadata, Produce v9, Fetch v12, ListOffsets) and handing them
// to the Kafka handler, so the same code serves the embedded broker and a
// gateway to an upstream cluster. Nothing here blocks a worker: each Kafka
// answer continues the request in its callback.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/recordbatch"
	"github.com/floodgate/floodgate/loop"
)

// Content types of the REST API.
const (
	ctJSONV2   = "application/vnd.kafka.json.v2+json"
	ctBinaryV2 = "application/vnd.kafka.binary.v2+json"
	ctV2       = "application/vnd.kafka.v2+json"
)

// clientID is the Kafka client id of the REST API's requests.
const clientID = "floodgate-rest"

// Limits of the REST API's own parameters.
const (
	defaultFetchBytes = 1 << 20
	produceTimeoutMs  = 30000
)

// restError is a Confluent-style error answer.
func restError(status, code int, msg string) *loop.HTTPResponse {
	b, _ := json.Marshal(struct {
		ErrorCode int    `json:"error_code"`
		Message   string `json:"message"`
	}{code, msg})
	return &loop.HTTPResponse{Status: status, ContentType: ctV2, Body: append(b, '\n')}
}

func jsonAnswer(status int, ct string, v any) *loop.HTTPResponse {
	b, err := json.Marshal(v)
	if err != nil {
		return restError(500, 50001, "encoding the answer: "+err.Error())
	}
	return &loop.HTTPResponse{Status: status, ContentType: ct, Body: append(b, '\n')}
}

// restPath is a parsed /topics/{topic}[/partitions/{p}[/records|/offsets]].
type restPath struct {
	topic     string
	partition int32
	hasPart   bool
}

func parseRESTPath(path []byte) (restPath, error) {
	var rp restPath
	segs := strings.Split(strings.TrimPrefix(string(path), "/topics/"), "/")
	t, err := url.PathUnescape(segs[0])
	if err != nil || !validTopic(t) {
		return rp, fmt.Errorf("invalid topic name %q", segs[0])
	}
	rp.topic = t
	if len(segs) >= 3 {
		p, err := strconv.ParseInt(segs[2], 10, 32)
		if err != nil || p < 0 {
			return rp, fmt.Errorf("invalid partition %q", segs[2])
		}
		rp.partition, rp.hasPart = int32(p), true
	}
	return rp, nil
}

// validTopic applies Kafka's topic name rules.
func validTopic(t string) bool {
	if t == "" || len(t) > 249 || t == "." || t == ".." {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// version picks the version of key to send: want, or the handler's
// highest if it is lower; false when the handler cannot serve min.
func (a *API) version(key, min, want int16) (int16, bool) {
	lo, hi, ok := a.cfg.Kafka.VersionRange(key)
	if !ok || hi < min || lo > want {
		return 0, false
	}
	if hi < want {
		return hi, true
	}
	return want, true
}

// topicMissing answers a Metadata that did not describe the topic: 403
// when the ACLs forbid it (as Confluent's REST proxy), else 404.
func topicMissing(mr *kmsg.MetadataResponse, topic string) *loop.HTTPResponse {
	if len(mr.Topics) == 1 && mr.Topics[0].ErrorCode == kerr.TopicAuthorizationFailed.Code {
		return restError(403, 40301, "Not authorized to access topic "+topic+".")
	}
	return restError(404, 40401, "Topic "+topic+" not found.")
}

// kafka sends req to the Kafka handler and calls then with the response,
// or answers 502/504 itself when there is none. The answer may arrive on
// another goroutine (a fetch waiter's, the syncer's): the continuation
// runs under c.recover, so a panic in it answers 500 and releases what the
// request held instead of killing the process.
func (a *API) kafka(req kmsg.Request, c *call, then func(kmsg.Response)) {
	answer := func(resp kmsg.Response) {
		defer c.recover()
		if resp == nil {
			c.respond(restError(502, 50002, "no response from the Kafka handler"))
			return
		}
		then(resp)
	}
	if ch, ok := a.cfg.Kafka.(loop.ClientKafkaHandler); ok {
		// The ACL guard checks the request as the HTTP user.
		ch.ServeKafkaFrom(loop.ClientConn{Addr: c.r.RemoteIP.String(), ClientID: clientID, User: c.r.User}, req, answer)
		return
	}
	a.cfg.Kafka.ServeKafka(req, clientID, c.r.RemoteIP.String(), answer)
}

// askKafka sends req to the Kafka handler and calls then with its answer,
// which must be a Resp (and, when wellFormed is set, pass it): any other
// answer is a 502 made by bad.
func askKafka[Resp kmsg.Response](a *API, c *call, req kmsg.Request, bad func(msg string) *loop.HTTPResponse,
	wellFormed func(Resp) bool, then func(Resp)) {
	a.kafka(req, c, func(resp kmsg.Response) {
		r, ok := resp.(Resp)
		if !ok || wellFormed != nil && !wellFormed(r) {
			c.respond(bad("unexpected response to " + kmsg.NameForKey(req.Key())))
			return
		}
		then(r)
	})
}

// restBadGateway is the v2 answer to a Kafka handler that failed.
func restBadGateway(msg string) *loop.HTTPResponse { return restError(502, 50002, msg) }

func (a *API) serveREST(ep int, c *call, body []byte) {
	if a.cfg.Kafka == nil {
		c.respond(restError(503, 50301, "no Kafka handler configured"))
		return
	}
	method := c.r.Head.Method
	if refusal := notAcceptable(ep, c.r.Head.HeaderBytes("Accept"), c.r.Head.Path); refusal != nil {
		c.respond(refusal)
		return
	}
	switch ep {
	case epConsumers:
		a.serveConsumers(c, body)
		return
	case epV3:
		a.serveV3(c, body)
		return
	case epBrokers:
		byMethod(c, method, func() { a.listBrokers(c) }, nil)
		return
	case epTopics:
		byMethod(c, method, func() { a.listTopics(c) }, nil)
		return
	}
	rp, err := parseRESTPath(c.r.Head.Path)
	if err != nil {
		c.respond(restError(404, 40401, err.Error()))
		return
	}
	switch ep {
	case epTopic:
		byMethod(c, method, func() { a.describeTopic(c, rp) }, func() { a.produce(c, rp, body) })
	case epPartitions:
		byMethod(c, method, func() { a.describePartitions(c, rp) }, nil)
	case epPartition:
		byMethod(c, method, func() { a.describePartitions(c, rp) }, func() { a.produce(c, rp, body) })
	case epRecords:
		byMethod(c, method, func() { a.fetch(c, rp) }, nil)
	case epOffsets:
		byMethod(c, method, func() { a.offsets(c, rp) }, nil)
	}
}

// byMethod serves a v2 route that reads on GET and HEAD and, when produce
// is not nil, produces on POST; any other method is answered 405 with the
// methods the route allows.
func byMethod(c *call, method string, read, produce func()) {
	switch {
	case isGetOrHead(method):
		read()
	case produce != nil && method == "POST":
		produce()
	case produce != nil:
		c.respond(methodNotAllowed("GET, HEAD, POST"))
	default:
		c.respond(methodNotAllowed("GET, HEAD"))
	}
}

// metadata asks for topics (nil: all of them).
func (a *API) metadata(c *call, topics []string, create bool, then func(*kmsg.MetadataResponse)) {
	req, ok := kafkaRequest[kmsg.MetadataRequest](a, 1, 12)
	if !ok {
		c.respond(restError(502, 50002, "the Kafka handler does not serve Metadata"))
		return
	}
	req.AllowAutoTopicCreation = create
	req.Topics = metadataTopics(topics)
	askKafka(a, c, req, restBadGateway, nil, then)
}

// listTopics answers GET /topics: ["a","b"].
func (a *API) listTopics(c *call) {
	a.metadata(c, nil, false, func(mr *kmsg.MetadataResponse) {
		names := []string{}
		for _, t := range mr.Topics {
			if t.Topic != nil && t.ErrorCode == 0 && !t.IsInternal {
				names = append(names, *t.Topic)
			}
		}
		sortStrings(names)
		c.respond(jsonAnswer(200, ctV2, names))
	})
}

type topicInfo struct {
	Name       string            `json:"name"`
	Configs    map[string]string `json:"configs"`
	Partitions []partitionInfo   `json:"partitions"`
}

type partitionInfo struct {
	Partition int32         `json:"partition"`
	Leader    int32         `json:"leader"`
	Replicas  []replicaInfo `json:"replicas"`
}

type replicaInfo struct {
	Broker int32 `json:"broker"`
	Leader bool  `json:"leader"`
	InSync bool  `json:"in_sync"`
}

// describeTopic answers GET /topics/{topic}.
func (a *API) describeTopic(c *call, rp restPath) {
	a.metadata(c, []string{rp.topic}, false, func(mr *kmsg.MetadataResponse) {
		if len(mr.Topics) != 1 || mr.Topics[0].ErrorCode != 0 {
			c.respond(topicMissing(mr, rp.topic))
			return
		}
		ti := topicInfo{Name: rp.topic, Configs: map[string]string{}, Partitions: partitionInfos(&mr.Topics[0])}
		c.respond(jsonAnswer(200, ctV2, ti))
	})
}

// partitionInfos lists a topic's partitions in the v2 shape, in order.
func partitionInfos(t *kmsg.MetadataResponseTopic) []partitionInfo {
	out := []partitionInfo{}
	for _, p := range t.Partitions {
		pi := partitionInfo{Partition: p.Partition, Leader: p.Leader, Replicas: []replicaInfo{}}
		isr := map[int32]bool{}
		for _, id := range p.ISR {
			isr[id] = true
		}
		for _, id := range p.Replicas {
			pi.Replicas = append(pi.Replicas, replicaInfo{Broker: id, Leader: id == p.Leader, InSync: isr[id]})
		}
		out = append(out, pi)
	}
	sortPartitions(out)
	return out
}

// describePartitions answers GET /topics/{topic}/partitions (every
// partition) and GET /topics/{topic}/partitions/{p} (one).
func (a *API) describePartitions(c *call, rp restPath) {
	a.metadata(c, []string{rp.topic}, false, func(mr *kmsg.MetadataResponse) {
		if len(mr.Topics) != 1 || mr.Topics[0].ErrorCode != 0 {
			c.respond(restError(404, 40401, "Topic "+rp.topic+" not found."))
			return
		}
		parts := partitionInfos(&mr.Topics[0])
		if !rp.hasPart {
			c.respond(jsonAnswer(200, ctV2, parts))
			return
		}
		for _, p := range parts {
			if p.Partition == rp.partition {
				c.respond(jsonAnswer(200, ctV2, p))
				return
			}
		}
		c.respond(restError(404, 40402, fmt.Sprintf("Partition %d of topic %s not found.", rp.partition, rp.topic)))
	})
}

// listBrokers answers GET /brokers: {"brokers":[1]}.
func (a *API) listBrokers(c *call) {
	a.metadata(c, []string{}, false, func(mr *kmsg.MetadataResponse) {
		ids := []int32{}
		for _, b := range mr.Brokers {
			ids = append(ids, b.NodeID)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		c.respond(jsonAnswer(200, ctV2, struct {
			Brokers []int32 `json:"brokers"`
		}{ids}))
	})
}

// notAcceptable answers 406 when a request's Accept header admits none of
// the media types its route answers with (absent: anything goes).
func notAcceptable(ep int, accept, path []byte) *loop.HTTPResponse {
	if accept == nil {
		return nil
	}
	var offered []string
	switch {
	case ep == epV3:
		offered = []string{"application/json"}
	case ep == epRecords, ep == epConsumers && bytes.HasSuffix(path, []byte("/records")):
		// The embedded format is chosen (or checked) by the route itself.
		offered = []string{ctBinaryV2, ctJSONV2}
	default:
		offered = []string{ctV2, "application/vnd.kafka+json", "application/json"}
	}
	for _, ct := range offered {
		if acceptable(accept, ct) {
			return nil
		}
	}
	return restError(406, 406, "HTTP 406 Not Acceptable: this route answers "+strings.Join(offered, " or "))
}

// produceRecord is one record of a produce body. Key and value stay raw
// JSON: embedded JSON for the json format, base64 strings for binary.
type produceRecord struct {
	Key       json.RawMessage `json:"key"`
	Value     json.RawMessage `json:"value"`
	Partition *int32          `json:"partition"`
}

// The produce answer is {"key_schema_id":null,"value_schema_id":null,
// "offsets":[{"partition":..,"offset":..,"error_code":..,"error":..}]},
// one entry per record, in order: error_code is null on success, 1 for a
// non-retriable Kafka error, 2 for a retriable one (as Confluent's REST
// Proxy answers).

// mediaType returns the lower-cased media type of a Content-Type or Accept
// value, without parameters.
func mediaType(v []byte) string {
	s := string(v)
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	return strings.ToLower(strings.TrimSpace(s))
}

// decodeKV turns a record's key or value into bytes: nil for JSON null or
// absent, the JSON text itself for the json format, base64 for binary. It
// allocates at most len(raw) bytes.
func decodeKV(raw json.RawMessage, binary bool) ([]byte, error) {
	s := bytes.TrimSpace(raw)
	if len(s) == 0 || string(s) == "null" {
		return nil, nil
	}
	if !binary {
		return s, nil
	}
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return nil, errors.New("binary keys and values must be base64 strings")
	}
	inner := s[1 : len(s)-1]
	if bytes.IndexByte(inner, '\\') >= 0 {
		// Escapes are legal JSON, if unusual in base64: unquote first.
		var str string
		if err := json.Unmarshal(s, &str); err != nil {
			return nil, errors.New("binary keys and values must be base64 strings")
		}
		inner = []byte(str)
	}
	b := make([]byte, base64.StdEncoding.DecodedLen(len(inner)))
	n, err := base64.StdEncoding.Decode(b, inner)
	if err != nil {
		return nil, fmt.Errorf("invalid base64: %w", err)
	}
	return b[:n], nil
}

// Bytes charged per record of a produce body for what is allocated besides
// its key and value: the decoded record, the record to send, its encoding
// overhead in the batch and its entry in the answer.
const (
	producedRecordCost = 256
	batchRecordCost    = 32
	answerRecordCost   = 128
)

// errTooManyRecords stops a produce body at --max-rest-records-per-request.
var errTooManyRecords = errors.New("too many records")

// decodeProduceBody reads {"records":[...]} one record at a time, so that
// a body of many tiny records is refused at the limit instead of decoded
// whole; each record is charged as it is decoded.
func decodeProduceBody(body []byte, maxRecords int, ch *charge) ([]produceRecord, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("a produce body is a JSON object")
	}
	var recs []produceRecord
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		if key, _ := t.(string); !strings.EqualFold(key, "records") {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, err
			}
			continue
		}
		if t, err := dec.Token(); err != nil || t != json.Delim('[') {
			return nil, errors.New(`"records" must be an array`)
		}
		recs = recs[:0]
		for dec.More() {
			if len(recs) == maxRecords {
				return nil, errTooManyRecords
			}
			if !ch.take(producedRecordCost) {
				return nil, errBudget
			}
			var pr produceRecord
			if err := dec.Decode(&pr); err != nil {
				return nil, err
			}
			recs = append(recs, pr)
		}
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the produce body")
	}
	return recs, nil
}

// produce answers POST /topics/{topic} and POST /topics/{topic}/partitions/{p}.
// What it allocates is charged to the request: the body's records as they
// are decoded (at most --max-rest-records-per-request of them), their keys
// and values, the batches built from them and the answer: about three times
// the body plus a few hundred bytes per record.
func (a *API) produce(c *call, rp restPath, body []byte) {
	var binary bool
	switch ct := mediaType(c.r.Head.HeaderBytes("Content-Type")); ct {
	case ctBinaryV2:
		binary = true
	case ctJSONV2, "application/json":
	default:
		c.respond(restError(415, 415, "Content-Type "+strconv.Quote(ct)+" is not supported: use "+ctJSONV2+" or "+ctBinaryV2))
		return
	}
	g := a.gate
	maxRecs := g.conf().MaxRESTRecords // at least 1: New validated it
	// The decoded records' raw keys and values are copies of the body.
	if !c.ch.take(int64(len(body))) {
		c.respond(g.budgetRefusal("decoding a produce body"))
		return
	}
	prs, err := decodeProduceBody(body, maxRecs, c.ch)
	switch {
	case errors.Is(err, errTooManyRecords):
		c.respond(g.restLimit(413, 41301, "max-rest-records-per-request", int64(maxRecs), int64(maxRecs)+1,
			fmt.Sprintf("a produce body may hold at most %d records", maxRecs), nil))
		return
	case errors.Is(err, errBudget):
		c.respond(g.budgetRefusal("decoding a produce body"))
		return
	case err != nil:
		c.respond(restError(422, 42201, "malformed produce body: "+err.Error()))
		return
	case len(prs) == 0:
		c.respond(restError(422, 42201, "a produce body needs at least one record"))
		return
	}
	recs := make([]outRecord, len(prs))
	for i, pr := range prs {
		k, err := decodeKV(pr.Key, binary)
		if err != nil {
			c.respond(restError(422, 42201, fmt.Sprintf("record %d key: %v", i, err)))
			return
		}
		v, err := decodeKV(pr.Value, binary)
		if err != nil {
			c.respond(restError(422, 42201, fmt.Sprintf("record %d value: %v", i, err)))
			return
		}
		if binary && !c.ch.take(int64(cap(k)+cap(v))) {
			c.respond(g.budgetRefusal("decoding a produce body"))
			return
		}
		recs[i] = outRecord{key: k, value: v, partition: -1}
		switch {
		case rp.hasPart:
			recs[i].partition = rp.partition
		case pr.Partition != nil:
			recs[i].partition = *pr.Partition
		}
	}
	a.metadata(c, []string{rp.topic}, true, func(mr *kmsg.MetadataResponse) {
		if len(mr.Topics) != 1 || mr.Topics[0].ErrorCode != 0 || len(mr.Topics[0].Partitions) == 0 {
			c.respond(topicMissing(mr, rp.topic))
			return
		}
		n := int32(len(mr.Topics[0].Partitions))
		for i := range recs {
			switch p := recs[i].partition; {
			case p >= n:
				c.respond(restError(404, 40402, fmt.Sprintf("Partition %d of topic %s not found.", p, rp.topic)))
				return
			case p >= 0:
			case recs[i].key != nil:
				recs[i].partition = keyPartition(recs[i].key, n)
			default:
				recs[i].partition = int32(a.rr.Add(1)-1) % n
			}
		}
		a.sendProduce(c, rp.topic, recs)
	})
}

// outRecord is a record to produce.
type outRecord struct {
	key, value []byte
	partition  int32
	index      int32 // position within its partition's batch
}

func (a *API) sendProduce(c *call, topic string, recs []outRecord) {
	req, ok := kafkaRequest[kmsg.ProduceRequest](a, 3, 9)
	if !ok {
		c.respond(restError(502, 50002, "the Kafka handler does not serve Produce v3+"))
		return
	}
	var kvBytes int64
	for i := range recs {
		kvBytes += int64(len(recs[i].key) + len(recs[i].value))
	}
	if !c.ch.take(kvBytes + int64(len(recs))*(batchRecordCost+answerRecordCost)) {
		c.respond(a.gate.budgetRefusal("building produce batches"))
		return
	}
	byPart := map[int32][]int{}
	var order []int32
	for i := range recs {
		p := recs[i].partition
		if _, ok := byPart[p]; !ok {
			order = append(order, p)
		}
		recs[i].index = int32(len(byPart[p]))
		byPart[p] = append(byPart[p], i)
	}
	req.Acks = -1
	req.TimeoutMillis = produceTimeoutMs
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	now := time.Now().UnixMilli()
	for _, p := range order {
		kv := make([]recordbatch.Record, 0, len(byPart[p]))
		for _, i := range byPart[p] {
			kv = append(kv, recordbatch.Record{Key: recs[i].key, Value: recs[i].value, Timestamp: now})
		}
		rpart := kmsg.NewProduceRequestTopicPartition()
		rpart.Partition = p
		rpart.Records = recordbatch.Build(kv)
		rt.Partitions = append(rt.Partitions, rpart)
	}
	req.Topics = []kmsg.ProduceRequestTopic{rt}
	askKafka(a, c, req, restBadGateway, nil, func(pr *kmsg.ProduceResponse) {
		type result struct {
			base int64
			code int16
		}
		res := map[int32]result{}
		for _, t := range pr.Topics {
			for _, p := range t.Partitions {
				res[p.Partition] = result{p.BaseOffset, p.ErrorCode}
			}
		}
		// Written by hand into one buffer of about answerRecordCost per
		// record (charged above), in the shape of produceAnswer.
		out := make([]byte, 0, 64+len(recs)*64)
		out = append(out, `{"key_schema_id":null,"value_schema_id":null,"offsets":[`...)
		for i, rec := range recs {
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, `{"partition":`...)
			out = strconv.AppendInt(out, int64(rec.partition), 10)
			rs, ok := res[rec.partition]
			code, msg := 0, ""
			switch {
			case !ok:
				code, msg = 1, "no answer for this partition"
			case rs.code != 0:
				ke := kerr.ErrorForCode(rs.code)
				code, msg = 1, ke.Error()
				if kerr.IsRetriable(ke) {
					code = 2
				}
			}
			if code == 0 {
				out = append(out, `,"offset":`...)
				out = strconv.AppendInt(out, rs.base+int64(rec.index), 10)
				out = append(out, `,"error_code":null,"error":null}`...)
				continue
			}
			out = append(out, `,"offset":-1,"error_code":`...)
			out = strconv.AppendInt(out, int64(code), 10)
			out = append(out, `,"error":`...)
			out = appendJSONString(out, []byte(msg))
			out = append(out, '}')
		}
		out = append(out, "]}\n"...)
		c.respond(&loop.HTTPResponse{Status: 200, ContentType: ctV2, Body: out})
	})
}

// queryInt reads a non-negative integer query parameter.
func queryInt(q url.Values, name string, def int64) (int64, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("query parameter %s=%q: want a non-negative integer", name, s)
	}
	return v, nil
}

// fetch answers GET /topics/{topic}/partitions/{p}/records?offset=&max_bytes=&timeout=
// with a Fetch whose max_wait is timeout (ms). Without offset it reads from
// the start of the log. Accept chooses the format of keys and values:
// binary (base64, the default) or json (embedded JSON). max_bytes (and
// the answer) is capped at --max-rest-response-bytes.
func (a *API) fetch(c *call, rp restPath) {
	q, err := url.ParseQuery(string(c.r.Head.RawQuery))
	if err != nil {
		c.respond(restError(400, 40001, "malformed query: "+err.Error()))
		return
	}
	maxBytes, err1 := queryInt(q, "max_bytes", defaultFetchBytes)
	timeout, err2 := queryInt(q, "timeout", 0)
	offset, err3 := queryInt(q, "offset", -1)
	if err := errors.Join(err1, err2, err3); err != nil {
		c.respond(restError(400, 40001, err.Error()))
		return
	}
	if maxBytes < 1 {
		maxBytes = defaultFetchBytes
	}
	maxBytes = min(maxBytes, a.gate.conf().MaxRESTResponseBytes, math.MaxInt32)
	timeout = min(timeout, a.gate.conf().MaxRESTFetchWait.Milliseconds())
	asJSON := mediaType(c.r.Head.HeaderBytes("Accept")) == ctJSONV2
	ct := ctBinaryV2
	if asJSON {
		ct = ctJSONV2
	}
	if q.Get("offset") == "" {
		a.listOffset(c, rp, -2, func(start int64) {
			a.sendFetch(c, rp, start, int32(maxBytes), int32(timeout), asJSON, ct)
		})
		return
	}
	a.sendFetch(c, rp, offset, int32(maxBytes), int32(timeout), asJSON, ct)
}

func (a *API) sendFetch(c *call, rp restPath, offset int64, maxBytes, timeout int32, asJSON bool, ct string) {
	req, ok := kafkaRequest[kmsg.FetchRequest](a, 4, 12)
	if !ok {
		c.respond(restError(502, 50002, "the Kafka handler does not serve Fetch v4+"))
		return
	}
	req.ReplicaID = -1
	req.MaxWaitMillis = timeout
	req.MinBytes = 1
	req.MaxBytes = maxBytes
	req.SessionEpoch = -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = rp.topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition = rp.partition
	fp.FetchOffset = offset
	fp.PartitionMaxBytes = maxBytes
	fp.CurrentLeaderEpoch = -1
	fp.LastFetchedEpoch = -1
	fp.LogStartOffset = -1
	ft.Partitions = []kmsg.FetchRequestTopicPartition{fp}
	req.Topics = []kmsg.FetchRequestTopic{ft}
	askKafka(a, c, req, restBadGateway, nil, func(fr *kmsg.FetchResponse) {
		if fr.ErrorCode != 0 {
			c.respond(kafkaErrorAnswer(fr.ErrorCode, rp))
			return
		}
		c.respond(a.fetchAnswer(c, fr, rp, offset, asJSON, ct))
	})
}

// fetchAnswer renders a Fetch response as the REST answer. The fetched
// batches, each batch's decompressed records and the JSON are charged to
// the request as they are held, and the decompressed bytes and the JSON are
// each capped at --max-rest-response-bytes: the answer ends at the record
// that would cross the cap (the client reads on from the next offset). A
// batch that cannot be decoded, or a single batch or record larger than
// the cap, is reported to this consumer only, with the offset to resume
// from once nothing precedes it in the answer.
func (a *API) fetchAnswer(c *call, fr *kmsg.FetchResponse, rp restPath, offset int64, asJSON bool, ct string) *loop.HTTPResponse {
	g := a.gate
	limit := g.conf().MaxRESTResponseBytes
	var fetched int64
	for _, t := range fr.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				return kafkaErrorAnswer(p.ErrorCode, rp)
			}
			fetched += int64(len(p.RecordBatches))
		}
	}
	if !c.ch.take(fetched) {
		return g.budgetRefusal("reading fetched batches")
	}
	out, err := c.ch.grow(nil, 512)
	if err != nil {
		return g.budgetRefusal("building a fetch answer")
	}
	out = append(out, '[')
	var tooBig *bigRecordError
	d := &batchDecoder{ch: c.ch, maxOut: limit, room: func() int64 {
		if asJSON {
			return limit - int64(len(out))
		}
		return (limit - int64(len(out))) * 3 / 4 // base64 answers 4 bytes per 3
	}}
	for _, t := range fr.Topics {
		for _, p := range t.Partitions {
			err = d.decode(p.RecordBatches, offset, func(off int64, key, value []byte) bool {
				first := len(out) == 1
				n := recordJSONBound(rp.topic, key, value, asJSON)
				if int64(len(out))+n+3 > limit { // ",", and "]\n" to close
					if first {
						tooBig = &bigRecordError{offset: off, size: n + 3}
					}
					return false
				}
				if out, err = c.ch.grow(out, int(n)+1); err != nil {
					return false
				}
				if !first {
					out = append(out, ',')
				}
				out = appendRecordJSON(out, rp.topic, key, value, p.Partition, off, asJSON)
				return true
			})
			if err != nil {
				break
			}
		}
	}
	var corrupt *corruptBatchError
	var big *bigBatchError
	switch {
	case errors.Is(err, errBudget):
		return g.budgetRefusal("building a fetch answer")
	case tooBig != nil:
		return g.restLimit(422, 42202, "max-rest-response-bytes", limit, tooBig.size,
			fmt.Sprintf("the record at offset %d does not fit in a REST answer (read from offset %d to skip it)", tooBig.offset, tooBig.offset+1),
			&resume{Offset: tooBig.offset, NextOffset: tooBig.offset + 1})
	case errors.As(err, &big):
		return g.restLimit(422, 42202, "max-rest-response-bytes", limit, 0, big.Error(),
			&resume{Offset: big.base, NextOffset: big.next})
	case errors.As(err, &corrupt):
		g.corrupt.Inc()
		g.warn.Warn("corrupt-batch", "REST fetch met a corrupt stored batch; answered 500 to that consumer",
			"topic", rp.topic, "partition", rp.partition, "offset", corrupt.base, "err", corrupt.err)
		b, _ := json.Marshal(struct {
			ErrorCode int    `json:"error_code"`
			Message   string `json:"message"`
			resume
		}{50003, corrupt.Error(), resume{Offset: corrupt.base, NextOffset: corrupt.next}})
		return &loop.HTTPResponse{Status: 500, ContentType: ctV2, Body: append(b, '\n')}
	case err != nil:
		return restError(500, 50001, "decoding fetched records: "+err.Error())
	}
	out = append(out, ']', '\n')
	return &loop.HTTPResponse{Status: 200, ContentType: ct, Body: out}
}

// bigRecordError is one record whose JSON alone is larger than the cap.
type bigRecordError struct{ offset, size int64 }

// resume says where a consumer stopped by a batch it cannot read goes on.
type resume struct {
	Offset     int64 `json:"offset"`
	NextOffset int64 `json:"next_offset"`
}

// restLimit answers a limit of the REST API: the Confluent-style error
// code and message, the limit's name and values, and where to resume.
func (g *gate) restLimit(status, code int, limit string, configured, actual int64, msg string, at *resume) *loop.HTTPResponse {
	if c := g.tripped[limit]; c != nil {
		c.Inc()
	}
	g.warn.Warn(limit, "REST request refused", "limit", limit, "configured", configured, "actual", actual, "reason", msg)
	v := struct {
		ErrorCode  int    `json:"error_code"`
		Message    string `json:"message"`
		Error      string `json:"error"`
		Limit      string `json:"limit"`
		Configured int64  `json:"configured"`
		Actual     int64  `json:"actual,omitempty"`
		*resume
	}{code, msg, msg, limit, configured, actual, at}
	b, _ := json.Marshal(v)
	return &loop.HTTPResponse{Status: status, ContentType: ctV2, Body: append(b, '\n')}
}

// recordJSONBound is the length of a record's JSON object, exact but for
// the digits of its partition and offset (counted at their widest).
func recordJSONBound(topic string, key, value []byte, asJSON bool) int64 {
	return int64(len(`{"topic":"","key":,"value":,"partition":,"offset":}`)+len(topic)+11+20) +
		kvJSONLen(key, asJSON) + kvJSONLen(value, asJSON)
}

// kvJSONLen is the length appendKV writes for b.
func kvJSONLen(b []byte, asJSON bool) int64 {
	switch {
	case b == nil:
		return 4
	case !asJSON:
		return int64(base64.StdEncoding.EncodedLen(len(b))) + 2
	case json.Valid(b):
		return int64(len(bytes.TrimSpace(b)))
	}
	return jsonStringLen(b)
}

// jsonStringLen is the length appendJSONString writes for b.
func jsonStringLen(b []byte) int64 {
	n := int64(2)
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
				n += 2
			case c < 0x20:
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && size == 1, r == '\u2028' || r == '\u2029':
			n += 6
		default:
			n += int64(size)
		}
		i += size
	}
	return n
}

// appendRecordJSON appends one fetched record as
// {"topic":..,"key":..,"value":..,"partition":..,"offset":..}. The topic
// name was validated (no character needs escaping).
func appendRecordJSON(out []byte, topic string, key, value []byte, partition int32, offset int64, asJSON bool) []byte {
	out = append(out, `{"topic":"`...)
	out = append(out, topic...)
	out = append(out, `","key":`...)
	out = appendKV(out, key, asJSON)
	out = append(out, `,"value":`...)
	out = appendKV(out, value, asJSON)
	out = append(out, `,"partition":`...)
	out = strconv.AppendInt(out, int64(partition), 10)
	out = append(out, `,"offset":`...)
	out = strconv.AppendInt(out, offset, 10)
	return append(out, '}')
}

// appendKV renders fetched bytes: base64 for binary; for json the bytes
// themselves when they are valid JSON, else a JSON string of them.
func appendKV(out, b []byte, asJSON bool) []byte {
	switch {
	case b == nil:
		return append(out, "null"...)
	case !asJSON:
		out = append(out, '"')
		out = base64.StdEncoding.AppendEncode(out, b)
		return append(out, '"')
	case json.Valid(b):
		return append(out, bytes.TrimSpace(b)...)
	}
	return appendJSONString(out, b)
}

// appendJSONString appends b as a JSON string, as encoding/json would:
// invalid UTF-8 becomes U+FFFD, control characters and U+2028/2029 are
// escaped.
func appendJSONString(out, b []byte) []byte {
	const hex = "0123456789abcdef"
	out = append(out, '"')
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				out = append(out, '\\', c)
			case c == '\n':
				out = append(out, '\\', 'n')
			case c == '\r':
				out = append(out, '\\', 'r')
			case c == '\t':
				out = append(out, '\\', 't')
			case c < 0x20:
				out = append(out, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				out = append(out, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			out = append(out, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			out = append(out, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			out = append(out, b[i:i+size]...)
		}
		i += size
	}
	return append(out, '"')
}

// kafkaErrorAnswer maps a Kafka error of a partition request to HTTP.
func kafkaErrorAnswer(code int16, rp restPath) *loop.HTTPResponse {
	ke := kerr.ErrorForCode(code)
	switch code {
	case kerr.TopicAuthorizationFailed.Code, kerr.GroupAuthorizationFailed.Code, kerr.ClusterAuthorizationFailed.Code:
		return restError(403, 40301, ke.Error())
	case 3: // UNKNOWN_TOPIC_OR_PARTITION
		return restError(404, 40402, fmt.Sprintf("Partition %d of topic %s not found.", rp.partition, rp.topic))
	case 1: // OFFSET_OUT_OF_RANGE
		return restError(416, 41601, ke.Error())
	}
	if kerr.IsRetriable(ke) {
		return restError(503, 50302, ke.Error())
	}
	return restError(500, 50001, ke.Error())
}

// listOffset resolves a timestamp (-2 earliest, -1 latest) of one
// partition with ListOffsets.
func (a *API) listOffset(c *call, rp restPath, ts int64, then func(int64)) {
	req, ok := kafkaRequest[kmsg.ListOffsetsRequest](a, 1, 4)
	if !ok {
		c.respond(restError(502, 50002, "the Kafka handler does not serve ListOffsets v1+"))
		return
	}
	req.ReplicaID = -1
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = rp.topic
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Partition = rp.partition
	lp.Timestamp = ts
	lp.CurrentLeaderEpoch = -1
	lt.Partitions = []kmsg.ListOffsetsRequestTopicPartition{lp}
	req.Topics = []kmsg.ListOffsetsRequestTopic{lt}
	askKafka(a, c, req, restBadGateway, func(lr *kmsg.ListOffsetsResponse) bool {
		return len(lr.Topics) == 1 && len(lr.Topics[0].Partitions) == 1
	}, func(lr *kmsg.ListOffsetsResponse) {
		p := lr.Topics[0].Partitions[0]
		if p.ErrorCode != 0 {
			c.respond(kafkaErrorAnswer(p.ErrorCode, rp))
			return
		}
		then(p.Offset)
	})
}

// offsets answers GET /topics/{topic}/partitions/{p}/offsets:
// {"beginning_offset":..,"end_offset":..}.
func (a *API) offsets(c *call, rp restPath) {
	a.listOffset(c, rp, -2, func(start int64) {
		a.listOffset(c, rp, -1, func(end int64) {
			c.respond(jsonAnswer(200, ctV2, struct {
				Beginning int64 `json:"beginning_offset"`
				End       int64 `json:"end_offset"`
			}{start, end}))
		})
	})
}
