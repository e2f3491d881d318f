package broker

import (
	"fmt"
	"path/filepath"
	"runtime"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// handlerFunc serves one request of an API, as the broker's handler table
// holds it; register wraps each file's typed handler into one.
type handlerFunc func(b *Broker, req kmsg.Request, cl *Client, respond Responder)

// api is one Kafka API the broker serves: the versions and the handler.
type api struct {
	min, max int16
	fn       handlerFunc
	file     string // the file that registered it (register's caller)
}

// apis is every API the broker serves, by key. Each broker/NN_name.go file
// fills its own entry from init (register or registerReq), so the file
// holding a handler also states the versions it serves; nothing writes it
// after package initialisation. Open copies it into the broker's handler
// table, and ApiVersions is built from that table.
var apis [kafkaMaxKey + 1]api

// request is a kmsg request type, *R: new(R) gives a request to ask for
// its key and response kind when the package loads.
type request[R any] interface {
	*R
	kmsg.Request
}

// register registers fn as the handler of Req's API key, serving versions
// min to max. The key is Req's own, so a file cannot register a handler
// under another API's key. fn receives its typed request and an empty
// response of the request's kind at the request's version, which it fills
// and answers (at once or later) through respond.
//
// It panics when Resp is not Req's response kind, on a key registered twice
// or an empty range: programming errors caught when the package loads.
func register[R any, Req request[R], Resp kmsg.Response](min, max int16, fn func(b *Broker, req Req, resp Resp, cl *Client, respond Responder)) {
	probe := Req(new(R))
	if _, ok := probe.ResponseKind().(Resp); !ok {
		panic(fmt.Sprintf("broker: key %d: handler takes %T, the request's response is %T", probe.Key(), *new(Resp), probe.ResponseKind()))
	}
	addAPI(probe.Key(), min, max, func(b *Broker, kreq kmsg.Request, cl *Client, respond Responder) {
		req := kreq.(Req)
		resp := req.ResponseKind().(Resp)
		resp.SetVersion(req.GetVersion())
		fn(b, req, resp, cl, respond)
	})
}

// registerReq is register for a handler that builds its answers itself
// (JoinGroup and SyncGroup answer through joinError and syncError, Fetch
// builds its response per attempt, ApiVersions answers a prepared one): fn
// receives only its typed request.
func registerReq[R any, Req request[R]](min, max int16, fn func(b *Broker, req Req, cl *Client, respond Responder)) {
	probe := Req(new(R))
	addAPI(probe.Key(), min, max, func(b *Broker, kreq kmsg.Request, cl *Client, respond Responder) {
		fn(b, kreq.(Req), cl, respond)
	})
}

// addAPI records fn as the handler of key, serving versions min to max, and
// the file that registered it (the caller of register or registerReq).
func addAPI(key, min, max int16, fn handlerFunc) {
	if key < 0 || int(key) >= len(apis) || min < 0 || min > max || fn == nil {
		panic(fmt.Sprintf("broker: register key %d, versions %d-%d: invalid", key, min, max))
	}
	if apis[key].fn != nil {
		panic(fmt.Sprintf("broker: key %d registered twice (%s)", key, apis[key].file))
	}
	_, file, _, _ := runtime.Caller(2)
	apis[key] = api{min: min, max: max, fn: fn, file: filepath.Base(file)}
}

// buildHandlers fills the handler table from apis and prepares the
// ApiVersions responses from it.
func (b *Broker) buildHandlers() {
	for key, a := range apis {
		if a.fn != nil {
			b.handlers[key] = handler{min: a.min, max: a.max, fn: a.fn}
		}
	}
	b.buildAPIVersions()
}
