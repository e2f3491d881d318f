package acl_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

// TestPartlyDeniedRequestIsAnsweredNotClosed: a request of which the ACLs
// allow one topic and deny another is served for the first and answered
// TOPIC_AUTHORIZATION_FAILED for the second. Logging the partial denial
// called Error on kerr.ErrorForCode(0), which is nil: the handler
// panicked and the connection was closed (the client saw EOF).
func TestPartlyDeniedRequestIsAnsweredNotClosed(t *testing.T) {
	t.Parallel()
	login := startRawGuarded(t, kafka.DecodeLimits{MaxPartitions: 1000, MaxNonProduceSize: 1 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if res, err := kadm.NewClient(login("admin")).CreateACLs(ctx, kadm.NewACLs().Allow("User:alice").Topics("orders").
		Operations(kadm.OpDescribe).ResourcePatternType(kadm.ACLPatternLiteral)); err != nil || res[0].Err != nil {
		t.Fatalf("create ACL: %v %+v", err, res)
	}
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	for _, topic := range []string{"orders", "other"} {
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Timestamp = -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := login("alice").Broker(0).Request(ctx, req)
	if err != nil {
		t.Fatalf("ListOffsets of orders (allowed) and other (denied): %v", err)
	}
	got := map[string]int16{}
	for _, rt := range resp.(*kmsg.ListOffsetsResponse).Topics {
		for _, rp := range rt.Partitions {
			got[rt.Topic] = rp.ErrorCode
		}
	}
	if len(got) != 2 || got["orders"] != 0 || got["other"] != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("answer %v, want orders: 0, other: %d", got, kerr.TopicAuthorizationFailed.Code)
	}
}
