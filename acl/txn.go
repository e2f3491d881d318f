package acl

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// notAttempted answers the partitions of a transactional request that
// were allowed but not served because others in it were denied (Kafka's
// OPERATION_NOT_ATTEMPTED: a transaction takes its partitions all or none).
var notAttempted = kerr.OperationNotAttempted.Code

// addPartitionsCodes decides one transaction's AddPartitionsToTxn as
// Kafka's KafkaApis does: without WRITE on the transactional id every
// topic is answered TRANSACTIONAL_ID_AUTHORIZATION_FAILED; else each topic
// without WRITE TOPIC_AUTHORIZATION_FAILED and the others
// OPERATION_NOT_ATTEMPTED. ok is true when every topic may be added.
func (w *who) addPartitionsCodes(txnID string, topics []string) (codes []int16, ok bool) {
	codes = make([]int16, len(topics))
	if !w.may(opWrite, rtTxn, txnID) {
		for i := range codes {
			codes[i] = txnDenied
		}
		return codes, false
	}
	ok = true
	for i, t := range topics {
		codes[i] = notAttempted
		if !w.may(opWrite, rtTopic, t) {
			codes[i], ok = topicDenied, false
		}
	}
	return codes, ok
}

// txnTopic is a topic an AddPartitionsToTxn transaction names; v0-v3 and
// v4+ spell it with two kmsg types of the same fields.
type txnTopic interface {
	kmsg.AddPartitionsToTxnRequestTopic | kmsg.AddPartitionsToTxnRequestTransactionTopic
}

// txnPartition is the answer of one partition, likewise spelled twice.
type txnPartition interface {
	kmsg.AddPartitionsToTxnResponseTopicPartition | kmsg.AddPartitionsToTxnResponseTransactionTopicPartition
}

// topicNames are the names of a transaction's topics.
func topicNames[T txnTopic](topics []T) []string {
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = kmsg.AddPartitionsToTxnRequestTopic(t).Topic
	}
	return names
}

// answerPartitions answers each partition of a topic with code.
func answerPartitions[P txnPartition](partitions []int32, code int16) []P {
	var ps []P
	for _, p := range partitions {
		ps = append(ps, P(kmsg.AddPartitionsToTxnResponseTopicPartition{Partition: p, ErrorCode: code}))
	}
	return ps
}

// addPartitionsToTxn checks WRITE on the transactional id and on each
// topic. v0-v3 (clients) name one transaction; v4+ (KIP-890, sent by
// brokers to verify) batch several and need CLUSTER_ACTION first, as in
// Kafka; each transaction is then checked on its own.
func (g *Guard) addPartitionsToTxn(w *who, r *kmsg.AddPartitionsToTxnRequest, respond func(kmsg.Response)) {
	resp := r.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	resp.SetVersion(r.GetVersion())
	if r.GetVersion() < 4 {
		codes, ok := w.addPartitionsCodes(r.TransactionalID, topicNames(r.Topics))
		if ok {
			g.forward(w, r, respond)
			return
		}
		for i, t := range r.Topics {
			rt := kmsg.NewAddPartitionsToTxnResponseTopic()
			rt.Topic = t.Topic
			rt.Partitions = answerPartitions[kmsg.AddPartitionsToTxnResponseTopicPartition](t.Partitions, codes[i])
			resp.Topics = append(resp.Topics, rt)
		}
		// Logged as the first topic's code; a request naming no topic is
		// refused only for its transactional id (codes[0] panicked and
		// closed the connection).
		logged := txnDenied
		if len(codes) > 0 {
			logged = codes[0]
		}
		w.denied(r.Key(), logged)
		respond(resp)
		return
	}
	if !w.mayCluster(opClusterAction) {
		w.deny(r, clusterDenied, respond)
		return
	}
	var denied []kmsg.AddPartitionsToTxnResponseTransaction
	allowed := r.Transactions[:0:0]
	for _, tx := range r.Transactions {
		codes, ok := w.addPartitionsCodes(tx.TransactionalID, topicNames(tx.Topics))
		if ok {
			allowed = append(allowed, tx)
			continue
		}
		rtx := kmsg.NewAddPartitionsToTxnResponseTransaction()
		rtx.TransactionalID = tx.TransactionalID
		for i, t := range tx.Topics {
			rt := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
			rt.Topic = t.Topic
			rt.Partitions = answerPartitions[kmsg.AddPartitionsToTxnResponseTransactionTopicPartition](t.Partitions, codes[i])
			rtx.Topics = append(rtx.Topics, rt)
		}
		denied = append(denied, rtx)
	}
	r.Transactions = allowed
	partial(g, w, r, func() {
		w.denied(r.Key(), 0)
		resp.Transactions = denied
		respond(resp)
	}, len(allowed), len(denied),
		func() *kmsg.AddPartitionsToTxnResponse { return &kmsg.AddPartitionsToTxnResponse{Transactions: denied} },
		func(into, from *kmsg.AddPartitionsToTxnResponse) {
			into.Transactions = append(into.Transactions, from.Transactions...)
		}, respond)
}

// txnOffsetCommit checks, as Kafka does, WRITE on the transactional id,
// READ on the group, then READ on each topic (the allowed topics are
// committed, the others answered TOPIC_AUTHORIZATION_FAILED).
func (g *Guard) txnOffsetCommit(w *who, r *kmsg.TxnOffsetCommitRequest, respond func(kmsg.Response)) {
	code := int16(0)
	switch {
	case !w.may(opWrite, rtTxn, r.TransactionalID):
		code = txnDenied
	case !w.may(opRead, rtGroup, r.Group):
		code = groupDenied
	}
	if code != 0 {
		w.denied(r.Key(), code)
		respond(txnOffsetCommitDenied(r, r.Topics, code))
		return
	}
	allowed, denied := split(r.Topics, func(t *kmsg.TxnOffsetCommitRequestTopic) bool { return w.may(opRead, rtTopic, t.Topic) })
	r.Topics = allowed
	partial(g, w, r, func() {
		w.denied(r.Key(), topicDenied)
		respond(txnOffsetCommitDenied(r, denied, topicDenied))
	}, len(allowed), len(denied),
		func() *kmsg.TxnOffsetCommitResponse { return txnOffsetCommitDenied(r, denied, topicDenied) },
		func(into, from *kmsg.TxnOffsetCommitResponse) { into.Topics = append(into.Topics, from.Topics...) }, respond)
}

// txnOffsetCommitDenied answers each partition of topics with code (the
// response has no top-level error).
func txnOffsetCommitDenied(r *kmsg.TxnOffsetCommitRequest, topics []kmsg.TxnOffsetCommitRequestTopic, code int16) *kmsg.TxnOffsetCommitResponse {
	resp := r.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	resp.SetVersion(r.GetVersion())
	for _, t := range topics {
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		for _, p := range t.Partitions {
			rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
