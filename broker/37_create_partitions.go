package broker

// CreatePartitions: versions 0-3. Grows a topic to count partitions (fewer
// or equal is INVALID_PARTITIONS; at most --max-partitions-per-topic, also
// INVALID_PARTITIONS; past --max-partitions in all, POLICY_VIOLATION). A manual assignment must
// give each new partition exactly this broker as its only replica
// (INVALID_REPLICA_ASSIGNMENT). validate_only checks without creating. A
// topic named twice in one request gets INVALID_REQUEST. The timeout is not
// used.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

func init() { register(0, 3, (*Broker).handleCreatePartitions) }

func (b *Broker) handleCreatePartitions(req *kmsg.CreatePartitionsRequest, resp *kmsg.CreatePartitionsResponse, _ *Client, respond Responder) {
	seen := map[string]int{}
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	changed := false
	for _, rt := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		code, msg := kafka.ErrNone, ""
		if seen[rt.Topic] > 1 {
			code, msg = kafka.ErrInvalidRequest, "topic named more than once in the request"
		} else {
			code, msg = b.createPartitions(rt, req.ValidateOnly)
			changed = changed || (code == kafka.ErrNone && !req.ValidateOnly)
		}
		st.ErrorCode = code
		if msg != "" {
			st.ErrorMessage = kmsg.StringPtr(msg)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if changed { // one write of topics.json for the request
		b.mu.Lock()
		b.saveTopicsLocked()
		b.mu.Unlock()
	}
	respond(resp)
}

// createPartitions grows one topic. The checks and a reservation are made
// under b.mu, the new partitions' logs are opened outside it (thousands
// take seconds, during which other requests are served), and the grown
// partition list is published under it again.
func (b *Broker) createPartitions(rt kmsg.CreatePartitionsRequestTopic, validateOnly bool) (int16, string) {
	b.mu.Lock()
	t := b.topics[rt.Topic]
	if t == nil {
		b.mu.Unlock()
		return kafka.ErrUnknownTopicOrPartition, fmt.Sprintf("topic %q does not exist", rt.Topic)
	}
	cur := int32(len(t.partitionList()))
	code, msg := b.checkGrowthLocked(t, rt, cur)
	if code != kafka.ErrNone || validateOnly {
		b.mu.Unlock()
		return code, msg
	}
	add := rt.Count - cur
	t.growing = true
	b.reservedParts += int(add)
	b.mu.Unlock()

	parts := t.newPartitions(cur, add)

	b.mu.Lock()
	// A new slice is published in one atomic store, so readers holding the
	// old one keep a consistent view.
	t.publishPartitions(parts)
	t.growing = false
	b.reservedParts -= int(add)
	deleted := b.topics[rt.Topic] != t
	if !deleted {
		b.partitions += int(add)
		b.metrics.partitions.Set(float64(b.partitions))
	}
	b.mu.Unlock()
	if deleted { // deleted while its partitions were made: remove theirs too
		for _, p := range parts {
			p.log.remove()
		}
		return kafka.ErrUnknownTopicOrPartition, fmt.Sprintf("topic %q was deleted", rt.Topic)
	}
	b.log.Info("partitions created", "topic", t.name, "from", cur, "to", rt.Count)
	return kafka.ErrNone, ""
}

// checkGrowthLocked checks a CreatePartitions of t from cur partitions.
// The caller holds b.mu.
func (b *Broker) checkGrowthLocked(t *topic, rt kmsg.CreatePartitionsRequestTopic, cur int32) (int16, string) {
	switch {
	case t.growing:
		return kafka.ErrInvalidRequest, fmt.Sprintf("topic %q is already growing: retry", rt.Topic)
	case rt.Count <= cur:
		return kafka.ErrInvalidPartitions, fmt.Sprintf("topic %q has %d partitions: the new count %d must be larger", rt.Topic, cur, rt.Count)
	case rt.Count > b.cfg.MaxPartitionsPerTopic:
		b.tripped("max-partitions-per-topic", "CreatePartitions refused", "topic", rt.Topic, "partitions", rt.Count, "value", b.cfg.MaxPartitionsPerTopic)
		return kafka.ErrInvalidPartitions, fmt.Sprintf("partition count %d is above --max-partitions-per-topic=%d", rt.Count, b.cfg.MaxPartitionsPerTopic)
	case b.partitions+b.reservedParts+int(rt.Count-cur) > b.cfg.MaxPartitions:
		b.tripped("max-partitions", "CreatePartitions refused", "topic", rt.Topic, "partitions", rt.Count, "value", b.cfg.MaxPartitions)
		return errPolicyViolation, fmt.Sprintf("%d more partitions would pass --max-partitions=%d (the broker holds %d)", rt.Count-cur, b.cfg.MaxPartitions, b.partitions+b.reservedParts)
	}
	if rt.Assignment != nil {
		if int32(len(rt.Assignment)) != rt.Count-cur {
			return kafka.ErrInvalidReplicaAssignment, fmt.Sprintf("%d assignments for %d new partitions", len(rt.Assignment), rt.Count-cur)
		}
		for i, a := range rt.Assignment {
			if len(a.Replicas) != 1 || a.Replicas[0] != b.cfg.NodeID {
				return kafka.ErrInvalidReplicaAssignment, fmt.Sprintf("assignment %d: the only replica must be broker %d", i, b.cfg.NodeID)
			}
		}
	}
	return kafka.ErrNone, ""
}
