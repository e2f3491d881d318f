package acl

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

// Operations and resource types, short.
const (
	opRead            = kmsg.ACLOperationRead
	opWrite           = kmsg.ACLOperationWrite
	opCreate          = kmsg.ACLOperationCreate
	opDelete          = kmsg.ACLOperationDelete
	opAlter           = kmsg.ACLOperationAlter
	opDescribe        = kmsg.ACLOperationDescribe
	opDescribeConfigs = kmsg.ACLOperationDescribeConfigs
	opAlterConfigs    = kmsg.ACLOperationAlterConfigs
	opIdempotentWrite = kmsg.ACLOperationIdempotentWrite
	opClusterAction   = kmsg.ACLOperationClusterAction
	rtTopic           = kmsg.ACLResourceTypeTopic
	rtGroup           = kmsg.ACLResourceTypeGroup
	rtTxn             = kmsg.ACLResourceTypeTransactionalId
)

// authorize checks req against the ACLs, API by API, as Kafka's
// KafkaApis does, and serves what is allowed.
func (g *Guard) authorize(w *who, req kmsg.Request, respond func(kmsg.Response)) {
	g.audit(w, req, nil)
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		g.produce(w, r, respond)
	case *kmsg.FetchRequest:
		all := r.Topics
		allowed, denied := split(r.Topics, func(t *kmsg.FetchRequestTopic) bool { return w.may(opRead, rtTopic, t.Topic) })
		r.Topics = allowed
		partial(g, w, r, func() { respond(fetchDenied(r, all)) }, len(allowed), len(denied),
			func() *kmsg.FetchResponse { return fetchDenied(r, denied) },
			func(into, from *kmsg.FetchResponse) { into.Topics = append(into.Topics, from.Topics...) }, respond)
	case *kmsg.ListOffsetsRequest:
		allowed, denied := split(r.Topics, func(t *kmsg.ListOffsetsRequestTopic) bool { return w.may(opDescribe, rtTopic, t.Topic) })
		dr := *r
		dr.Topics = denied
		r.Topics = allowed
		partial(g, w, r, func() { w.deny(&dr, topicDenied, respond) }, len(allowed), len(denied),
			func() *kmsg.ListOffsetsResponse {
				return kafka.ErrorResponse(&dr, topicDenied).(*kmsg.ListOffsetsResponse)
			},
			func(into, from *kmsg.ListOffsetsResponse) { into.Topics = append(into.Topics, from.Topics...) }, respond)
	case *kmsg.MetadataRequest:
		g.metadata(w, r, respond)
	case *kmsg.OffsetCommitRequest:
		if !w.may(opRead, rtGroup, r.Group) {
			w.deny(r, groupDenied, respond)
			return
		}
		allowed, denied := split(r.Topics, func(t *kmsg.OffsetCommitRequestTopic) bool { return w.may(opRead, rtTopic, t.Topic) })
		dr := *r
		dr.Topics = denied
		r.Topics = allowed
		partial(g, w, r, func() { w.deny(&dr, topicDenied, respond) }, len(allowed), len(denied),
			func() *kmsg.OffsetCommitResponse {
				return kafka.ErrorResponse(&dr, topicDenied).(*kmsg.OffsetCommitResponse)
			},
			func(into, from *kmsg.OffsetCommitResponse) { into.Topics = append(into.Topics, from.Topics...) }, respond)
	case *kmsg.OffsetFetchRequest:
		g.offsetFetch(w, r, respond)
	case *kmsg.FindCoordinatorRequest:
		g.findCoordinator(w, r, respond)
	case *kmsg.JoinGroupRequest, *kmsg.HeartbeatRequest, *kmsg.LeaveGroupRequest, *kmsg.SyncGroupRequest:
		group, _ := kafka.GroupOf(r)
		g.wholeGroup(w, r, group, opRead, respond)
	case *kmsg.DescribeGroupsRequest:
		allowed, denied := split(r.Groups, func(gr *string) bool { return w.may(opDescribe, rtGroup, *gr) })
		dr := *r
		dr.Groups = denied
		r.Groups = allowed
		partial(g, w, r, func() { w.deny(&dr, groupDenied, respond) }, len(allowed), len(denied),
			func() *kmsg.DescribeGroupsResponse {
				return kafka.ErrorResponse(&dr, groupDenied).(*kmsg.DescribeGroupsResponse)
			},
			func(into, from *kmsg.DescribeGroupsResponse) { into.Groups = append(into.Groups, from.Groups...) }, respond)
	case *kmsg.ListGroupsRequest:
		if w.mayCluster(opDescribe) {
			g.forward(w, r, respond)
			return
		}
		g.forward(w, r, func(resp kmsg.Response) {
			if lr, ok := resp.(*kmsg.ListGroupsResponse); ok {
				kept := lr.Groups[:0]
				for _, gr := range lr.Groups {
					if w.may(opDescribe, rtGroup, gr.Group) {
						kept = append(kept, gr)
					}
				}
				lr.Groups = kept
			}
			respond(resp)
		})
	case *kmsg.CreateTopicsRequest:
		clusterCreate := w.mayCluster(opCreate)
		allowed, denied := split(r.Topics, func(t *kmsg.CreateTopicsRequestTopic) bool {
			return clusterCreate || w.may(opCreate, rtTopic, t.Topic)
		})
		dr := *r
		dr.Topics = denied
		r.Topics = allowed
		partial(g, w, r, func() { w.deny(&dr, topicDenied, respond) }, len(allowed), len(denied),
			func() *kmsg.CreateTopicsResponse {
				return kafka.ErrorResponse(&dr, topicDenied).(*kmsg.CreateTopicsResponse)
			},
			func(into, from *kmsg.CreateTopicsResponse) { into.Topics = append(into.Topics, from.Topics...) }, respond)
	case *kmsg.DeleteTopicsRequest:
		g.deleteTopics(w, r, respond)
	case *kmsg.DeleteRecordsRequest:
		allowed, denied := split(r.Topics, func(t *kmsg.DeleteRecordsRequestTopic) bool { return w.may(opDelete, rtTopic, t.Topic) })
		dr := *r
		dr.Topics = denied
		r.Topics = allowed
		partial(g, w, r, func() { w.deny(&dr, topicDenied, respond) }, len(allowed), len(denied),
			func() *kmsg.DeleteRecordsResponse {
				return kafka.ErrorResponse(&dr, topicDenied).(*kmsg.DeleteRecordsResponse)
			},
			func(into, from *kmsg.DeleteRecordsResponse) { into.Topics = append(into.Topics, from.Topics...) }, respond)
	case *kmsg.InitProducerIDRequest:
		g.initProducerID(w, r, respond)
	case *kmsg.AddPartitionsToTxnRequest:
		g.addPartitionsToTxn(w, r, respond)
	case *kmsg.AddOffsetsToTxnRequest:
		switch {
		case !w.may(opWrite, rtTxn, r.TransactionalID):
			w.deny(r, txnDenied, respond)
		case !w.may(opRead, rtGroup, r.Group):
			w.deny(r, groupDenied, respond)
		default:
			g.forward(w, r, respond)
		}
	case *kmsg.EndTxnRequest:
		if !w.may(opWrite, rtTxn, r.TransactionalID) {
			w.deny(r, txnDenied, respond)
			return
		}
		g.forward(w, r, respond)
	case *kmsg.TxnOffsetCommitRequest:
		g.txnOffsetCommit(w, r, respond)
	case *kmsg.OffsetForLeaderEpochRequest:
		allowed, denied := split(r.Topics, func(t *kmsg.OffsetForLeaderEpochRequestTopic) bool {
			return w.may(opDescribe, rtTopic, t.Topic)
		})
		dr := *r
		dr.Topics = denied
		r.Topics = allowed
		partial(g, w, r, func() { w.deny(&dr, topicDenied, respond) }, len(allowed), len(denied),
			func() *kmsg.OffsetForLeaderEpochResponse {
				return kafka.ErrorResponse(&dr, topicDenied).(*kmsg.OffsetForLeaderEpochResponse)
			},
			func(into, from *kmsg.OffsetForLeaderEpochResponse) { into.Topics = append(into.Topics, from.Topics...) }, respond)
	case *kmsg.DescribeConfigsRequest:
		allowed, denied := split(r.Resources, func(res *kmsg.DescribeConfigsRequestResource) bool {
			return w.mayConfig(opDescribeConfigs, res.ResourceType, res.ResourceName)
		})
		dr := *r
		dr.Resources = denied
		r.Resources = allowed
		partial(g, w, r, func() { respond(configsDenied(&dr)) }, len(allowed), len(denied),
			func() *kmsg.DescribeConfigsResponse { return configsDenied(&dr).(*kmsg.DescribeConfigsResponse) },
			func(into, from *kmsg.DescribeConfigsResponse) {
				into.Resources = append(into.Resources, from.Resources...)
			}, respond)
	case *kmsg.AlterConfigsRequest:
		allowed, denied := split(r.Resources, func(res *kmsg.AlterConfigsRequestResource) bool {
			return w.mayConfig(opAlterConfigs, res.ResourceType, res.ResourceName)
		})
		dr := *r
		dr.Resources = denied
		r.Resources = allowed
		partial(g, w, r, func() { respond(configsDenied(&dr)) }, len(allowed), len(denied),
			func() *kmsg.AlterConfigsResponse { return configsDenied(&dr).(*kmsg.AlterConfigsResponse) },
			func(into, from *kmsg.AlterConfigsResponse) {
				into.Resources = append(into.Resources, from.Resources...)
			}, respond)
	case *kmsg.IncrementalAlterConfigsRequest:
		allowed, denied := split(r.Resources, func(res *kmsg.IncrementalAlterConfigsRequestResource) bool {
			return w.mayConfig(opAlterConfigs, res.ResourceType, res.ResourceName)
		})
		dr := *r
		dr.Resources = denied
		r.Resources = allowed
		partial(g, w, r, func() { respond(configsDenied(&dr)) }, len(allowed), len(denied),
			func() *kmsg.IncrementalAlterConfigsResponse {
				return configsDenied(&dr).(*kmsg.IncrementalAlterConfigsResponse)
			},
			func(into, from *kmsg.IncrementalAlterConfigsResponse) {
				into.Resources = append(into.Resources, from.Resources...)
			}, respond)
	case *kmsg.CreatePartitionsRequest:
		allowed, denied := split(r.Topics, func(t *kmsg.CreatePartitionsRequestTopic) bool { return w.may(opAlter, rtTopic, t.Topic) })
		dr := *r
		dr.Topics = denied
		r.Topics = allowed
		partial(g, w, r, func() { w.deny(&dr, topicDenied, respond) }, len(allowed), len(denied),
			func() *kmsg.CreatePartitionsResponse {
				return kafka.ErrorResponse(&dr, topicDenied).(*kmsg.CreatePartitionsResponse)
			},
			func(into, from *kmsg.CreatePartitionsResponse) { into.Topics = append(into.Topics, from.Topics...) }, respond)
	case *kmsg.DeleteGroupsRequest:
		allowed, denied := split(r.Groups, func(gr *string) bool { return w.may(opDelete, rtGroup, *gr) })
		dr := *r
		dr.Groups = denied
		r.Groups = allowed
		partial(g, w, r, func() { w.deny(&dr, groupDenied, respond) }, len(allowed), len(denied),
			func() *kmsg.DeleteGroupsResponse {
				return kafka.ErrorResponse(&dr, groupDenied).(*kmsg.DeleteGroupsResponse)
			},
			func(into, from *kmsg.DeleteGroupsResponse) { into.Groups = append(into.Groups, from.Groups...) }, respond)
	case *kmsg.OffsetDeleteRequest:
		resp := r.ResponseKind().(*kmsg.OffsetDeleteResponse)
		resp.SetVersion(r.GetVersion())
		if !w.may(opDelete, rtGroup, r.Group) {
			resp.ErrorCode = groupDenied
			respond(resp)
			return
		}
		for _, t := range r.Topics {
			if !w.may(opRead, rtTopic, t.Topic) {
				resp.ErrorCode = topicDenied // the whole request: its topics are not answered one by one here
				respond(resp)
				return
			}
		}
		g.forward(w, r, respond)
	case *kmsg.DescribeClusterRequest:
		if !w.mayCluster(opDescribe) {
			resp := r.ResponseKind().(*kmsg.DescribeClusterResponse)
			resp.SetVersion(r.GetVersion())
			resp.ErrorCode = clusterDenied
			respond(resp)
			return
		}
		g.forward(w, r, respond)
	default:
		// An API with no rule here (the gateway forwards more than the
		// broker serves): cluster ALTER, which super users and operators
		// granted it have.
		if w.mayCluster(opAlter) {
			g.forward(w, r, respond)
			return
		}
		if resp, ok := kafka.RefusalResponse(r, clusterDenied); ok {
			respond(resp)
			return
		}
		w.deny(r, clusterDenied, respond)
	}
}

// mayConfig checks a config resource: a topic's, or the broker's (cluster).
func (w *who) mayConfig(op kmsg.ACLOperation, rt kmsg.ConfigResourceType, name string) bool {
	if rt == kmsg.ConfigResourceTypeTopic {
		return w.may(op, rtTopic, name)
	}
	return w.mayCluster(op)
}

// configsDenied answers each config resource of req with the error of its
// resource type.
func configsDenied(req kmsg.Request) kmsg.Response {
	resp := kafka.ErrorResponse(req, topicDenied)
	fix := func(rt kmsg.ConfigResourceType, code *int16) {
		if rt != kmsg.ConfigResourceTypeTopic {
			*code = clusterDenied
		}
	}
	switch r := resp.(type) {
	case *kmsg.DescribeConfigsResponse:
		for i := range r.Resources {
			fix(r.Resources[i].ResourceType, &r.Resources[i].ErrorCode)
		}
	case *kmsg.AlterConfigsResponse:
		for i := range r.Resources {
			fix(r.Resources[i].ResourceType, &r.Resources[i].ErrorCode)
		}
	case *kmsg.IncrementalAlterConfigsResponse:
		for i := range r.Resources {
			fix(r.Resources[i].ResourceType, &r.Resources[i].ErrorCode)
		}
	}
	return resp
}

// wholeGroup serves a group request only with op on the group.
func (g *Guard) wholeGroup(w *who, req kmsg.Request, group string, op kmsg.ACLOperation, respond func(kmsg.Response)) {
	if !w.may(op, rtGroup, group) {
		w.deny(req, groupDenied, respond)
		return
	}
	g.forward(w, req, respond)
}

// fetchDenied answers topics of a Fetch with TOPIC_AUTHORIZATION_FAILED
// per partition (the top-level error stays NONE, as Kafka's).
func fetchDenied(r *kmsg.FetchRequest, topics []kmsg.FetchRequestTopic) *kmsg.FetchResponse {
	dr := *r
	dr.Topics = topics
	resp := kafka.ErrorResponse(&dr, topicDenied).(*kmsg.FetchResponse)
	resp.ErrorCode = 0
	resp.SessionID = 0
	return resp
}

// produce checks WRITE on each topic (and on the transactional id).
func (g *Guard) produce(w *who, r *kmsg.ProduceRequest, respond func(kmsg.Response)) {
	if r.TransactionID != nil && !w.may(opWrite, rtTxn, *r.TransactionID) {
		w.deny(r, txnDenied, respond)
		return
	}
	allowed, denied := split(r.Topics, func(t *kmsg.ProduceRequestTopic) bool { return w.may(opWrite, rtTopic, t.Topic) })
	dr := *r
	dr.Topics = denied
	r.Topics = allowed
	if len(denied) > 0 && r.Acks == 0 {
		// No answer is due: the allowed part is served, the rest dropped.
		if len(allowed) == 0 {
			respond(nil)
			return
		}
		g.forward(w, r, respond)
		return
	}
	partial(g, w, r, func() { w.deny(&dr, topicDenied, respond) }, len(allowed), len(denied),
		func() *kmsg.ProduceResponse { return kafka.ErrorResponse(&dr, topicDenied).(*kmsg.ProduceResponse) },
		func(into, from *kmsg.ProduceResponse) { into.Topics = append(into.Topics, from.Topics...) }, respond)
}

// metadata serves the topics the principal may describe: asked for all
// topics, the others are left out of the answer; asked by name, the
// others are answered TOPIC_AUTHORIZATION_FAILED. Auto-creation needs
// CREATE on the cluster or on each topic asked for.
func (g *Guard) metadata(w *who, r *kmsg.MetadataRequest, respond func(kmsg.Response)) {
	filter := func(resp kmsg.Response) {
		if mr, ok := resp.(*kmsg.MetadataResponse); ok {
			kept := mr.Topics[:0]
			for _, t := range mr.Topics {
				if t.Topic != nil && w.may(opDescribe, rtTopic, *t.Topic) {
					kept = append(kept, t)
				}
			}
			mr.Topics = kept
		}
		respond(resp)
	}
	if r.Topics == nil || (len(r.Topics) == 0 && r.GetVersion() == 0) {
		g.forward(w, r, filter)
		return
	}
	allowed, denied := split(r.Topics, func(t *kmsg.MetadataRequestTopic) bool {
		return t.Topic != nil && w.may(opDescribe, rtTopic, *t.Topic)
	})
	if r.AllowAutoTopicCreation && !w.mayCluster(opCreate) {
		for _, t := range allowed {
			if !w.may(opCreate, rtTopic, *t.Topic) {
				r.AllowAutoTopicCreation = false
			}
		}
	}
	dr := *r
	dr.Topics = denied
	deniedTopics := kafka.ErrorResponse(&dr, topicDenied).(*kmsg.MetadataResponse).Topics
	if len(allowed) == 0 && r.GetVersion() == 0 {
		// v0 reads an empty list as "all topics": answer alone.
		resp := r.ResponseKind().(*kmsg.MetadataResponse)
		resp.SetVersion(r.GetVersion())
		resp.Topics = deniedTopics
		respond(resp)
		return
	}
	r.Topics = allowed
	if r.Topics == nil {
		r.Topics = []kmsg.MetadataRequestTopic{} // none, not all
	}
	g.forward(w, r, func(resp kmsg.Response) {
		if mr, ok := resp.(*kmsg.MetadataResponse); ok {
			mr.Topics = append(mr.Topics, deniedTopics...)
		}
		respond(resp)
	})
}

// offsetFetch checks DESCRIBE on the group(s); the topics answered are
// those the principal may describe.
func (g *Guard) offsetFetch(w *who, r *kmsg.OffsetFetchRequest, respond func(kmsg.Response)) {
	describable := func(resp kmsg.Response) {
		if or, ok := resp.(*kmsg.OffsetFetchResponse); ok {
			kept := or.Topics[:0]
			for _, t := range or.Topics {
				if w.may(opDescribe, rtTopic, t.Topic) {
					kept = append(kept, t)
				}
			}
			or.Topics = kept
			for i := range or.Groups {
				gkept := or.Groups[i].Topics[:0]
				for _, t := range or.Groups[i].Topics {
					if w.may(opDescribe, rtTopic, t.Topic) {
						gkept = append(gkept, t)
					}
				}
				or.Groups[i].Topics = gkept
			}
		}
		respond(resp)
	}
	if r.GetVersion() < 8 {
		if !w.may(opDescribe, rtGroup, r.Group) {
			w.deny(r, groupDenied, respond)
			return
		}
		g.forward(w, r, describable)
		return
	}
	allowed, denied := split(r.Groups, func(gr *kmsg.OffsetFetchRequestGroup) bool { return w.may(opDescribe, rtGroup, gr.Group) })
	dr := *r
	dr.Groups = denied
	r.Groups = allowed
	if len(denied) == 0 {
		g.forward(w, r, describable)
		return
	}
	deniedResp := kafka.ErrorResponse(&dr, groupDenied).(*kmsg.OffsetFetchResponse)
	for i := range deniedResp.Groups {
		deniedResp.Groups[i].Topics = nil
		deniedResp.Groups[i].ErrorCode = groupDenied
	}
	if len(allowed) == 0 {
		respond(deniedResp)
		return
	}
	g.forward(w, r, func(resp kmsg.Response) {
		if or, ok := resp.(*kmsg.OffsetFetchResponse); ok {
			or.Groups = append(or.Groups, deniedResp.Groups...)
		}
		describable(resp)
	})
}

// findCoordinator checks DESCRIBE on each group or transactional id.
func (g *Guard) findCoordinator(w *who, r *kmsg.FindCoordinatorRequest, respond func(kmsg.Response)) {
	rt, code := rtGroup, groupDenied
	if r.CoordinatorType == 1 {
		rt, code = rtTxn, txnDenied
	}
	if r.GetVersion() < 4 {
		if !w.may(opDescribe, rt, r.CoordinatorKey) {
			w.deny(r, code, respond)
			return
		}
		g.forward(w, r, respond)
		return
	}
	allowed, denied := split(r.CoordinatorKeys, func(k *string) bool { return w.may(opDescribe, rt, *k) })
	dr := *r
	dr.CoordinatorKeys = denied
	r.CoordinatorKeys = allowed
	partial(g, w, r, func() { w.deny(&dr, code, respond) }, len(allowed), len(denied),
		func() *kmsg.FindCoordinatorResponse {
			return kafka.ErrorResponse(&dr, code).(*kmsg.FindCoordinatorResponse)
		},
		func(into, from *kmsg.FindCoordinatorResponse) {
			into.Coordinators = append(into.Coordinators, from.Coordinators...)
		}, respond)
}

// deleteTopics checks DELETE on each topic; a topic named only by id
// (v6+) is refused unless the principal may delete every topic.
func (g *Guard) deleteTopics(w *who, r *kmsg.DeleteTopicsRequest, respond func(kmsg.Response)) {
	dr := *r
	var nAllowed, nDenied int
	if r.GetVersion() < 6 {
		allowed, denied := split(r.TopicNames, func(n *string) bool { return w.may(opDelete, rtTopic, *n) })
		dr.TopicNames, r.TopicNames = denied, allowed
		nAllowed, nDenied = len(allowed), len(denied)
	} else {
		allowed, denied := split(r.Topics, func(t *kmsg.DeleteTopicsRequestTopic) bool {
			if t.Topic == nil {
				return w.may(opDelete, rtTopic, "*")
			}
			return w.may(opDelete, rtTopic, *t.Topic)
		})
		dr.Topics, r.Topics = denied, allowed
		nAllowed, nDenied = len(allowed), len(denied)
	}
	partial(g, w, r, func() { w.deny(&dr, topicDenied, respond) }, nAllowed, nDenied,
		func() *kmsg.DeleteTopicsResponse {
			return kafka.ErrorResponse(&dr, topicDenied).(*kmsg.DeleteTopicsResponse)
		},
		func(into, from *kmsg.DeleteTopicsResponse) { into.Topics = append(into.Topics, from.Topics...) }, respond)
}

// initProducerID: a transactional producer needs WRITE on its
// transactional id; an idempotent one IDEMPOTENT_WRITE on the cluster or
// WRITE on any topic (KIP-679: what it will produce to is checked there).
func (g *Guard) initProducerID(w *who, r *kmsg.InitProducerIDRequest, respond func(kmsg.Response)) {
	code := int16(0)
	if r.TransactionalID != nil {
		if !w.may(opWrite, rtTxn, *r.TransactionalID) {
			code = txnDenied
		}
	} else if !w.mayCluster(opIdempotentWrite) &&
		!g.cfg.Authorizer.AuthorizeAnyOfType(w.principal, w.host, opWrite, rtTopic) &&
		!(g.cfg.Authorizer.allowIfNoACL && !g.anyBindingOfType(rtTopic)) {
		code = clusterDenied
	}
	if code == 0 {
		g.forward(w, r, respond)
		return
	}
	resp := r.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.SetVersion(r.GetVersion())
	resp.ErrorCode, resp.ProducerID, resp.ProducerEpoch = code, -1, -1
	respond(resp)
}

// anyBindingOfType reports whether some binding is about resources of rt.
func (g *Guard) anyBindingOfType(rt kmsg.ACLResourceType) bool {
	found := false
	g.cfg.Authorizer.store.each(func(b *Binding) {
		if b.ResourceType == rt {
			found = true
		}
	})
	return found
}
