package kafka

import (
	"encoding/binary"
	"fmt"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FileSection is record bytes left in a file until they are written to a
// socket (sendfile(2)), so a Fetch answer from disk never passes through
// user space. Its holder keeps the file open (a pin on its segment) until
// Release; the section's bytes never change while it is held.
type FileSection interface {
	// Span returns the file's descriptor and the section's place in it.
	Span() (fd int, off, n int64)
	// Release lets go of the file; call it exactly once.
	Release()
}

// PartitionSection is the records of one partition of a Fetch answer, in
// a file: Topics[Topic].Partitions[Partition] of its response.
type PartitionSection struct {
	Topic, Partition int
	Section          FileSection
}

// FileFetchResponse is a Fetch answer some of whose partitions' records
// stay in files (Sections, in the order of the partitions they belong to;
// those partitions' RecordBatches are ignored). It is a kmsg.Response by
// its embedded FetchResponse, for code that only reads the partition
// headers; only a writer that sends files (the network loop) may be given
// one, and it releases the sections.
type FileFetchResponse struct {
	*kmsg.FetchResponse
	Sections []PartitionSection
}

// Release releases every section (an answer that will not be written).
func (r *FileFetchResponse) Release() {
	for i := range r.Sections {
		if s := r.Sections[i].Section; s != nil {
			s.Release()
			r.Sections[i].Section = nil
		}
	}
}

// FileBytes is the record bytes the sections hold.
func (r *FileFetchResponse) FileBytes() int64 {
	var n int64
	for _, s := range r.Sections {
		if s.Section != nil {
			_, _, l := s.Section.Span()
			n += l
		}
	}
	return n
}

// AppendFileFetchResponse appends the frame of r (length prefix, response
// header, body) without the sections' bytes: cuts gets, for each section
// in order, the place in dst where its bytes go. The frame on the wire is
// dst[:cuts[0]], section 0, dst[cuts[0]:cuts[1]], section 1, ... dst[cuts[k-1]:].
// Its length prefix counts the sections. Versions 4 to 12 (what the broker
// serves), with the fields the broker sets: the partitions' tagged fields
// (diverging epoch, current leader, snapshot id) are not written, and an
// answer carrying them is an error.
func AppendFileFetchResponse(dst []byte, h *Header, r *FileFetchResponse, cuts []int) ([]byte, []int, error) {
	v := h.APIVersion
	if v < 4 || v > 12 {
		return dst, cuts, fmt.Errorf("fetch v%d: file answers cover v4-v12", v)
	}
	flex := v >= 12
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.CorrelationID))
	if flex {
		dst = append(dst, 0) // response header v1: no tagged fields
	}
	f := r.FetchResponse
	dst = kbin.AppendInt32(dst, f.ThrottleMillis)
	if v >= 7 {
		dst = kbin.AppendInt16(dst, f.ErrorCode)
		dst = kbin.AppendInt32(dst, f.SessionID)
	}
	arrayLen := func(n int) {
		if flex {
			dst = kbin.AppendCompactArrayLen(dst, n)
		} else {
			dst = kbin.AppendArrayLen(dst, n)
		}
	}
	var fileBytes int64
	k := 0 // next section
	arrayLen(len(f.Topics))
	for i := range f.Topics {
		t := &f.Topics[i]
		if flex {
			dst = kbin.AppendCompactString(dst, t.Topic)
		} else {
			dst = kbin.AppendString(dst, t.Topic)
		}
		arrayLen(len(t.Partitions))
		for j := range t.Partitions {
			p := &t.Partitions[j]
			dst = kbin.AppendInt32(dst, p.Partition)
			dst = kbin.AppendInt16(dst, p.ErrorCode)
			dst = kbin.AppendInt64(dst, p.HighWatermark)
			dst = kbin.AppendInt64(dst, p.LastStableOffset)
			if v >= 5 {
				dst = kbin.AppendInt64(dst, p.LogStartOffset)
			}
			if flex {
				dst = kbin.AppendCompactNullableArrayLen(dst, len(p.AbortedTransactions), p.AbortedTransactions == nil)
			} else {
				dst = kbin.AppendNullableArrayLen(dst, len(p.AbortedTransactions), p.AbortedTransactions == nil)
			}
			for _, a := range p.AbortedTransactions {
				dst = kbin.AppendInt64(dst, a.ProducerID)
				dst = kbin.AppendInt64(dst, a.FirstOffset)
				if flex {
					dst = append(dst, 0)
				}
			}
			if v >= 11 {
				dst = kbin.AppendInt32(dst, p.PreferredReadReplica)
			}
			if k < len(r.Sections) && r.Sections[k].Topic == i && r.Sections[k].Partition == j {
				_, _, n := r.Sections[k].Section.Span()
				if flex {
					dst = kbin.AppendUvarint(dst, uint32(n)+1)
				} else {
					dst = kbin.AppendInt32(dst, int32(n))
				}
				cuts = append(cuts, len(dst))
				fileBytes += n
				k++
			} else if flex {
				dst = kbin.AppendCompactNullableBytes(dst, p.RecordBatches)
			} else {
				dst = kbin.AppendNullableBytes(dst, p.RecordBatches)
			}
			if flex {
				if p.UnknownTags.Len() > 0 || p.DivergingEpoch.Epoch != -1 || p.CurrentLeader.LeaderID != -1 || p.SnapshotID.Epoch != -1 {
					return dst[:start], cuts, fmt.Errorf("fetch %s[%d]: tagged fields are not written in a file answer", t.Topic, p.Partition)
				}
				dst = append(dst, 0)
			}
		}
		if flex {
			dst = append(dst, 0)
		}
	}
	if flex {
		dst = append(dst, 0)
	}
	if k != len(r.Sections) {
		return dst[:start], cuts, fmt.Errorf("fetch: %d file sections name no partition of the answer", len(r.Sections)-k)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(int64(len(dst)-start-LengthSize)+fileBytes))
	return dst, cuts, nil
}
