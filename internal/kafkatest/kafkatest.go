// Package kafkatest builds the Kafka requests that tests write by hand
// (raw frames on a socket, or straight to the broker's handler), where a
// kgo client would choose the version, the timing or the pipelining the
// test means to control.
package kafkatest

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// LongPoll is a Fetch of topic's partitions (in that order, repeats kept)
// from offset that waits up to wait for one byte, of at most 1 MiB per
// partition and 1 MiB in all. Its version is 12, the last that names
// topics (v13 names topic IDs); a test of another version sets it.
// Replica, session and leader epochs keep kmsg's defaults (-1): a
// consumer's fetch outside a fetch session.
func LongPoll(topic string, offset int64, wait time.Duration, partitions ...int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(12)
	req.MaxWaitMillis = int32(wait.Milliseconds())
	req.MinBytes, req.MaxBytes = 1, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	for _, p := range partitions {
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = p, offset, 1<<20
		ft.Partitions = append(ft.Partitions, fp)
	}
	req.Topics = append(req.Topics, ft)
	return req
}
