package broker

// Metadata: versions 0-12. One broker, which is also the controller and the
// leader of every partition. Unknown topics are auto-created when
// --auto-create-topics is on and the request allows it (always before v4).
// Topics may be named or, from v10, given by id.

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

func (b *Broker) handleMetadata(kreq kmsg.Request, _ *Client, respond Responder) {
	req := kreq.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	resp.SetVersion(req.Version)

	br := kmsg.NewMetadataResponseBroker()
	br.NodeID, br.Host, br.Port = b.cfg.NodeID, b.cfg.Host, b.cfg.Port
	resp.Brokers = append(resp.Brokers, br)
	resp.ClusterID = kmsg.StringPtr(b.cfg.ClusterID)
	resp.ControllerID = b.cfg.NodeID

	allowCreate := req.Version < 4 || req.AllowAutoTopicCreation
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
	for _, rt := range req.Topics {
		if rt.Topic == nil {
			b.mu.RLock()
			t := b.byID[rt.TopicID]
			b.mu.RUnlock()
			if t == nil {
				mt := kmsg.NewMetadataResponseTopic()
				mt.TopicID = rt.TopicID
				mt.ErrorCode = kafka.ErrUnknownTopicOrPartition
				resp.Topics = append(resp.Topics, mt)
				continue
			}
			resp.Topics = append(resp.Topics, b.metadataTopic(t, t.name, kafka.ErrNone))
			continue
		}
		name := *rt.Topic
		if why := validTopicName(name); why != "" {
			resp.Topics = append(resp.Topics, b.metadataTopic(nil, name, kafka.ErrInvalidTopic))
			continue
		}
		t, code := b.topicOrCreate(name, allowCreate)
		resp.Topics = append(resp.Topics, b.metadataTopic(t, name, code))
	}
	respond(resp)
}

// metadataTopic describes one topic (t nil: only the name and code).
func (b *Broker) metadataTopic(t *topic, name string, code int16) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = kmsg.StringPtr(name)
	mt.ErrorCode = code
	if t == nil {
		return mt
	}
	mt.TopicID = t.id
	parts := t.partitionList()
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
