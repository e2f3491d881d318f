package broker

// Metadata: versions 0-12. One broker, which is also the controller and the
// leader of every partition. Unknown topics are auto-created when
// --auto-create-topics is on and the request allows it (always before v4).
// Topics may be named or, from v10, given by id.
//
// Limits: a request naming more than --max-metadata-topics topics gets
// INVALID_REQUEST for each of them and nothing is looked up or created; at
// most --max-auto-create-topics-per-request topics are created per
// request, all with one write of topics.json, and the others answer
// UNKNOWN_TOPIC_OR_PARTITION (retriable: the client's next Metadata
// creates the next ones); --max-topics and --max-partitions refuse
// auto-creation the same way.

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

func init() { register(0, 12, (*Broker).handleMetadata) }

func (b *Broker) handleMetadata(req *kmsg.MetadataRequest, resp *kmsg.MetadataResponse, cl *Client, respond Responder) {

	br := kmsg.NewMetadataResponseBroker()
	br.NodeID, br.Host, br.Port = b.cfg.NodeID, b.cfg.Host, b.cfg.Port
	resp.Brokers = append(resp.Brokers, br)
	resp.ClusterID = kmsg.StringPtr(b.cfg.ClusterID)
	resp.ControllerID = b.cfg.NodeID

	allowCreate := (req.Version < 4 || req.AllowAutoTopicCreation) && b.cfg.AutoCreateTopics
	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		ts := b.allTopics()
		sort.Slice(ts, func(i, j int) bool { return ts[i].name < ts[j].name })
		for _, t := range ts {
			resp.Topics = append(resp.Topics, b.metadataTopic(t, t.name, kafka.ErrNone))
		}
		respond(resp)
		return
	}
	if len(req.Topics) > b.cfg.MaxMetadataTopics {
		b.tripped("max-metadata-topics", "Metadata request names too many topics: each answered INVALID_REQUEST",
			"client", cl.ID, "addr", cl.Addr, "topics", len(req.Topics), "value", b.cfg.MaxMetadataTopics)
		resp.Topics = make([]kmsg.MetadataResponseTopic, len(req.Topics))
		for i, rt := range req.Topics {
			mt := &resp.Topics[i]
			mt.Default()
			mt.Topic, mt.TopicID, mt.ErrorCode = rt.Topic, rt.TopicID, kafka.ErrInvalidRequest
		}
		respond(resp)
		return
	}
	resp.Topics = make([]kmsg.MetadataResponseTopic, len(req.Topics))
	var create []topicSpec
	var createAt [][]int // response indexes of each topic to create
	wanted := map[string]int{}
	refused := 0
	for i, rt := range req.Topics {
		if rt.Topic == nil {
			b.mu.RLock()
			t := b.byID[rt.TopicID]
			b.mu.RUnlock()
			if t == nil {
				mt := kmsg.NewMetadataResponseTopic()
				mt.TopicID = rt.TopicID
				mt.ErrorCode = kafka.ErrUnknownTopicOrPartition
				resp.Topics[i] = mt
				continue
			}
			resp.Topics[i] = b.metadataTopic(t, t.name, kafka.ErrNone)
			continue
		}
		name := *rt.Topic
		if why := validTopicName(name); why != "" {
			resp.Topics[i] = b.metadataTopic(nil, name, kafka.ErrInvalidTopic)
			continue
		}
		if t := b.lookupTopic(name); t != nil {
			resp.Topics[i] = b.metadataTopic(t, name, kafka.ErrNone)
			continue
		}
		resp.Topics[i] = b.metadataTopic(nil, name, kafka.ErrUnknownTopicOrPartition)
		if !allowCreate {
			continue
		}
		if k, ok := wanted[name]; ok { // named twice: one creation
			createAt[k] = append(createAt[k], i)
			continue
		}
		if len(create) >= b.cfg.MaxAutoCreateTopics {
			refused++
			continue
		}
		wanted[name] = len(create)
		create = append(create, topicSpec{name: name, partitions: b.cfg.DefaultPartitions})
		createAt = append(createAt, []int{i})
	}
	if refused > 0 {
		b.tripped("max-auto-create-topics-per-request", "Metadata request would auto-create too many topics: the rest answered UNKNOWN_TOPIC_OR_PARTITION",
			"client", cl.ID, "addr", cl.Addr, "created", len(create), "refused", refused, "value", b.cfg.MaxAutoCreateTopics)
	}
	for k, c := range b.createTopics(create, true) {
		code := c.code
		if code == kafka.ErrTopicAlreadyExists { // created since the lookup
			code = kafka.ErrNone
		}
		for _, i := range createAt[k] {
			resp.Topics[i] = b.metadataTopic(c.t, create[k].name, code)
		}
	}
	respond(resp)
}

// metadataTopic describes one topic (t nil: only the name and code).
func (b *Broker) metadataTopic(t *topic, name string, code int16) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = kmsg.StringPtr(name)
	mt.ErrorCode = code
	if t == nil || code != kafka.ErrNone {
		return mt
	}
	mt.TopicID = t.id
	parts := t.partitionList()
	mt.Partitions = make([]kmsg.MetadataResponseTopicPartition, 0, len(parts))
	for _, p := range parts {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p.index
		mp.Leader = b.cfg.NodeID
		mp.LeaderEpoch = 0
		mp.Replicas = []int32{b.cfg.NodeID}
		mp.ISR = []int32{b.cfg.NodeID}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}
