package acl

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/auth"
	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// Authorization error codes, by resource.
var (
	topicDenied   = kerr.TopicAuthorizationFailed.Code
	groupDenied   = kerr.GroupAuthorizationFailed.Code
	clusterDenied = kerr.ClusterAuthorizationFailed.Code
	txnDenied     = kerr.TransactionalIDAuthorizationFailed.Code
)

// ClusterName is the one cluster resource's name, as Kafka spells it.
const ClusterName = "kafka-cluster"

// maxACLRequestFilter bounds the creations or filters of one request.
const maxACLRequestFilter = 1000

// ownAPI is an API the guard answers itself, whatever the inner handler
// serves: the ACL and SCRAM user APIs.
type ownAPI struct {
	max   int16 // versions 0 to max
	users bool  // offered only with a user store
	// describe: a client without DESCRIBE on the cluster is denied the
	// whole request (the listing APIs); the others deny item by item.
	describe bool
	serve    func(g *Guard, w *who, req kmsg.Request, respond func(kmsg.Response))
}

// ownAPIs are the APIs the guard answers itself, by key: the one list that
// dispatch (serve), ApiVersions (VersionRange) and the raw path's choice
// to decode a frame read. It is never written after package initialisation.
var ownAPIs = map[kmsg.Key]ownAPI{
	kmsg.DescribeACLs:                 {max: 3, describe: true, serve: typed((*Guard).describeACLs)},
	kmsg.CreateACLs:                   {max: 3, serve: typed((*Guard).createACLs)},
	kmsg.DeleteACLs:                   {max: 3, serve: typed((*Guard).deleteACLs)},
	kmsg.DescribeUserSCRAMCredentials: {max: 0, users: true, describe: true, serve: typed((*Guard).describeSCRAM)},
	kmsg.AlterUserSCRAMCredentials:    {max: 0, users: true, serve: typed((*Guard).alterSCRAM)},
}

// typed adapts a handler of one request type (*R) to ownAPI.serve, handing
// it the empty response at the request's version (as the broker's register
// does), so the handlers only fill it in. It panics when Resp is not the
// request's response kind: a programming error caught when the package
// loads.
func typed[R any, Req interface {
	*R
	kmsg.Request
}, Resp kmsg.Response](fn func(*Guard, *who, Req, Resp, func(kmsg.Response))) func(*Guard, *who, kmsg.Request, func(kmsg.Response)) {
	probe := Req(new(R))
	if _, ok := probe.ResponseKind().(Resp); !ok {
		panic(fmt.Sprintf("acl: key %d: handler takes %T, the request's response is %T", probe.Key(), *new(Resp), probe.ResponseKind()))
	}
	return func(g *Guard, w *who, req kmsg.Request, respond func(kmsg.Response)) {
		resp := req.ResponseKind().(Resp)
		resp.SetVersion(req.GetVersion())
		fn(g, w, req.(Req), resp, respond)
	}
}

// GuardConfig configures a Guard.
type GuardConfig struct {
	// Inner serves what is authorized (the broker).
	Inner loop.KafkaHandler
	// Authorizer decides.
	Authorizer *Authorizer
	// Users, when set, is served by Describe/AlterUserScramCredentials.
	Users *auth.Users
	// Enforce checks every request (--auth-required); without it only the
	// ACL and user APIs are checked, the rest is served to anyone.
	Enforce bool
	// Logger receives the audit lines.
	Logger *slog.Logger
	// Metrics receives floodgate_acl_denied_total.
	Metrics *metrics.Set
}

// Guard authorizes Kafka requests before its inner handler serves them.
type Guard struct {
	cfg  GuardConfig
	log  *slog.Logger
	warn *limits.WarnLog
	met  *metrics.Set
}

// NewGuard returns a Guard.
func NewGuard(cfg GuardConfig) *Guard {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.NewSet()
	}
	return &Guard{cfg: cfg, log: cfg.Logger, warn: limits.NewWarnLog(cfg.Logger, time.Second), met: cfg.Metrics}
}

// VersionRange reports the inner handler's versions and the APIs the
// guard serves itself; under enforcement, no version that names topics
// by id (lastNamedVersion).
func (g *Guard) VersionRange(key int16) (min, max int16, ok bool) {
	if a, own := ownAPIs[kmsg.Key(key)]; own && (!a.users || g.cfg.Users != nil) {
		return 0, a.max, true
	}
	min, max, ok = g.cfg.Inner.VersionRange(key)
	if top, capped := lastNamedVersion[key]; capped && g.cfg.Enforce && ok && max > top {
		max = top
		if min > max {
			ok = false
		}
	}
	return min, max, ok
}

// lastNamedVersion is, for the APIs whose later versions name topics by
// id, the last version that names them: the ACLs name topics, and the
// guard cannot tell which topic an id is (the upstream of a gateway
// resolves it), so under enforcement only these versions are offered. A
// Fetch v13 by id was checked under the empty name (a DENY on the topic
// did not apply) and served the topic the id named.
var lastNamedVersion = map[int16]int16{
	0:  12, // Produce: topic ids from v13
	1:  12, // Fetch: v13
	8:  9,  // OffsetCommit: v10
	9:  9,  // OffsetFetch: v10
	20: 5,  // DeleteTopics: v6
	28: 5,  // TxnOffsetCommit: v6
}

// ServeKafka serves a request of an anonymous client (the HTTP API's
// calls without a user).
func (g *Guard) ServeKafka(req kmsg.Request, clientID, addr string, respond func(kmsg.Response)) {
	g.ServeKafkaFrom(loop.ClientConn{Addr: addr, ClientID: clientID}, req, respond)
}

// who is the identity a request is checked as.
type who struct {
	g         *Guard
	principal string
	host      string
	cl        loop.ClientConn
	// fwd, in raw mode, forwards a decoded request as a frame.
	fwd func(kmsg.Request, func(kmsg.Response))
}

func (w *who) may(op kmsg.ACLOperation, rt kmsg.ACLResourceType, name string) bool {
	return w.g.cfg.Authorizer.Authorize(w.principal, w.host, op, rt, name)
}

func (w *who) mayCluster(op kmsg.ACLOperation) bool {
	return w.may(op, kmsg.ACLResourceTypeCluster, ClusterName)
}

// ServeKafkaFrom checks req as the connection's principal and serves the
// authorized part.
func (g *Guard) ServeKafkaFrom(cl loop.ClientConn, req kmsg.Request, respond func(kmsg.Response)) {
	g.serve(&who{g: g, principal: Principal(cl.User), host: cl.Addr, cl: cl}, req, respond)
}

// serve checks req as w and serves the authorized part.
func (g *Guard) serve(w *who, req kmsg.Request, respond func(kmsg.Response)) {
	if a, own := ownAPIs[kmsg.Key(req.Key())]; own {
		if a.describe && !w.mayCluster(opDescribe) {
			w.deny(req, clusterDenied, respond)
			return
		}
		a.serve(g, w, req, respond)
		return
	}
	if !g.cfg.Enforce || g.cfg.Authorizer.IsSuper(w.principal) {
		g.audit(w, req, nil)
		g.forward(w, req, respond)
		return
	}
	g.authorize(w, req, respond)
}

// forward hands req to the inner handler (through the connection's
// frame path in raw mode).
func (g *Guard) forward(w *who, req kmsg.Request, respond func(kmsg.Response)) {
	if w.fwd != nil {
		w.fwd(req, respond)
		return
	}
	if t, ok := g.cfg.Inner.(loop.TLSKafkaHandler); ok && w.cl.TLS {
		// The broker advertises the TLS listener to a TLS client.
		t.ServeKafkaTLS(req, w.cl.ClientID, w.cl.Addr, w.cl.TLSSubject, respond)
		return
	}
	g.cfg.Inner.ServeKafka(req, w.cl.ClientID, w.cl.Addr, respond)
}

// deny answers req with code in every part.
func (w *who) deny(req kmsg.Request, code int16, respond func(kmsg.Response)) {
	w.denied(req.Key(), code)
	respond(kafka.ErrorResponse(req, code))
}

// denied counts and logs (rate-limited) a denial; code 0 is a partial one
// (each denied part carries its own error).
func (w *who) denied(key, code int16) {
	api := kmsg.NameForKey(key)
	w.g.met.GetOrCreateCounter(`floodgate_acl_denied_total{api="` + api + `"}`).Inc()
	reason := "part of the request denied"
	if err := kerr.ErrorForCode(code); err != nil { // nil for 0: calling Error on it panicked and closed the connection
		reason = err.Error()
	}
	w.g.warn.Warn("acl:denied:"+w.principal+":"+api, "request denied by ACLs", "principal", w.principal,
		"client_ip", w.host, "api", api, "error", reason)
}

// split partitions items into those allowed and those not.
func split[T any](items []T, allow func(*T) bool) (allowed, denied []T) {
	for i := range items {
		if allow(&items[i]) {
			allowed = append(allowed, items[i])
		} else {
			denied = append(denied, items[i])
		}
	}
	return allowed, denied
}

// partial serves the allowed part of a request whose other part is
// denied: when nothing is denied, req as it is; when nothing is allowed,
// only the denial; else the allowed part, its answer merged with the
// denial of the rest.
func partial[Req kmsg.Request, Resp kmsg.Response](g *Guard, w *who, req Req, denyAll func(), nAllowed, nDenied int,
	deniedResp func() Resp, merge func(into, from Resp), respond func(kmsg.Response)) {
	if nDenied == 0 {
		g.forward(w, req, respond)
		return
	}
	if nAllowed == 0 {
		denyAll()
		return
	}
	w.denied(req.Key(), 0)
	d := deniedResp()
	g.forward(w, req, func(resp kmsg.Response) {
		if r, ok := resp.(Resp); ok {
			merge(r, d)
		}
		respond(resp)
	})
}
