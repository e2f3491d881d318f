package httpapi

// The REST API for topics, compatible with Confluent REST Proxy v2 for the
// parts it implements. Every route is served by building real Kafka
// requests (Metadata, Produce v9, Fetch v12, ListOffsets) and handing them
// to the Kafka handler, so the same code serves the embedded broker and a
// gateway to an upstream cluster. Nothing here blocks a worker: each Kafka
// answer continues the request in its callback.

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

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
	maxFetchWait       = 30 * time.Second
	defaultFetchBytes  = 1 << 20
	produceTimeoutMs   = 30000
	maxRecordsPerBatch = 1 << 20
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

// kafka sends req to the Kafka handler and calls then with the response,
// or answers 502/504 itself when there is none.
func (a *API) kafka(req kmsg.Request, r *loop.HTTPRequest, respond func(*loop.HTTPResponse), then func(kmsg.Response)) {
	a.cfg.Kafka.ServeKafka(req, clientID, r.RemoteIP.String(), func(resp kmsg.Response) {
		if resp == nil {
			respond(restError(502, 50002, "no response from the Kafka handler"))
			return
		}
		then(resp)
	})
}

func (a *API) serveREST(ep int, r *loop.HTTPRequest, body []byte, respond func(*loop.HTTPResponse)) {
	if a.cfg.Kafka == nil {
		respond(restError(503, 50301, "no Kafka handler configured"))
		return
	}
	method := r.Head.Method
	if ep == epTopics {
		if !isGetOrHead(method) {
			respond(methodNotAllowed("GET, HEAD"))
			return
		}
		a.listTopics(r, respond)
		return
	}
	rp, err := parseRESTPath(r.Head.Path)
	if err != nil {
		respond(restError(404, 40401, err.Error()))
		return
	}
	switch ep {
	case epTopic:
		switch method {
		case "GET", "HEAD":
			a.describeTopic(r, rp, respond)
		case "POST":
			a.produce(r, rp, body, respond)
		default:
			respond(methodNotAllowed("GET, HEAD, POST"))
		}
	case epPartition:
		if method != "POST" {
			respond(methodNotAllowed("POST"))
			return
		}
		a.produce(r, rp, body, respond)
	case epRecords:
		if !isGetOrHead(method) {
			respond(methodNotAllowed("GET, HEAD"))
			return
		}
		a.fetch(r, rp, respond)
	case epOffsets:
		if !isGetOrHead(method) {
			respond(methodNotAllowed("GET, HEAD"))
			return
		}
		a.offsets(r, rp, respond)
	}
}

// metadata asks for topics (nil: all of them).
func (a *API) metadata(r *loop.HTTPRequest, topics []string, create bool, respond func(*loop.HTTPResponse), then func(*kmsg.MetadataResponse)) {
	v, ok := a.version(3, 1, 12)
	if !ok {
		respond(restError(502, 50002, "the Kafka handler does not serve Metadata"))
		return
	}
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(v)
	req.AllowAutoTopicCreation = create
	if topics != nil {
		req.Topics = []kmsg.MetadataRequestTopic{}
		for _, t := range topics {
			mt := kmsg.NewMetadataRequestTopic()
			mt.Topic = kmsg.StringPtr(t)
			req.Topics = append(req.Topics, mt)
		}
	}
	a.kafka(req, r, respond, func(resp kmsg.Response) {
		mr, ok := resp.(*kmsg.MetadataResponse)
		if !ok {
			respond(restError(502, 50002, "unexpected response to Metadata"))
			return
		}
		then(mr)
	})
}

// listTopics answers GET /topics: ["a","b"].
func (a *API) listTopics(r *loop.HTTPRequest, respond func(*loop.HTTPResponse)) {
	a.metadata(r, nil, false, respond, func(mr *kmsg.MetadataResponse) {
		names := []string{}
		for _, t := range mr.Topics {
			if t.Topic != nil && t.ErrorCode == 0 && !t.IsInternal {
				names = append(names, *t.Topic)
			}
		}
		sortStrings(names)
		respond(jsonAnswer(200, ctV2, names))
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
func (a *API) describeTopic(r *loop.HTTPRequest, rp restPath, respond func(*loop.HTTPResponse)) {
	a.metadata(r, []string{rp.topic}, false, respond, func(mr *kmsg.MetadataResponse) {
		if len(mr.Topics) != 1 || mr.Topics[0].ErrorCode != 0 {
			respond(restError(404, 40401, "Topic "+rp.topic+" not found."))
			return
		}
		t := mr.Topics[0]
		ti := topicInfo{Name: rp.topic, Configs: map[string]string{}}
		for _, p := range t.Partitions {
			pi := partitionInfo{Partition: p.Partition, Leader: p.Leader}
			isr := map[int32]bool{}
			for _, id := range p.ISR {
				isr[id] = true
			}
			for _, id := range p.Replicas {
				pi.Replicas = append(pi.Replicas, replicaInfo{Broker: id, Leader: id == p.Leader, InSync: isr[id]})
			}
			ti.Partitions = append(ti.Partitions, pi)
		}
		sortPartitions(ti.Partitions)
		respond(jsonAnswer(200, ctV2, ti))
	})
}

// produceRecord is one record of a produce body. Key and value stay raw
// JSON: embedded JSON for the json format, base64 strings for binary.
type produceRecord struct {
	Key       json.RawMessage `json:"key"`
	Value     json.RawMessage `json:"value"`
	Partition *int32          `json:"partition"`
}

type produceBody struct {
	Records []produceRecord `json:"records"`
}

// offsetAnswer is one record's outcome: error_code 1 is a non-retriable
// Kafka error, 2 a retriable one (as Confluent's REST Proxy answers).
type offsetAnswer struct {
	Partition int32   `json:"partition"`
	Offset    int64   `json:"offset"`
	ErrorCode *int    `json:"error_code"`
	Error     *string `json:"error"`
}

type produceAnswer struct {
	KeySchemaID   *int           `json:"key_schema_id"`
	ValueSchemaID *int           `json:"value_schema_id"`
	Offsets       []offsetAnswer `json:"offsets"`
}

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
// absent, the JSON text itself for the json format, base64 for binary.
func decodeKV(raw json.RawMessage, binary bool) ([]byte, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return nil, nil
	}
	if !binary {
		return []byte(s), nil
	}
	var str string
	if err := json.Unmarshal(raw, &str); err != nil {
		return nil, errors.New("binary keys and values must be base64 strings")
	}
	b, err := base64.StdEncoding.DecodeString(str)
	if err != nil {
		return nil, fmt.Errorf("invalid base64: %w", err)
	}
	return b, nil
}

// produce answers POST /topics/{topic} and POST /topics/{topic}/partitions/{p}.
func (a *API) produce(r *loop.HTTPRequest, rp restPath, body []byte, respond func(*loop.HTTPResponse)) {
	var binary bool
	switch ct := mediaType(r.Head.HeaderBytes("Content-Type")); ct {
	case ctBinaryV2:
		binary = true
	case ctJSONV2, "application/json":
	default:
		respond(restError(415, 415, "Content-Type "+strconv.Quote(ct)+" is not supported: use "+ctJSONV2+" or "+ctBinaryV2))
		return
	}
	var pb produceBody
	if err := json.Unmarshal(body, &pb); err != nil {
		respond(restError(422, 42201, "malformed produce body: "+err.Error()))
		return
	}
	if len(pb.Records) == 0 || len(pb.Records) > maxRecordsPerBatch {
		respond(restError(422, 42201, "a produce body needs 1 to "+strconv.Itoa(maxRecordsPerBatch)+" records"))
		return
	}
	recs := make([]outRecord, len(pb.Records))
	for i, pr := range pb.Records {
		k, err := decodeKV(pr.Key, binary)
		if err != nil {
			respond(restError(422, 42201, fmt.Sprintf("record %d key: %v", i, err)))
			return
		}
		v, err := decodeKV(pr.Value, binary)
		if err != nil {
			respond(restError(422, 42201, fmt.Sprintf("record %d value: %v", i, err)))
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
	a.metadata(r, []string{rp.topic}, true, respond, func(mr *kmsg.MetadataResponse) {
		if len(mr.Topics) != 1 || mr.Topics[0].ErrorCode != 0 || len(mr.Topics[0].Partitions) == 0 {
			respond(restError(404, 40401, "Topic "+rp.topic+" not found."))
			return
		}
		n := int32(len(mr.Topics[0].Partitions))
		for i := range recs {
			switch p := recs[i].partition; {
			case p >= n:
				respond(restError(404, 40402, fmt.Sprintf("Partition %d of topic %s not found.", p, rp.topic)))
				return
			case p >= 0:
			case recs[i].key != nil:
				recs[i].partition = int32(murmur2(recs[i].key)&0x7fffffff) % n
			default:
				recs[i].partition = int32(a.rr.Add(1)-1) % n
			}
		}
		a.sendProduce(r, rp.topic, recs, respond)
	})
}

// outRecord is a record to produce.
type outRecord struct {
	key, value []byte
	partition  int32
	index      int32 // position within its partition's batch
}

func (a *API) sendProduce(r *loop.HTTPRequest, topic string, recs []outRecord, respond func(*loop.HTTPResponse)) {
	v, ok := a.version(0, 3, 9)
	if !ok {
		respond(restError(502, 50002, "the Kafka handler does not serve Produce v3+"))
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
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(v)
	req.Acks = -1
	req.TimeoutMillis = produceTimeoutMs
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	now := time.Now().UnixMilli()
	for _, p := range order {
		kv := make([]kvPair, 0, len(byPart[p]))
		for _, i := range byPart[p] {
			kv = append(kv, kvPair{recs[i].key, recs[i].value})
		}
		rpart := kmsg.NewProduceRequestTopicPartition()
		rpart.Partition = p
		rpart.Records = buildBatch(kv, now)
		rt.Partitions = append(rt.Partitions, rpart)
	}
	req.Topics = []kmsg.ProduceRequestTopic{rt}
	a.kafka(req, r, respond, func(resp kmsg.Response) {
		pr, ok := resp.(*kmsg.ProduceResponse)
		if !ok {
			respond(restError(502, 50002, "unexpected response to Produce"))
			return
		}
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
		ans := produceAnswer{Offsets: make([]offsetAnswer, len(recs))}
		for i, rec := range recs {
			o := offsetAnswer{Partition: rec.partition, Offset: -1}
			rs, ok := res[rec.partition]
			switch {
			case !ok:
				code, msg := 1, "no answer for this partition"
				o.ErrorCode, o.Error = &code, &msg
			case rs.code != 0:
				ke := kerr.ErrorForCode(rs.code)
				code, msg := 1, ke.Error()
				if kerr.IsRetriable(ke) {
					code = 2
				}
				o.ErrorCode, o.Error = &code, &msg
			default:
				o.Offset = rs.base + int64(rec.index)
			}
			ans.Offsets[i] = o
		}
		respond(jsonAnswer(200, ctV2, ans))
	})
}

// fetchedRecord is one record of GET .../records.
type fetchedRecord struct {
	Topic     string          `json:"topic"`
	Key       json.RawMessage `json:"key"`
	Value     json.RawMessage `json:"value"`
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
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
// binary (base64, the default) or json (embedded JSON).
func (a *API) fetch(r *loop.HTTPRequest, rp restPath, respond func(*loop.HTTPResponse)) {
	q, err := url.ParseQuery(string(r.Head.RawQuery))
	if err != nil {
		respond(restError(400, 40001, "malformed query: "+err.Error()))
		return
	}
	maxBytes, err1 := queryInt(q, "max_bytes", defaultFetchBytes)
	timeout, err2 := queryInt(q, "timeout", 0)
	offset, err3 := queryInt(q, "offset", -1)
	if err := errors.Join(err1, err2, err3); err != nil {
		respond(restError(400, 40001, err.Error()))
		return
	}
	if maxBytes < 1 || maxBytes > 1<<30 {
		maxBytes = defaultFetchBytes
	}
	if time.Duration(timeout)*time.Millisecond > maxFetchWait {
		timeout = maxFetchWait.Milliseconds()
	}
	asJSON := mediaType(r.Head.HeaderBytes("Accept")) == ctJSONV2
	ct := ctBinaryV2
	if asJSON {
		ct = ctJSONV2
	}
	if q.Get("offset") == "" {
		a.listOffset(r, rp, -2, respond, func(start int64) {
			a.sendFetch(r, rp, start, int32(maxBytes), int32(timeout), asJSON, ct, respond)
		})
		return
	}
	a.sendFetch(r, rp, offset, int32(maxBytes), int32(timeout), asJSON, ct, respond)
}

func (a *API) sendFetch(r *loop.HTTPRequest, rp restPath, offset int64, maxBytes, timeout int32, asJSON bool, ct string, respond func(*loop.HTTPResponse)) {
	v, ok := a.version(1, 4, 12)
	if !ok {
		respond(restError(502, 50002, "the Kafka handler does not serve Fetch v4+"))
		return
	}
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(v)
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
	a.kafka(req, r, respond, func(resp kmsg.Response) {
		fr, ok := resp.(*kmsg.FetchResponse)
		if !ok {
			respond(restError(502, 50002, "unexpected response to Fetch"))
			return
		}
		if fr.ErrorCode != 0 {
			respond(kafkaErrorAnswer(fr.ErrorCode, rp))
			return
		}
		out := []fetchedRecord{}
		for _, t := range fr.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 {
					respond(kafkaErrorAnswer(p.ErrorCode, rp))
					return
				}
				recs, err := decodeBatches(p.RecordBatches, offset, a.cfg.Limits.MaxDecompressedBytes)
				if err != nil {
					respond(restError(502, 50002, "decoding fetched records: "+err.Error()))
					return
				}
				for _, rec := range recs {
					out = append(out, fetchedRecord{Topic: rp.topic, Key: encodeKV(rec.key, asJSON),
						Value: encodeKV(rec.value, asJSON), Partition: p.Partition, Offset: rec.offset})
				}
			}
		}
		respond(jsonAnswer(200, ct, out))
	})
}

// encodeKV renders fetched bytes: base64 for binary; for json the bytes
// themselves when they are valid JSON, else a JSON string of them.
func encodeKV(b []byte, asJSON bool) json.RawMessage {
	if b == nil {
		return json.RawMessage("null")
	}
	if asJSON && json.Valid(b) {
		return json.RawMessage(b)
	}
	var s []byte
	if asJSON {
		s, _ = json.Marshal(string(b))
	} else {
		s, _ = json.Marshal(base64.StdEncoding.EncodeToString(b))
	}
	return json.RawMessage(s)
}

// kafkaErrorAnswer maps a Kafka error of a partition request to HTTP.
func kafkaErrorAnswer(code int16, rp restPath) *loop.HTTPResponse {
	ke := kerr.ErrorForCode(code)
	switch code {
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
func (a *API) listOffset(r *loop.HTTPRequest, rp restPath, ts int64, respond func(*loop.HTTPResponse), then func(int64)) {
	v, ok := a.version(2, 1, 4)
	if !ok {
		respond(restError(502, 50002, "the Kafka handler does not serve ListOffsets v1+"))
		return
	}
	req := kmsg.NewPtrListOffsetsRequest()
	req.SetVersion(v)
	req.ReplicaID = -1
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = rp.topic
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Partition = rp.partition
	lp.Timestamp = ts
	lp.CurrentLeaderEpoch = -1
	lt.Partitions = []kmsg.ListOffsetsRequestTopicPartition{lp}
	req.Topics = []kmsg.ListOffsetsRequestTopic{lt}
	a.kafka(req, r, respond, func(resp kmsg.Response) {
		lr, ok := resp.(*kmsg.ListOffsetsResponse)
		if !ok || len(lr.Topics) != 1 || len(lr.Topics[0].Partitions) != 1 {
			respond(restError(502, 50002, "unexpected response to ListOffsets"))
			return
		}
		p := lr.Topics[0].Partitions[0]
		if p.ErrorCode != 0 {
			respond(kafkaErrorAnswer(p.ErrorCode, rp))
			return
		}
		then(p.Offset)
	})
}

// offsets answers GET /topics/{topic}/partitions/{p}/offsets:
// {"beginning_offset":..,"end_offset":..}.
func (a *API) offsets(r *loop.HTTPRequest, rp restPath, respond func(*loop.HTTPResponse)) {
	a.listOffset(r, rp, -2, respond, func(start int64) {
		a.listOffset(r, rp, -1, respond, func(end int64) {
			respond(jsonAnswer(200, ctV2, struct {
				Beginning int64 `json:"beginning_offset"`
				End       int64 `json:"end_offset"`
			}{start, end}))
		})
	})
}
