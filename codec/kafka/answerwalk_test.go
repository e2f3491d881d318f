package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// produceAnswer builds a Produce answer body of version v with partitions
// answered per the options.
func produceAnswer(v int16, recordErrors, leaderTag, brokers bool) []byte {
	r := kmsg.NewProduceResponse()
	r.SetVersion(v)
	r.ThrottleMillis = 7
	for _, name := range []string{"orders", "a-longer-topic-name"} {
		t := kmsg.NewProduceResponseTopic()
		t.Topic = name
		for p := int32(0); p < 3; p++ {
			pr := kmsg.NewProduceResponseTopicPartition()
			pr.Partition, pr.BaseOffset = p, int64(p)*100
			if recordErrors {
				pr.ErrorCode = 87 // INVALID_RECORD
				pr.ErrorMessage = kmsg.StringPtr("bad record")
				e := kmsg.NewProduceResponseTopicPartitionErrorRecord()
				e.RelativeOffset, e.ErrorMessage = 2, kmsg.StringPtr("this one")
				pr.ErrorRecords = append(pr.ErrorRecords, e)
			}
			if leaderTag {
				pr.ErrorCode = 6 // NOT_LEADER_OR_FOLLOWER
				pr.CurrentLeader.LeaderID, pr.CurrentLeader.LeaderEpoch = 2, 9
			}
			t.Partitions = append(t.Partitions, pr)
		}
		r.Topics = append(r.Topics, t)
	}
	if brokers {
		b := kmsg.NewProduceResponseBroker()
		b.NodeID, b.Host, b.Port = 2, "kafka-2.internal", 9092
		r.Brokers = append(r.Brokers, b)
	}
	return r.AppendTo(nil)
}

func TestProduceAnswerHasTags(t *testing.T) {
	for v := int16(9); v <= 12; v++ {
		for _, tc := range []struct {
			name                             string
			recordErrors, leaderTag, brokers bool
		}{
			{"plain", false, false, false},
			{"record errors", true, false, false},
			{"partition leader tag", false, true, false},
			{"brokers", false, true, true},
			{"everything", true, true, true},
		} {
			body := produceAnswer(v, tc.recordErrors, tc.leaderTag, tc.brokers)
			want := tc.brokers // (kmsg writes them at any flexible version)
			if got := ProduceAnswerHasTags(v, body); got != want {
				t.Errorf("v%d %s: %v, want %v", v, tc.name, got, want)
			}
			// A body cut short anywhere is malformed: the caller must decode
			// it (and see the error), never pass it as tag-free.
			for cut := 0; cut < len(body); cut++ {
				if !ProduceAnswerHasTags(v, body[:cut]) {
					t.Fatalf("v%d %s cut at %d of %d: reported tag-free", v, tc.name, cut, len(body))
				}
			}
		}
	}
	if !ProduceAnswerHasTags(13, produceAnswer(12, false, false, false)) {
		t.Error("v13 (topic ids) is not walked: it must report true")
	}
}

func BenchmarkProduceAnswerHasTags(b *testing.B) {
	body := produceAnswer(11, false, false, false)
	b.ReportAllocs()
	for b.Loop() {
		if ProduceAnswerHasTags(11, body) {
			b.Fatal("tags")
		}
	}
}

// BenchmarkProduceAnswerDecode is what the gateway did before
// ProduceAnswerHasTags, for comparison: decode the answer to find its
// brokers.
func BenchmarkProduceAnswerDecode(b *testing.B) {
	body := produceAnswer(11, false, false, false)
	b.ReportAllocs()
	for b.Loop() {
		r := kmsg.NewPtrProduceResponse()
		r.SetVersion(11)
		if err := r.ReadFrom(body); err != nil || len(r.Brokers) > 0 {
			b.Fatal(err)
		}
	}
}

// FuzzProduceAnswerHasTags: the walk never panics, and an answer it calls
// tag-free decodes (kmsg) with no brokers, so passing it on unread is right.
func FuzzProduceAnswerHasTags(f *testing.F) {
	for v := int16(9); v <= 12; v++ {
		f.Add(v, produceAnswer(v, false, false, false))
		f.Add(v, produceAnswer(v, true, true, true))
	}
	f.Fuzz(func(t *testing.T, v int16, body []byte) {
		if ProduceAnswerHasTags(v, body) {
			return
		}
		r := kmsg.NewPtrProduceResponse()
		r.SetVersion(v)
		if err := r.ReadFrom(body); err != nil {
			t.Fatalf("v%d: called tag-free, but kmsg cannot decode it: %v", v, err)
		}
		if len(r.Brokers) > 0 {
			t.Fatalf("v%d: called tag-free, but it names brokers %v", v, r.Brokers)
		}
	})
}
