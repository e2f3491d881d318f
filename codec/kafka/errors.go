package kafka

import (
	"errors"
	"reflect"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrUnknownAPI is returned for an API key kmsg does not know.
var ErrUnknownAPI = errors.New("kafka: unknown api key")

// Kafka error codes floodgate answers with. The names follow Apache Kafka's
// Errors enum.
const (
	ErrNone                      int16 = 0
	ErrOffsetOutOfRange          int16 = 1
	ErrCorruptMessage            int16 = 2
	ErrUnknownTopicOrPartition   int16 = 3
	ErrInvalidFetchSize          int16 = 4
	ErrLeaderNotAvailable        int16 = 5
	ErrNotLeaderForPartition     int16 = 6
	ErrRequestTimedOut           int16 = 7
	ErrMessageTooLarge           int16 = 10
	ErrCoordinatorLoadInProgress int16 = 14
	ErrCoordinatorNotAvailable   int16 = 15
	ErrNotCoordinator            int16 = 16
	ErrInvalidTopic              int16 = 17
	ErrRecordListTooLarge        int16 = 18
	ErrIllegalGeneration         int16 = 22
	ErrInconsistentGroupProtocol int16 = 23
	ErrInvalidGroupID            int16 = 24
	ErrUnknownMemberID           int16 = 25
	ErrInvalidSessionTimeout     int16 = 26
	ErrRebalanceInProgress       int16 = 27
	ErrInvalidCommitOffsetSize   int16 = 28
	ErrUnsupportedVersion        int16 = 35
	ErrTopicAlreadyExists        int16 = 36
	ErrInvalidPartitions         int16 = 37
	ErrInvalidReplicationFactor  int16 = 38
	ErrInvalidRequest            int16 = 42
	ErrUnsupportedForMessageFmt  int16 = 43
	ErrOutOfOrderSequence        int16 = 45
	ErrDuplicateSequence         int16 = 46
	ErrInvalidProducerEpoch      int16 = 47
	ErrInvalidTxnState           int16 = 48
	ErrInvalidProducerIDMapping  int16 = 49
	ErrUnknownServerError        int16 = -1
	ErrInvalidConfig             int16 = 40
	ErrNotController             int16 = 41
	ErrKafkaStorageError         int16 = 56
	ErrGroupIDNotFound           int16 = 69
	ErrNonEmptyGroup             int16 = 68
	ErrFetchSessionIDNotFound    int16 = 70
	ErrMemberIDRequired          int16 = 79
	ErrUnknownProducerID         int16 = 59
	ErrGroupSubscribedToTopic    int16 = 86
	ErrThrottlingQuotaExceeded   int16 = 89
	ErrFencedInstanceID          int16 = 82
	ErrUnknownLeaderEpoch        int16 = 75
	ErrFencedLeaderEpoch         int16 = 74
	ErrOffsetNotAvailable        int16 = 78
	ErrUnstableOffsetCommit      int16 = 88
	ErrOffsetMetadataTooLarge    int16 = 12
	ErrInvalidReplicaAssignment  int16 = 39
	ErrInvalidTimestamp          int16 = 32
	ErrInvalidRecord             int16 = 87
)

// ErrorResponse builds the response to req in which every part of the
// request (each partition of a Produce or Fetch, each topic of a
// CreateTopics, ...) carries code. APIs without per-item errors get code in
// their top-level error field. The response version matches the request's.
func ErrorResponse(req kmsg.Request, code int16) kmsg.Response {
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		out := resp.(*kmsg.ProduceResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic = t.Topic
			rt.TopicID = t.TopicID
			for _, p := range t.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition = p.Partition
				rp.ErrorCode = code
				rt.Partitions = append(rt.Partitions, rp)
			}
			out.Topics = append(out.Topics, rt)
		}
	case *kmsg.FetchRequest:
		out := resp.(*kmsg.FetchResponse)
		out.ErrorCode = code
		for _, t := range r.Topics {
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic = t.Topic
			rt.TopicID = t.TopicID
			for _, p := range t.Partitions {
				rp := kmsg.NewFetchResponseTopicPartition()
				rp.Partition = p.Partition
				rp.ErrorCode = code
				rp.HighWatermark = -1
				rp.LastStableOffset = -1
				// Empty records, not null, as Kafka answers: sarama
				// below Kafka 2.7 (Fetch v4-v11) fails to decode null
				// and drops the connection.
				rp.RecordBatches = []byte{}
				rt.Partitions = append(rt.Partitions, rp)
			}
			out.Topics = append(out.Topics, rt)
		}
	case *kmsg.ListOffsetsRequest:
		out := resp.(*kmsg.ListOffsetsResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewListOffsetsResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewListOffsetsResponseTopicPartition()
				rp.Partition = p.Partition
				rp.ErrorCode = code
				rt.Partitions = append(rt.Partitions, rp)
			}
			out.Topics = append(out.Topics, rt)
		}
	case *kmsg.CreateTopicsRequest:
		out := resp.(*kmsg.CreateTopicsResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewCreateTopicsResponseTopic()
			rt.Topic = t.Topic
			rt.ErrorCode = code
			out.Topics = append(out.Topics, rt)
		}
	case *kmsg.DeleteTopicsRequest:
		out := resp.(*kmsg.DeleteTopicsResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewDeleteTopicsResponseTopic()
			rt.Topic = t.Topic
			rt.ErrorCode = code
			out.Topics = append(out.Topics, rt)
		}
		for _, name := range r.TopicNames {
			rt := kmsg.NewDeleteTopicsResponseTopic()
			rt.Topic = kmsg.StringPtr(name)
			rt.ErrorCode = code
			out.Topics = append(out.Topics, rt)
		}
	case *kmsg.CreatePartitionsRequest:
		out := resp.(*kmsg.CreatePartitionsResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewCreatePartitionsResponseTopic()
			rt.Topic = t.Topic
			rt.ErrorCode = code
			out.Topics = append(out.Topics, rt)
		}
	case *kmsg.OffsetCommitRequest:
		out := resp.(*kmsg.OffsetCommitResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition = p.Partition
				rp.ErrorCode = code
				rt.Partitions = append(rt.Partitions, rp)
			}
			out.Topics = append(out.Topics, rt)
		}
	case *kmsg.MetadataRequest:
		out := resp.(*kmsg.MetadataResponse)
		out.ControllerID = -1
		out.ErrorCode = code // v13+ (KIP-1102); before, only the topics can say it
		for _, t := range r.Topics {
			rt := kmsg.NewMetadataResponseTopic()
			rt.Topic = t.Topic
			rt.TopicID = t.TopicID
			rt.ErrorCode = code
			out.Topics = append(out.Topics, rt)
		}
	case *kmsg.OffsetFetchRequest:
		out := resp.(*kmsg.OffsetFetchResponse)
		out.ErrorCode = code // v2-v7
		for _, t := range r.Topics {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition = p
				rp.Offset = -1
				rp.LeaderEpoch = -1
				rp.ErrorCode = code
				rt.Partitions = append(rt.Partitions, rp)
			}
			out.Topics = append(out.Topics, rt)
		}
		for _, g := range r.Groups { // v8+
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group = g.Group
			rg.ErrorCode = code
			out.Groups = append(out.Groups, rg)
		}
	case *kmsg.DescribeGroupsRequest:
		out := resp.(*kmsg.DescribeGroupsResponse)
		for _, g := range r.Groups {
			rg := kmsg.NewDescribeGroupsResponseGroup()
			rg.Group = g
			rg.ErrorCode = code
			out.Groups = append(out.Groups, rg)
		}
	case *kmsg.DeleteGroupsRequest:
		out := resp.(*kmsg.DeleteGroupsResponse)
		for _, g := range r.Groups {
			rg := kmsg.NewDeleteGroupsResponseGroup()
			rg.Group = g
			rg.ErrorCode = code
			out.Groups = append(out.Groups, rg)
		}
	case *kmsg.DeleteRecordsRequest:
		out := resp.(*kmsg.DeleteRecordsResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewDeleteRecordsResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewDeleteRecordsResponseTopicPartition()
				rp.Partition = p.Partition
				rp.LowWatermark = -1
				rp.ErrorCode = code
				rt.Partitions = append(rt.Partitions, rp)
			}
			out.Topics = append(out.Topics, rt)
		}
	case *kmsg.OffsetForLeaderEpochRequest:
		out := resp.(*kmsg.OffsetForLeaderEpochResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewOffsetForLeaderEpochResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
				rp.Partition = p.Partition
				rp.LeaderEpoch = -1
				rp.EndOffset = -1
				rp.ErrorCode = code
				rt.Partitions = append(rt.Partitions, rp)
			}
			out.Topics = append(out.Topics, rt)
		}
	case *kmsg.DescribeConfigsRequest:
		out := resp.(*kmsg.DescribeConfigsResponse)
		for _, c := range r.Resources {
			rr := kmsg.NewDescribeConfigsResponseResource()
			rr.ResourceType, rr.ResourceName, rr.ErrorCode = c.ResourceType, c.ResourceName, code
			out.Resources = append(out.Resources, rr)
		}
	case *kmsg.AlterConfigsRequest:
		out := resp.(*kmsg.AlterConfigsResponse)
		for _, c := range r.Resources {
			rr := kmsg.NewAlterConfigsResponseResource()
			rr.ResourceType, rr.ResourceName, rr.ErrorCode = c.ResourceType, c.ResourceName, code
			out.Resources = append(out.Resources, rr)
		}
	case *kmsg.IncrementalAlterConfigsRequest:
		out := resp.(*kmsg.IncrementalAlterConfigsResponse)
		for _, c := range r.Resources {
			rr := kmsg.NewIncrementalAlterConfigsResponseResource()
			rr.ResourceType, rr.ResourceName, rr.ErrorCode = c.ResourceType, c.ResourceName, code
			out.Resources = append(out.Resources, rr)
		}
	case *kmsg.FindCoordinatorRequest:
		out := resp.(*kmsg.FindCoordinatorResponse)
		out.ErrorCode, out.NodeID = code, -1  // v0-v3
		for _, k := range r.CoordinatorKeys { // v4+
			rc := kmsg.NewFindCoordinatorResponseCoordinator()
			rc.Key, rc.NodeID, rc.ErrorCode = k, -1, code
			out.Coordinators = append(out.Coordinators, rc)
		}
	default:
		setTopLevelError(resp, code)
	}
	return resp
}

// RefusalResponse is ErrorResponse for refusals: ok is false when the
// response, as encoded at the request's version, would not carry code
// anywhere (a Metadata request for all topics before v13, a Fetch v4-v6
// without partitions, ...). The caller must then close the connection,
// which every client treats as retriable, rather than send an answer the
// client would take for a success (an empty Metadata answer makes
// franz-go drop every broker it knows).
func RefusalResponse(req kmsg.Request, code int16) (kmsg.Response, bool) {
	resp := ErrorResponse(req, code)
	return resp, carriesCode(resp, code)
}

// carriesCode reports whether resp, encoded at its version, says code in
// some ErrorCode field: it encodes and decodes resp (a cold path) so that
// fields of other versions, which the encoding drops, do not count.
func carriesCode(resp kmsg.Response, code int16) bool {
	if p, ok := resp.(*kmsg.ProduceResponse); ok { // hot under throttling: every partition carries it
		return len(p.Topics) > 0 && len(p.Topics[0].Partitions) > 0
	}
	back := kmsg.ResponseForKey(resp.Key())
	back.SetVersion(resp.GetVersion())
	if err := back.ReadFrom(resp.AppendTo(nil)); err != nil {
		return false
	}
	return hasErrorCode(reflect.ValueOf(back), code, 0)
}

// hasErrorCode walks v for an int16 field named ErrorCode equal to code.
func hasErrorCode(v reflect.Value, code int16, depth int) bool {
	if depth > 6 {
		return false
	}
	switch v.Kind() {
	case reflect.Pointer:
		return !v.IsNil() && hasErrorCode(v.Elem(), code, depth+1)
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < v.NumField(); i++ {
			f := v.Field(i)
			if t.Field(i).Name == "ErrorCode" && f.Kind() == reflect.Int16 && f.Int() == int64(code) {
				return true
			}
			if (f.Kind() == reflect.Slice || f.Kind() == reflect.Struct) && hasErrorCode(f, code, depth+1) {
				return true
			}
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.Struct {
			return false
		}
		for i := 0; i < v.Len(); i++ {
			if hasErrorCode(v.Index(i), code, depth+1) {
				return true
			}
		}
	}
	return false
}

// setTopLevelError sets an ErrorCode field at the top of resp if it has one
// and reports whether it did. It is the cold-path fallback for APIs without
// a dedicated shape above.
func setTopLevelError(resp kmsg.Response, code int16) bool {
	v := reflect.ValueOf(resp)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return false
	}
	f := v.Elem().FieldByName("ErrorCode")
	if f.IsValid() && f.CanSet() && f.Kind() == reflect.Int16 {
		f.SetInt(int64(code))
		return true
	}
	return false
}

// TopLevelErrorResponse builds an error response for a request that was
// not decoded (refused before buffering): only APIs whose responses carry
// a top-level error code can say it, so ok is false for the others (and
// the caller closes the connection instead of answering with an empty,
// misleading response). Produce is answered per partition by the
// ProduceSkimmer instead.
func TopLevelErrorResponse(key, version int16, code int16) (kmsg.Response, bool) {
	resp := kmsg.ResponseForKey(key)
	if resp == nil {
		return nil, false
	}
	resp.SetVersion(version)
	// The field must exist at this version: kmsg's structs hold the fields
	// of every version (Metadata's ErrorCode is v13+, OffsetFetch's
	// v2-v7), and one the encoding drops made a refusal read as success.
	// Which (key, version) pairs carry it is worked out once, at start: a
	// flood of refusals does not encode and decode an answer each.
	if !topLevelCarries(key, version) || !setTopLevelError(resp, code) {
		return nil, false
	}
	return resp, true
}

// topLevelTable says, per API key and version, whether its response
// carries a top-level error code at that version. It is built at start
// and never written after.
var topLevelTable = buildTopLevelTable()

func buildTopLevelTable() [][]bool {
	var t [][]bool
	for key := int16(0); ; key++ {
		resp := kmsg.ResponseForKey(key)
		if resp == nil {
			if key > 100 {
				return t
			}
			t = append(t, nil)
			continue
		}
		vs := make([]bool, resp.MaxVersion()+1)
		for v := range vs {
			r := kmsg.ResponseForKey(key)
			r.SetVersion(int16(v))
			vs[v] = setTopLevelError(r, ErrUnknownServerError) && carriesCode(r, ErrUnknownServerError)
		}
		t = append(t, vs)
	}
}

// topLevelCarries reports whether key's response at version has a
// top-level error code.
func topLevelCarries(key, version int16) bool {
	if key < 0 || int(key) >= len(topLevelTable) || version < 0 || int(version) >= len(topLevelTable[key]) {
		return false
	}
	return topLevelTable[key][version]
}

// SetThrottle sets throttle_time_ms on a response that carries it.
func SetThrottle(resp kmsg.Response, millis int32) {
	if t, ok := resp.(kmsg.SetThrottleResponse); ok {
		t.SetThrottle(millis)
	}
}

// CoordinatorError reports a group-coordinator answer (JoinGroup,
// SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch) from a broker
// that is not, or not yet, the group's coordinator: NOT_COORDINATOR,
// COORDINATOR_NOT_AVAILABLE or COORDINATOR_LOAD_IN_PROGRESS. A client finds
// the coordinator again and retries.
func CoordinatorError(resp kmsg.Response) bool {
	var code int16
	switch r := resp.(type) {
	case *kmsg.JoinGroupResponse:
		code = r.ErrorCode
	case *kmsg.SyncGroupResponse:
		code = r.ErrorCode
	case *kmsg.HeartbeatResponse:
		code = r.ErrorCode
	case *kmsg.LeaveGroupResponse:
		code = r.ErrorCode
	case *kmsg.OffsetCommitResponse:
		if len(r.Topics) > 0 && len(r.Topics[0].Partitions) > 0 {
			code = r.Topics[0].Partitions[0].ErrorCode
		}
	case *kmsg.OffsetFetchResponse:
		code = r.ErrorCode
		if code == 0 && len(r.Groups) > 0 {
			code = r.Groups[0].ErrorCode
		}
		if code == 0 && len(r.Topics) > 0 && len(r.Topics[0].Partitions) > 0 {
			code = r.Topics[0].Partitions[0].ErrorCode
		}
	}
	return code == ErrNotCoordinator || code == ErrCoordinatorNotAvailable || code == ErrCoordinatorLoadInProgress
}

// GroupOf returns the group a group-coordinator request names (the first
// of a batched OffsetFetch v8+), and whether req is one.
func GroupOf(req kmsg.Request) (string, bool) {
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		return r.Group, true
	case *kmsg.SyncGroupRequest:
		return r.Group, true
	case *kmsg.HeartbeatRequest:
		return r.Group, true
	case *kmsg.LeaveGroupRequest:
		return r.Group, true
	case *kmsg.OffsetCommitRequest:
		return r.Group, true
	case *kmsg.OffsetFetchRequest:
		if r.Group == "" && len(r.Groups) > 0 {
			return r.Groups[0].Group, true
		}
		return r.Group, true
	}
	return "", false
}
