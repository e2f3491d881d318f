package httpapi

// The basics of Confluent REST Proxy's v3 API (application/json):
//
//	GET    /v3/clusters                              one cluster: the Kafka handler's
//	GET    /v3/clusters/{id}
//	GET    /v3/clusters/{id}/topics
//	POST   /v3/clusters/{id}/topics                  CreateTopics
//	GET    /v3/clusters/{id}/topics/{topic}
//	DELETE /v3/clusters/{id}/topics/{topic}          DeleteTopics
//	POST   /v3/clusters/{id}/topics/{topic}/records  Produce, headers kept
//
// A records body holds one record object, or several one after the other
// (Confluent's streamed form): the answer is one object per record, in
// order, one per line; one record alone answers with its own status. A key
// or value without "type" is JSON. Errors have Confluent's v3 shape,
// {"error_code": <HTTP status>, "message": ...}.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/codec/recordbatch"
	"github.com/floodgate/floodgate/loop"
)

const ctJSON = "application/json"

// v3BadGateway is the v3 answer to a Kafka handler that failed.
func v3BadGateway(msg string) *loop.HTTPResponse { return v3Error(502, msg) }

// v3Error is an error in the v3 shape.
func v3Error(status int, msg string) *loop.HTTPResponse {
	return jsonAnswer(status, ctJSON, struct {
		ErrorCode int    `json:"error_code"`
		Message   string `json:"message"`
	}{status, msg})
}

// v3Path is a parsed /v3/clusters[/{id}[/topics[/{topic}[/records]]]].
type v3Path struct {
	cluster, topic string
	depth          int // 1 clusters, 2 a cluster, 3 its topics, 4 a topic, 5 its records
}

func parseV3Path(path []byte) (v3Path, bool) {
	var vp v3Path
	segs := strings.Split(strings.TrimSuffix(strings.TrimPrefix(string(path), "/v3/"), "/"), "/")
	if len(segs) == 0 || segs[0] != "clusters" || len(segs) > 5 {
		return vp, false
	}
	vp.depth = len(segs)
	if len(segs) >= 2 {
		id, err := url.PathUnescape(segs[1])
		if err != nil || id == "" {
			return vp, false
		}
		vp.cluster = id
	}
	if len(segs) >= 3 && segs[2] != "topics" {
		return vp, false
	}
	if len(segs) >= 4 {
		t, err := url.PathUnescape(segs[3])
		if err != nil || !validTopic(t) {
			return vp, false
		}
		vp.topic = t
	}
	if len(segs) == 5 && segs[4] != "records" {
		return vp, false
	}
	return vp, true
}

// clusterID is the cluster's id from Metadata (v2+), or "floodgate" when
// the handler names none.
func clusterID(mr *kmsg.MetadataResponse) string {
	if mr.ClusterID != nil && *mr.ClusterID != "" {
		return *mr.ClusterID
	}
	return "floodgate"
}

// related is a v3 link.
type related struct {
	Related string `json:"related"`
}

type v3Meta struct {
	Self         string  `json:"self"`
	ResourceName string  `json:"resource_name,omitempty"`
	Next         *string `json:"next,omitempty"`
}

type v3Cluster struct {
	Kind                   string  `json:"kind"`
	Metadata               v3Meta  `json:"metadata"`
	ClusterID              string  `json:"cluster_id"`
	Controller             related `json:"controller"`
	ACLs                   related `json:"acls"`
	Brokers                related `json:"brokers"`
	BrokerConfigs          related `json:"broker_configs"`
	ConsumerGroups         related `json:"consumer_groups"`
	Topics                 related `json:"topics"`
	PartitionReassignments related `json:"partition_reassignments"`
}

type v3Topic struct {
	Kind                   string   `json:"kind"`
	Metadata               v3Meta   `json:"metadata"`
	ClusterID              string   `json:"cluster_id"`
	TopicName              string   `json:"topic_name"`
	IsInternal             bool     `json:"is_internal"`
	ReplicationFactor      int      `json:"replication_factor"`
	PartitionsCount        int      `json:"partitions_count"`
	Partitions             related  `json:"partitions"`
	Configs                related  `json:"configs"`
	PartitionReassignments related  `json:"partition_reassignments"`
	AuthorizedOperations   []string `json:"authorized_operations"`
}

// base is the URL prefix of the links in answers: the request's scheme
// (https:// over the HTTPS listener, so that a client following a link
// does not send its next request, credentials included, in the clear)
// and Host.
func base(c *call) string {
	host := string(c.r.Head.HeaderBytes("Host"))
	if host == "" {
		host = "localhost"
	}
	if c.r.TLS {
		return "https://" + host
	}
	return "http://" + host
}

func cluster(c *call, id string, controller int32) v3Cluster {
	u := base(c) + "/v3/clusters/" + id
	return v3Cluster{Kind: "KafkaCluster", Metadata: v3Meta{Self: u, ResourceName: "crn:///kafka=" + id}, ClusterID: id,
		Controller: related{u + "/brokers/" + strconv.Itoa(int(controller))}, ACLs: related{u + "/acls"},
		Brokers: related{u + "/brokers"}, BrokerConfigs: related{u + "/broker-configs"},
		ConsumerGroups: related{u + "/consumer-groups"}, Topics: related{u + "/topics"},
		PartitionReassignments: related{u + "/topics/-/partitions/-/reassignment"}}
}

func topicEntry(c *call, id, name string, internal bool, partitions, rf int) v3Topic {
	u := base(c) + "/v3/clusters/" + id + "/topics/" + name
	return v3Topic{Kind: "KafkaTopic", Metadata: v3Meta{Self: u, ResourceName: "crn:///kafka=" + id + "/topic=" + name},
		ClusterID: id, TopicName: name, IsInternal: internal, ReplicationFactor: rf, PartitionsCount: partitions,
		Partitions: related{u + "/partitions"}, Configs: related{u + "/configs"},
		PartitionReassignments: related{u + "/partitions/-/reassignment"}, AuthorizedOperations: []string{}}
}

func topicFromMetadata(c *call, id string, t *kmsg.MetadataResponseTopic) v3Topic {
	rf := 0
	if len(t.Partitions) > 0 {
		rf = len(t.Partitions[0].Replicas)
	}
	return topicEntry(c, id, *t.Topic, t.IsInternal, len(t.Partitions), rf)
}

// serveV3 routes /v3/...: every route first learns the cluster's id (and
// checks the one in the path) with a Metadata request.
func (a *API) serveV3(c *call, body []byte) {
	vp, ok := parseV3Path(c.r.Head.Path)
	if !ok {
		c.respond(v3Error(404, "HTTP 404 Not Found"))
		return
	}
	method := c.r.Head.Method
	allow := map[int]string{1: "GET, HEAD", 2: "GET, HEAD", 3: "GET, HEAD, POST", 4: "GET, HEAD, DELETE", 5: "POST"}[vp.depth]
	if !slices.Contains(strings.Split(allow, ", "), method) {
		c.respond(methodNotAllowed(allow))
		return
	}
	var topics []string // every topic for a topic list; none otherwise
	switch {
	case vp.depth == 4:
		topics = []string{vp.topic}
	case vp.depth != 3 || method != "GET" && method != "HEAD":
		topics = []string{}
	}
	a.metadata(c, topics, false, func(mr *kmsg.MetadataResponse) {
		id := clusterID(mr)
		if vp.depth >= 2 && vp.cluster != id {
			c.respond(v3Error(404, "Cluster "+vp.cluster+" not found."))
			return
		}
		switch vp.depth {
		case 1:
			c.respond(jsonAnswer(200, ctJSON, struct {
				Kind     string      `json:"kind"`
				Metadata v3Meta      `json:"metadata"`
				Data     []v3Cluster `json:"data"`
			}{"KafkaClusterList", v3Meta{Self: base(c) + "/v3/clusters"}, []v3Cluster{cluster(c, id, mr.ControllerID)}}))
		case 2:
			c.respond(jsonAnswer(200, ctJSON, cluster(c, id, mr.ControllerID)))
		case 3:
			if method == "POST" {
				a.createTopicV3(c, id, body)
				return
			}
			list := []v3Topic{}
			for i := range mr.Topics {
				if t := &mr.Topics[i]; t.Topic != nil && t.ErrorCode == 0 {
					list = append(list, topicFromMetadata(c, id, t))
				}
			}
			sort.Slice(list, func(i, j int) bool { return list[i].TopicName < list[j].TopicName })
			c.respond(jsonAnswer(200, ctJSON, struct {
				Kind     string    `json:"kind"`
				Metadata v3Meta    `json:"metadata"`
				Data     []v3Topic `json:"data"`
			}{"KafkaTopicList", v3Meta{Self: base(c) + "/v3/clusters/" + id + "/topics"}, list}))
		case 4:
			if method == "DELETE" {
				a.deleteTopicV3(c, vp.topic)
				return
			}
			if len(mr.Topics) != 1 || mr.Topics[0].ErrorCode != 0 || mr.Topics[0].Topic == nil {
				c.respond(v3Error(404, "This server does not host this topic-partition."))
				return
			}
			c.respond(jsonAnswer(200, ctJSON, topicFromMetadata(c, id, &mr.Topics[0])))
		case 5:
			a.produceV3(c, id, vp.topic, body)
		}
	})
}

// v3JSONBody checks a v3 body's Content-Type (absent is taken as JSON).
func v3JSONBody(c *call) *loop.HTTPResponse {
	switch ct := mediaType(c.r.Head.HeaderBytes("Content-Type")); ct {
	case "", ctJSON:
		return nil
	default:
		return v3Error(415, "Content-Type "+strconv.Quote(ct)+" is not supported: use "+ctJSON)
	}
}

// createTopicV3 answers POST /v3/clusters/{id}/topics with CreateTopics.
func (a *API) createTopicV3(c *call, id string, body []byte) {
	if r := v3JSONBody(c); r != nil {
		c.respond(r)
		return
	}
	var b struct {
		Name              string `json:"topic_name"`
		PartitionsCount   *int32 `json:"partitions_count"`
		ReplicationFactor *int16 `json:"replication_factor"`
		Configs           []struct {
			Name  string  `json:"name"`
			Value *string `json:"value"`
		} `json:"configs"`
	}
	if !c.ch.take(2 * int64(len(body))) {
		c.respond(a.gate.budgetRefusal("decoding a request body"))
		return
	}
	if err := json.Unmarshal(body, &b); err != nil {
		c.respond(v3Error(400, "malformed request body: "+err.Error()))
		return
	}
	if !validTopic(b.Name) {
		c.respond(v3Error(400, fmt.Sprintf("invalid topic name %q", b.Name)))
		return
	}
	req, ok := kafkaRequest[kmsg.CreateTopicsRequest](a, 4, 7) // v4+: -1 means the broker's default
	if !ok {
		c.respond(v3Error(502, "the Kafka handler does not serve CreateTopics v4+"))
		return
	}
	req.TimeoutMillis = produceTimeoutMs
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = b.Name, -1, -1
	if b.PartitionsCount != nil {
		rt.NumPartitions = *b.PartitionsCount
	}
	if b.ReplicationFactor != nil {
		rt.ReplicationFactor = *b.ReplicationFactor
	}
	for _, cfg := range b.Configs {
		rc := kmsg.NewCreateTopicsRequestTopicConfig()
		rc.Name, rc.Value = cfg.Name, cfg.Value
		rt.Configs = append(rt.Configs, rc)
	}
	req.Topics = []kmsg.CreateTopicsRequestTopic{rt}
	askKafka(a, c, req, v3BadGateway, func(cr *kmsg.CreateTopicsResponse) bool { return len(cr.Topics) == 1 }, func(cr *kmsg.CreateTopicsResponse) {
		t := cr.Topics[0]
		if t.ErrorCode != 0 {
			msg := kerr.ErrorForCode(t.ErrorCode).Error()
			if t.ErrorMessage != nil && *t.ErrorMessage != "" {
				msg = *t.ErrorMessage
			}
			switch t.ErrorCode {
			case 36: // TOPIC_ALREADY_EXISTS
				c.respond(v3Error(400, "Topic '"+b.Name+"' already exists."))
			case 17, 37, 38, 39, 40, 42: // invalid topic, partitions, replication, assignment, config, request
				c.respond(v3Error(400, msg))
			default:
				c.respond(kafkaV3Error(t.ErrorCode, msg))
			}
			return
		}
		parts, rf := int(t.NumPartitions), int(t.ReplicationFactor)
		if req.Version < 5 { // the answer carries them from v5 only
			parts, rf = int(rt.NumPartitions), int(rt.ReplicationFactor)
		}
		c.respond(jsonAnswer(201, ctJSON, topicEntry(c, id, b.Name, false, parts, rf)))
	})
}

// kafkaV3Error maps a Kafka error to a v3 answer: 503 when retriable.
func kafkaV3Error(code int16, msg string) *loop.HTTPResponse {
	if kerr.IsRetriable(kerr.ErrorForCode(code)) {
		return v3Error(503, msg)
	}
	return v3Error(500, msg)
}

// deleteTopicV3 answers DELETE /v3/clusters/{id}/topics/{topic}.
func (a *API) deleteTopicV3(c *call, topic string) {
	req, ok := kafkaRequest[kmsg.DeleteTopicsRequest](a, 1, 6)
	if !ok {
		c.respond(v3Error(502, "the Kafka handler does not serve DeleteTopics"))
		return
	}
	req.TimeoutMillis = produceTimeoutMs
	if req.Version >= 6 {
		dt := kmsg.NewDeleteTopicsRequestTopic()
		dt.Topic = kmsg.StringPtr(topic)
		req.Topics = []kmsg.DeleteTopicsRequestTopic{dt}
	} else {
		req.TopicNames = []string{topic}
	}
	askKafka(a, c, req, v3BadGateway, func(dr *kmsg.DeleteTopicsResponse) bool { return len(dr.Topics) == 1 }, func(dr *kmsg.DeleteTopicsResponse) {
		switch code := dr.Topics[0].ErrorCode; code {
		case 0:
			c.respond(&loop.HTTPResponse{Status: 204})
		case kafka.ErrUnknownTopicOrPartition:
			c.respond(v3Error(404, "This server does not host this topic-partition."))
		default:
			c.respond(kafkaV3Error(code, kerr.ErrorForCode(code).Error()))
		}
	})
}

// v3Data is a record's key or value: {"type": BINARY|JSON|STRING, "data": ...}.
type v3Data struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// v3Record is one record of a records body.
type v3Record struct {
	PartitionID *int32 `json:"partition_id"`
	Headers     []struct {
		Name  string  `json:"name"`
		Value *string `json:"value"` // base64
	} `json:"headers"`
	Key       *v3Data `json:"key"`
	Value     *v3Data `json:"value"`
	Timestamp *string `json:"timestamp"`
}

// v3Out is a decoded record on its way to Kafka, with its answer.
type v3Out struct {
	key, value         []byte
	keyType, valueType string
	headers            [][2][]byte
	ts                 int64
	partition          int32
	index              int32 // within its partition's batch
	err                *v3Answer
}

// v3Answer is one record's answer.
type v3Answer struct {
	ErrorCode   int     `json:"error_code"`
	Message     string  `json:"message,omitempty"`
	ClusterID   string  `json:"cluster_id,omitempty"`
	TopicName   string  `json:"topic_name,omitempty"`
	PartitionID *int32  `json:"partition_id,omitempty"`
	Offset      *int64  `json:"offset,omitempty"`
	Timestamp   string  `json:"timestamp,omitempty"`
	Key         *v3Size `json:"key,omitempty"`
	Value       *v3Size `json:"value,omitempty"`
}

type v3Size struct {
	Type string `json:"type"`
	Size int    `json:"size"`
}

// decodeV3Data turns a key or value into bytes (nil: absent or null).
func decodeV3Data(d *v3Data) ([]byte, string, error) {
	if d == nil {
		return nil, "", nil
	}
	raw := bytes.TrimSpace(d.Data)
	t := strings.ToUpper(d.Type)
	if t == "" {
		t = "JSON"
	}
	if len(raw) == 0 || string(raw) == "null" {
		return nil, t, nil
	}
	switch t {
	case "JSON":
		return raw, t, nil
	case "BINARY", "STRING":
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, t, fmt.Errorf("%s data must be a JSON string", t)
		}
		if t == "STRING" {
			return []byte(s), t, nil
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, t, fmt.Errorf("BINARY data must be base64: %w", err)
		}
		return b, t, nil
	}
	return nil, t, fmt.Errorf("type %q is not supported: use BINARY, JSON or STRING", d.Type)
}

// decodeV3 decodes one record object.
func decodeV3(r *v3Record, now int64) v3Out {
	o := v3Out{partition: -1, ts: now}
	bad := func(err error) v3Out {
		return v3Out{err: &v3Answer{ErrorCode: 400, Message: err.Error()}}
	}
	var err error
	if o.key, o.keyType, err = decodeV3Data(r.Key); err != nil {
		return bad(fmt.Errorf("key: %w", err))
	}
	if o.value, o.valueType, err = decodeV3Data(r.Value); err != nil {
		return bad(fmt.Errorf("value: %w", err))
	}
	for _, h := range r.Headers {
		var v []byte
		if h.Value != nil {
			if v, err = base64.StdEncoding.DecodeString(*h.Value); err != nil {
				return bad(fmt.Errorf("header %q: the value must be base64: %w", h.Name, err))
			}
		}
		o.headers = append(o.headers, [2][]byte{[]byte(h.Name), v})
	}
	if r.Timestamp != nil {
		t, err := time.Parse(time.RFC3339Nano, *r.Timestamp)
		if err != nil {
			return bad(fmt.Errorf("timestamp: %w", err))
		}
		o.ts = t.UnixMilli()
	}
	if r.PartitionID != nil {
		if *r.PartitionID < 0 {
			return bad(fmt.Errorf("partition_id %d: must not be negative", *r.PartitionID))
		}
		o.partition = *r.PartitionID
	}
	return o
}

// produceV3 answers POST /v3/clusters/{id}/topics/{topic}/records: every
// record of the body in one Produce (a batch per partition, in order).
func (a *API) produceV3(c *call, id, topic string, body []byte) {
	if r := v3JSONBody(c); r != nil {
		c.respond(r)
		return
	}
	g := a.gate
	maxRecs := g.conf().MaxRESTRecords
	if !c.ch.take(int64(len(body))) {
		c.respond(g.budgetRefusal("decoding a records body"))
		return
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	now := time.Now().UnixMilli()
	var recs []v3Out
	for {
		var r v3Record
		err := dec.Decode(&r)
		if errors.Is(err, io.EOF) {
			break
		}
		if len(recs) == maxRecs {
			c.respond(g.restLimit(413, 41301, "max-rest-records-per-request", int64(maxRecs), int64(maxRecs)+1,
				fmt.Sprintf("a records body may hold at most %d records", maxRecs), nil))
			return
		}
		if !c.ch.take(producedRecordCost) {
			c.respond(g.budgetRefusal("decoding a records body"))
			return
		}
		if err != nil {
			// The stream cannot be read past a syntax error: answer it
			// and stop there.
			recs = append(recs, v3Out{err: &v3Answer{ErrorCode: 400, Message: "malformed record: " + err.Error()}})
			break
		}
		o := decodeV3(&r, now)
		if o.err == nil && !c.ch.take(int64(len(o.key)+len(o.value))) {
			c.respond(g.budgetRefusal("decoding a records body"))
			return
		}
		recs = append(recs, o)
	}
	if len(recs) == 0 {
		c.respond(v3Error(400, "a records body needs at least one record"))
		return
	}
	a.metadata(c, []string{topic}, true, func(mr *kmsg.MetadataResponse) {
		if len(mr.Topics) != 1 || mr.Topics[0].ErrorCode != 0 || len(mr.Topics[0].Partitions) == 0 {
			c.respond(v3Error(404, "This server does not host this topic-partition."))
			return
		}
		n := int32(len(mr.Topics[0].Partitions))
		for i := range recs {
			r := &recs[i]
			switch {
			case r.err != nil:
			case r.partition >= n:
				r.err = &v3Answer{ErrorCode: 404, Message: "This server does not host this topic-partition."}
			case r.partition >= 0:
			case r.key != nil:
				r.partition = keyPartition(r.key, n)
			default:
				r.partition = int32(a.rr.Add(1)-1) % n
			}
		}
		a.sendProduceV3(c, id, topic, recs)
	})
}

func (a *API) sendProduceV3(c *call, id, topic string, recs []v3Out) {
	byPart := map[int32][]int{}
	var order []int32
	var kv int64
	for i := range recs {
		r := &recs[i]
		if r.err != nil {
			continue
		}
		if _, ok := byPart[r.partition]; !ok {
			order = append(order, r.partition)
		}
		r.index = int32(len(byPart[r.partition]))
		byPart[r.partition] = append(byPart[r.partition], i)
		kv += int64(len(r.key) + len(r.value))
		for _, h := range r.headers {
			kv += int64(len(h[0]) + len(h[1]))
		}
	}
	if !c.ch.take(kv + int64(len(recs))*(batchRecordCost+answerRecordCost)) {
		c.respond(a.gate.budgetRefusal("building produce batches"))
		return
	}
	answer := func(res map[int32]kmsg.ProduceResponseTopicPartition) {
		out := make([]byte, 0, len(recs)*160)
		status := 200
		for i := range recs {
			r := &recs[i]
			ans := r.err
			if ans == nil {
				pr, ok := res[r.partition]
				switch {
				case !ok:
					ans = &v3Answer{ErrorCode: 500, Message: "no answer for this partition"}
				case pr.ErrorCode != 0:
					ke := kerr.ErrorForCode(pr.ErrorCode)
					ans = &v3Answer{ErrorCode: 500, Message: ke.Error()}
					if kerr.IsRetriable(ke) {
						ans.ErrorCode = 503
					}
				default:
					off, p := pr.BaseOffset+int64(r.index), r.partition
					ts := r.ts
					if pr.LogAppendTime >= 0 {
						ts = pr.LogAppendTime
					}
					ans = &v3Answer{ErrorCode: 200, ClusterID: id, TopicName: topic, PartitionID: &p, Offset: &off,
						Timestamp: time.UnixMilli(ts).UTC().Format("2006-01-02T15:04:05.000Z")}
					if r.keyType != "" {
						ans.Key = &v3Size{r.keyType, len(r.key)}
					}
					if r.valueType != "" {
						ans.Value = &v3Size{r.valueType, len(r.value)}
					}
				}
			}
			b, _ := json.Marshal(ans)
			out = append(append(out, b...), '\n')
			status = ans.ErrorCode
		}
		if len(recs) > 1 {
			status = 200 // the streamed form: each record carries its own code
		}
		c.respond(&loop.HTTPResponse{Status: status, ContentType: ctJSON, Body: out})
	}
	if len(order) == 0 {
		answer(nil)
		return
	}
	req, ok := kafkaRequest[kmsg.ProduceRequest](a, 3, 9)
	if !ok {
		c.respond(v3Error(502, "the Kafka handler does not serve Produce v3+"))
		return
	}
	req.Acks = -1
	req.TimeoutMillis = produceTimeoutMs
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	for _, p := range order {
		batch := make([]*v3Out, 0, len(byPart[p]))
		for _, i := range byPart[p] {
			batch = append(batch, &recs[i])
		}
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = p
		rp.Records = buildHeaderBatch(batch)
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = []kmsg.ProduceRequestTopic{rt}
	askKafka(a, c, req, v3BadGateway, nil, func(pr *kmsg.ProduceResponse) {
		res := map[int32]kmsg.ProduceResponseTopicPartition{}
		for _, t := range pr.Topics {
			for _, p := range t.Partitions {
				res[p.Partition] = p
			}
		}
		answer(res)
	})
}

// buildHeaderBatch encodes records with headers and timestamps of their
// own as one uncompressed v2 batch.
func buildHeaderBatch(recs []*v3Out) []byte {
	out := make([]recordbatch.Record, len(recs))
	for i, r := range recs {
		out[i] = recordbatch.Record{Key: r.key, Value: r.value, Headers: r.headers, Timestamp: r.ts}
	}
	return recordbatch.Build(out)
}
