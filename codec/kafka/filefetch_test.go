package kafka

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// memSection is a FileSection over bytes, to compare encodings.
type memSection struct {
	b        []byte
	released int
}

func (m *memSection) Span() (int, int64, int64) { return -1, 0, int64(len(m.b)) }
func (m *memSection) Release()                  { m.released++ }

// TestFileFetchFrameIsKmsgFrameWithTheFilesSpliced: for every version the
// broker serves, the frame written with the records left in files (header
// pieces with the sections between them at the cuts) is byte for byte the
// frame kmsg encodes with the records in memory — partitions with and
// without sections, empty and null records, errors, aborted transactions.
func TestFileFetchFrameIsKmsgFrameWithTheFilesSpliced(t *testing.T) {
	for v := int16(4); v <= 12; v++ {
		resp := kmsg.NewPtrFetchResponse()
		resp.SetVersion(v)
		resp.ThrottleMillis = 17
		resp.SessionID = 0
		var secs []PartitionSection
		for ti, name := range []string{"alpha", "a-much-longer-topic-name"} {
			st := kmsg.NewFetchResponseTopic()
			st.Topic = name
			for pi := 0; pi < 4; pi++ {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition = int32(pi)
				sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = 1000+int64(pi), 999, 3
				sp.PreferredReadReplica = -1
				switch pi {
				case 0: // in a file
					data := bytes.Repeat([]byte{byte(ti*10 + pi + 1)}, 300+ti*200)
					sp.RecordBatches = data
					secs = append(secs, PartitionSection{Topic: ti, Partition: pi, Section: &memSection{b: data}})
				case 1: // in memory
					sp.RecordBatches = []byte("in-memory records")
				case 2: // an error, empty records
					sp.ErrorCode = ErrOffsetOutOfRange
					sp.RecordBatches = []byte{}
					sp.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{{ProducerID: 7, FirstOffset: 9}}
				case 3: // the last partition in a file: the frame ends with it before v12
					data := bytes.Repeat([]byte{0xee}, 129)
					sp.RecordBatches = data
					secs = append(secs, PartitionSection{Topic: ti, Partition: pi, Section: &memSection{b: data}})
				}
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		h := &Header{APIKey: 1, APIVersion: v, CorrelationID: 4242, Flexible: v >= 12}
		want := AppendResponse(nil, h, resp)

		head, cuts, err := AppendFileFetchResponse(nil, h, &FileFetchResponse{FetchResponse: resp, Sections: secs}, nil)
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		if len(cuts) != len(secs) {
			t.Fatalf("v%d: %d cuts for %d sections", v, len(cuts), len(secs))
		}
		var got []byte
		prev := 0
		for i, c := range cuts {
			got = append(got, head[prev:c]...)
			got = append(got, secs[i].Section.(*memSection).b...)
			prev = c
		}
		got = append(got, head[prev:]...)
		if !bytes.Equal(got, want) {
			t.Fatalf("v%d: spliced frame differs from kmsg's (%d vs %d bytes)", v, len(got), len(want))
		}
	}
}

func TestFileFetchRefusesVersionsAndTagsItCannotWrite(t *testing.T) {
	resp := kmsg.NewPtrFetchResponse()
	st := kmsg.NewFetchResponseTopic()
	sp := kmsg.NewFetchResponseTopicPartition()
	sp.CurrentLeader.LeaderID = 3
	st.Partitions = append(st.Partitions, sp)
	resp.Topics = append(resp.Topics, st)
	ff := &FileFetchResponse{FetchResponse: resp}
	if _, _, err := AppendFileFetchResponse(nil, &Header{APIKey: 1, APIVersion: 13}, ff, nil); err == nil {
		t.Fatal("v13 written")
	}
	if _, _, err := AppendFileFetchResponse(nil, &Header{APIKey: 1, APIVersion: 12, Flexible: true}, ff, nil); err == nil {
		t.Fatal("a current-leader tag dropped silently")
	}
	ff.Sections = []PartitionSection{{Topic: 5, Partition: 0, Section: &memSection{}}}
	sp.CurrentLeader.LeaderID = -1
	resp.Topics[0].Partitions[0] = sp
	if _, _, err := AppendFileFetchResponse(nil, &Header{APIKey: 1, APIVersion: 11}, ff, nil); err == nil {
		t.Fatal("a section naming no partition was accepted")
	}
}
