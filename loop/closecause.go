package loop

import (
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// closeCause says why a connection ended: the reason label of
// floodgate_connections_closed_total. A small enum instead of a string
// keeps the label set closed (no reason is built at run time), costs a
// byte of every connection instead of a string header, and lets a close
// count without building a metric name.
type closeCause uint8

// Close causes. causeNone is unset: the client closed.
const (
	causeNone closeCause = iota
	causeClient
	causeRejected // refused at admission: counted by its limit, not here
	causeIdle
	causeHTTPClose
	causeWriteError
	causeSendTimeout
	causeSlowFrame
	causeSlowBody
	causeMalformed
	causeUnsupportedVersion
	causeRefusedNoErrorField
	causePanic
	causeParkFailed
	causeRegisterFailed
	causeShutdown
	causeUnauthenticated
	causeAuthFailed
	causeAuthTimeout
	causeSASLHandshakeRepeated
	causeSASLUnsupportedMechanism
	causeSASLIllegalState
	causeTLSClosed
	causeTLSError
	causeGoneAtAccept
	numCloseCauses
)

// causeLabels are the metric labels of the causes.
var causeLabels = [numCloseCauses]string{
	causeNone: "client", causeClient: "client", causeRejected: "rejected", causeIdle: "idle",
	causeHTTPClose: "http_close", causeWriteError: "write_error", causeSendTimeout: "send_timeout",
	causeSlowFrame: "slow_frame", causeSlowBody: "slow_body", causeMalformed: "malformed",
	causeUnsupportedVersion: "unsupported_version", causeRefusedNoErrorField: "refused_no_error_field",
	causePanic: "panic", causeParkFailed: "park_failed", causeRegisterFailed: "register_failed", causeShutdown: "shutdown",
	causeUnauthenticated: "unauthenticated", causeAuthFailed: "auth_failed", causeAuthTimeout: "auth_timeout",
	causeSASLHandshakeRepeated: "sasl_handshake_repeated", causeSASLUnsupportedMechanism: "sasl_unsupported_mechanism",
	causeSASLIllegalState: "sasl_illegal_state", causeTLSClosed: "tls_closed", causeTLSError: "tls_error",
	causeGoneAtAccept: "gone_at_accept",
}

// String returns the cause's metric label.
func (c closeCause) String() string {
	if c >= numCloseCauses {
		return "unknown"
	}
	return causeLabels[c]
}

// closeCounters are floodgate_connections_closed_total's series, one per
// cause, each created on its first close.
type closeCounters struct {
	set  *metrics.Set
	ctrs [numCloseCauses]atomic.Pointer[metrics.Counter]
}

// inc counts one connection closed for cause.
func (cc *closeCounters) inc(cause closeCause) {
	if cause == causeNone {
		cause = causeClient
	}
	if cause >= numCloseCauses {
		return
	}
	c := cc.ctrs[cause].Load()
	if c == nil {
		c = cc.set.GetOrCreateCounter(`floodgate_connections_closed_total{reason="` + causeLabels[cause] + `"}`)
		cc.ctrs[cause].Store(c)
	}
	c.Inc()
}
