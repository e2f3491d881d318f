package broker

import (
	"fmt"
	"path/filepath"
	"runtime"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// handlerFunc serves one request of an API; the per-key files register
// their handler as a method expression, (*Broker).handleX.
type handlerFunc func(b *Broker, req kmsg.Request, cl *Client, respond Responder)

// api is one Kafka API the broker serves: the versions and the handler.
type api struct {
	min, max int16
	fn       handlerFunc
	file     string // the file that registered it (regKey's caller)
}

// apis is every API the broker serves, by key. Each broker/NN_name.go file
// fills its own entry from init (regKey), so the file holding a handler
// also states the versions it serves; nothing writes it after package
// initialisation. Open copies it into the broker's handler table, and
// ApiVersions is built from that table.
var apis [kafkaMaxKey + 1]api

// regKey registers the handler of key, serving versions min to max. It
// panics on a key registered twice or an empty range: both are programming
// errors caught when the package loads.
func regKey(key, min, max int16, fn handlerFunc) {
	if key < 0 || int(key) >= len(apis) || min < 0 || min > max || fn == nil {
		panic(fmt.Sprintf("broker: regKey(%d, %d, %d): invalid", key, min, max))
	}
	if apis[key].fn != nil {
		panic(fmt.Sprintf("broker: key %d registered twice (%s)", key, apis[key].file))
	}
	_, file, _, _ := runtime.Caller(1)
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
