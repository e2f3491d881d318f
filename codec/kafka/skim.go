package kafka

import (
	"encoding/binary"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ProduceSkimmer reads the topic and partition names of a Produce request
// body as it streams past, skipping the record bytes by counting them down.
// It lets floodgate answer an oversize Produce per partition, as Kafka's
// response shape requires, without ever holding the frame: its memory is one
// field (at most a topic name), whatever the frame's size.
//
// Only Produce versions that name topics (v3 to v12) are skimmed; for other
// versions Done stays false and Response answers with no partitions.
//
// The answer is bounded whatever the frame holds: it names at most
// maxPartitions partitions (in request order) and maxAnswerNames bytes of
// topic names, a topic only once one of its partitions is named. A 120 MiB
// frame of 15.7M partitions made a 472 MB answer when every one was echoed.
type ProduceSkimmer struct {
	version  int16
	flexible bool
	state    skimState
	field    []byte // bytes of the field being read
	need     int    // bytes the current field still needs (fixed-width fields)
	skip     int64  // record or tag bytes still to skip
	varint   uint64 // value of the varint being read
	shift    uint
	afterVar skimState
	// tagSection is the section (partition or topic) whose tags are read.
	tagSection skimState

	acks       int16
	topics     int64
	partitions int64
	tags       int64
	curTopic   []byte
	topicAdded bool // curTopic has its entry in resp
	named      int  // partitions in resp
	names      int  // topic name bytes in resp
	max        int  // bound on named
	resp       kmsg.ProduceResponse
}

type skimState uint8

const (
	skimTxnID skimState = iota
	skimAcks
	skimTimeout
	skimTopicCount
	skimTopicName
	skimPartCount
	skimPartIndex
	skimRecordsLen
	skimRecords
	skimPartTags
	skimTopicTags
	skimTagKey
	skimTagSize
	skimTagBody
	skimVarint
	skimDone
	skimUnsupported
)

// Reset prepares the skimmer for a new request of the given version whose
// answer names at most maxPartitions partitions (at least 1).
func (s *ProduceSkimmer) Reset(version int16, maxPartitions int) {
	*s = ProduceSkimmer{version: version, field: s.field[:0], curTopic: s.curTopic[:0], acks: -1, max: max(maxPartitions, 1)}
	s.resp = kmsg.NewProduceResponse()
	s.resp.SetVersion(version)
	s.flexible = IsFlexibleRequest(0, version)
	if version < 3 || version > 12 {
		s.state = skimUnsupported
		return
	}
	s.beginString(skimTxnID)
}

// Acks returns the request's acks once it has been read (-1 before).
func (s *ProduceSkimmer) Acks() int16 { return s.acks }

// Refusal returns Response(code) and whether it names any partition: a
// Produce answer without partitions reads as success, so when ok is false
// the caller closes the connection instead (versions before 3, or a frame
// that named no partition).
func (s *ProduceSkimmer) Refusal(code int16) (*kmsg.ProduceResponse, bool) {
	r := s.Response(code)
	return r, len(r.Topics) > 0
}

// Response returns the produce response with every partition seen so far
// carrying code.
func (s *ProduceSkimmer) Response(code int16) *kmsg.ProduceResponse {
	for i := range s.resp.Topics {
		for j := range s.resp.Topics[i].Partitions {
			s.resp.Topics[i].Partitions[j].ErrorCode = code
		}
	}
	return &s.resp
}

// beginString starts reading a (compact) string whose bytes go to next.
func (s *ProduceSkimmer) beginString(next skimState) {
	s.field = s.field[:0]
	if s.flexible {
		s.beginVarint(next)
		return
	}
	s.state = next
	s.need = -2 // length prefix first
}

func (s *ProduceSkimmer) beginVarint(next skimState) {
	s.state = skimVarint
	s.varint, s.shift = 0, 0
	s.afterVar = next
}

func (s *ProduceSkimmer) beginFixed(next skimState, n int) {
	s.state = next
	s.field = s.field[:0]
	s.need = n
}

// Feed passes the next bytes of the body through the skimmer.
func (s *ProduceSkimmer) Feed(b []byte) {
	for len(b) > 0 && s.state != skimDone && s.state != skimUnsupported {
		switch s.state {
		case skimVarint:
			c := b[0]
			b = b[1:]
			s.varint |= uint64(c&0x7f) << s.shift
			s.shift += 7
			if c >= 0x80 {
				if s.shift > 63 {
					s.state = skimUnsupported
				}
				continue
			}
			s.afterVarint()
		case skimRecords, skimTagBody:
			n := int64(len(b))
			if n > s.skip {
				n = s.skip
			}
			b = b[n:]
			s.skip -= n
			if s.skip == 0 {
				s.afterSkip()
			}
		default:
			b = s.fill(b)
		}
	}
}

// fill gathers bytes for fixed-width fields and non-flexible strings.
func (s *ProduceSkimmer) fill(b []byte) []byte {
	want := s.need
	if want == -2 {
		want = 2
	}
	take := want - len(s.field)
	if take > len(b) {
		take = len(b)
	}
	s.field = append(s.field, b[:take]...)
	b = b[take:]
	if len(s.field) < want {
		return b
	}
	if s.need == -2 { // length of a non-flexible string just arrived
		n := int(int16(binary.BigEndian.Uint16(s.field)))
		s.field = s.field[:0]
		if n <= 0 {
			s.stringDone(nil)
			return b
		}
		s.need = n
		return b
	}
	s.fieldDone()
	return b
}

func (s *ProduceSkimmer) afterVarint() {
	v := s.varint
	switch s.afterVar {
	case skimTxnID, skimTopicName: // compact string: length+1
		if v <= 1 {
			s.stringDone(nil)
			return
		}
		if v-1 > maxClientIDLen {
			s.state = skimUnsupported
			return
		}
		s.state = s.afterVar
		s.field = s.field[:0]
		s.need = int(v - 1)
	case skimTopicCount:
		s.topics = int64(v) - 1
		s.nextTopic()
	case skimPartCount:
		s.partitions = int64(v) - 1
		s.nextPartition()
	case skimRecordsLen:
		s.startRecords(int64(v) - 1)
	case skimPartTags, skimTopicTags:
		s.tags = int64(v)
		s.tagSection = s.afterVar
		s.nextTag()
	case skimTagKey:
		s.beginVarint(skimTagSize)
	case skimTagSize:
		s.skip = int64(v)
		s.state = skimTagBody
		if s.skip == 0 {
			s.afterSkip()
		}
	}
}

func (s *ProduceSkimmer) stringDone(v []byte) {
	switch s.state {
	case skimTxnID:
		s.beginFixed(skimAcks, 2)
	case skimTopicName:
		s.curTopic = append(s.curTopic[:0], v...)
		s.topicAdded = false
		s.beginCount(skimPartCount)
	default:
		if s.afterVar == skimTxnID {
			s.beginFixed(skimAcks, 2)
		} else if s.afterVar == skimTopicName {
			s.state = skimTopicName
			s.stringDone(v)
		}
	}
}

func (s *ProduceSkimmer) fieldDone() {
	switch s.state {
	case skimTxnID, skimTopicName:
		s.stringDone(s.field)
	case skimAcks:
		s.acks = int16(binary.BigEndian.Uint16(s.field))
		s.beginFixed(skimTimeout, 4)
	case skimTimeout:
		s.beginCount(skimTopicCount)
	case skimTopicCount:
		s.topics = int64(int32(binary.BigEndian.Uint32(s.field)))
		s.nextTopic()
	case skimPartCount:
		s.partitions = int64(int32(binary.BigEndian.Uint32(s.field)))
		s.nextPartition()
	case skimPartIndex:
		s.name(int32(binary.BigEndian.Uint32(s.field)))
		if s.flexible {
			s.beginVarint(skimRecordsLen)
		} else {
			s.beginFixed(skimRecordsLen, 4)
		}
	case skimRecordsLen:
		s.startRecords(int64(int32(binary.BigEndian.Uint32(s.field))))
	}
}

// name adds a partition of the current topic to the answer, within the
// bounds.
func (s *ProduceSkimmer) name(partition int32) {
	if s.named >= s.max {
		return
	}
	if !s.topicAdded {
		if s.names+len(s.curTopic) > maxAnswerNames {
			return
		}
		s.names += len(s.curTopic)
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic = string(s.curTopic)
		s.resp.Topics = append(s.resp.Topics, rt)
		s.topicAdded = true
	}
	p := kmsg.NewProduceResponseTopicPartition()
	p.Partition = partition
	p.BaseOffset, p.LogAppendTime, p.LogStartOffset = -1, -1, -1
	last := &s.resp.Topics[len(s.resp.Topics)-1]
	last.Partitions = append(last.Partitions, p)
	s.named++
}

func (s *ProduceSkimmer) beginCount(next skimState) {
	if s.flexible {
		s.beginVarint(next)
		return
	}
	s.beginFixed(next, 4)
}

func (s *ProduceSkimmer) nextTopic() {
	if s.topics <= 0 {
		s.state = skimDone
		return
	}
	s.topics--
	s.beginString(skimTopicName)
}

func (s *ProduceSkimmer) nextPartition() {
	if s.partitions <= 0 {
		if s.flexible {
			s.beginVarint(skimTopicTags)
			return
		}
		s.nextTopic()
		return
	}
	s.partitions--
	s.beginFixed(skimPartIndex, 4)
}

func (s *ProduceSkimmer) startRecords(n int64) {
	if n <= 0 {
		s.afterRecords()
		return
	}
	s.skip = n
	s.state = skimRecords
}

func (s *ProduceSkimmer) afterRecords() {
	if s.flexible {
		s.beginVarint(skimPartTags)
		return
	}
	s.nextPartition()
}

// nextTag reads the next tagged field of the current section, or moves on.
func (s *ProduceSkimmer) nextTag() {
	if s.tags <= 0 {
		if s.tagSection == skimPartTags {
			s.nextPartition()
		} else {
			s.nextTopic()
		}
		return
	}
	s.tags--
	s.beginVarint(skimTagKey)
}

func (s *ProduceSkimmer) afterSkip() {
	if s.state == skimRecords {
		s.afterRecords()
		return
	}
	s.nextTag()
}
