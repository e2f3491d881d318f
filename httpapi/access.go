package httpapi

import (
	"net"
	"net/http"

	"github.com/floodgate/floodgate/auth"
	"github.com/floodgate/floodgate/codec/httpcodec"
	"github.com/floodgate/floodgate/loop"
)

// Access says who may use which route (--http-auth, --metrics-auth,
// --admin-listen).
type Access struct {
	// Basic, when set, requires HTTP Basic credentials of a user for the
	// REST routes and /admin/* (and /metrics with MetricsAuth); /health
	// and /ready stay open. REST requests then reach the Kafka handler as
	// that user (its ACLs apply).
	Basic *auth.Basic
	// MetricsAuth puts /metrics behind Basic too.
	MetricsAuth bool
	// AdminElsewhere serves /admin/* and /metrics on the admin listener
	// only (AdminHandler): the main HTTP listener answers 404 for them.
	AdminElsewhere bool
	// Admin, when set with Basic, decides whether an authenticated user
	// (from ip) may read /admin/stats and, with MetricsAuth, /metrics:
	// they name every client address and the server's configuration, so
	// under enforced ACLs they need DESCRIBE on the cluster, as Kafka's
	// own cluster-wide information does. A user it refuses gets 403.
	Admin func(user, ip string) bool
}

// SetAccess sets the access rules; call it before the server starts.
func (a *API) SetAccess(acc Access) { a.access = acc }

// wwwAuthenticate is the challenge of a 401.
const wwwAuthenticate = `Basic realm="floodgate", charset="UTF-8"`

// protected reports whether ep needs credentials.
func (a *API) protected(ep int) bool {
	return isREST(ep) || ep == epAdminStats || (ep == epMetrics && a.access.MetricsAuth)
}

// authenticate checks a request's credentials; it returns the refusal to
// answer, or nil (and sets r.User).
func (a *API) authenticate(ep int, r *loop.HTTPRequest) *loop.HTTPResponse {
	if a.access.AdminElsewhere && (ep == epAdminStats || ep == epMetrics) {
		return a.fixed.notFound
	}
	if a.access.Basic == nil || !a.protected(ep) {
		return nil
	}
	user, refusal := a.checkBasic(r.Head.Header("Authorization"), r.RemoteIP.String())
	r.User = user
	if refusal == nil {
		refusal = a.authorizeAdmin(ep, user, r.RemoteIP.String())
	}
	return refusal
}

// authorizeAdmin refuses an authenticated user the operator endpoints
// (Access.Admin), or returns nil.
func (a *API) authorizeAdmin(ep int, user, ip string) *loop.HTTPResponse {
	if a.access.Admin == nil || isREST(ep) || a.access.Admin(user, ip) {
		return nil
	}
	a.cfg.Metrics.GetOrCreateCounter(`floodgate_http_auth_refused_total{reason="not_authorized"}`).Inc()
	if a.gate.warn.Allow("auth:admin:" + ip) {
		a.cfg.Logger.Warn("HTTP user not authorized for an operator endpoint (needs DESCRIBE on the cluster)", "user", user, "client_ip", ip, "answer", 403)
	}
	return restError(403, 40301, "not authorized: this endpoint needs DESCRIBE on the cluster")
}

// checkBasic checks an Authorization header from ip.
func (a *API) checkBasic(header, ip string) (string, *loop.HTTPResponse) {
	user, res := a.access.Basic.Check(header, ip)
	switch res {
	case auth.BasicOK:
		return user, nil
	case auth.BasicTooManyFailures:
		a.cfg.Metrics.GetOrCreateCounter(`floodgate_http_auth_refused_total{reason="too_many_failures"}`).Inc()
		if a.gate.warn.Allow("auth:failures:" + ip) {
			a.cfg.Logger.Warn("HTTP authentication refused: too many failures from this address", "client_ip", ip, "answer", 429)
		}
		resp := restError(429, 42901, "too many failed authentications from this address; retry later")
		resp.Header = append(resp.Header, [2]string{"Retry-After", "1"})
		return "", resp
	case auth.BasicWrong:
		a.cfg.Metrics.GetOrCreateCounter(`floodgate_http_auth_refused_total{reason="bad_credentials"}`).Inc()
		if a.gate.warn.Allow("auth:wrong:" + ip) {
			a.cfg.Logger.Warn("HTTP authentication failed", "client_ip", ip, "answer", 401)
		}
	default:
		a.cfg.Metrics.GetOrCreateCounter(`floodgate_http_auth_refused_total{reason="no_credentials"}`).Inc()
	}
	resp := restError(401, 40101, "authentication required (HTTP Basic)")
	resp.Header = append(resp.Header, [2]string{"WWW-Authenticate", wwwAuthenticate})
	return "", resp
}

// AdminHandler serves /health, /ready, /metrics and /admin/stats with
// net/http, for --admin-listen (an operator's listener, firewalled apart;
// its server bounds connections and times itself). The same access rules
// apply, but for AdminElsewhere.
func (a *API) AdminHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ep := endpoint([]byte(req.URL.Path))
		if ep != epHealth && ep != epReady && ep != epMetrics && ep != epAdminStats {
			ep = epNotFound
		}
		var resp *loop.HTTPResponse
		if a.access.Basic != nil && a.protected(ep) {
			ip, _, err := net.SplitHostPort(req.RemoteAddr)
			if err != nil {
				ip = req.RemoteAddr
			}
			var user string
			if user, resp = a.checkBasic(req.Header.Get("Authorization"), ip); resp == nil {
				resp = a.authorizeAdmin(ep, user, ip)
			}
		}
		if resp == nil {
			resp = a.serveCheap(ep, &loop.HTTPRequest{Head: &httpcodec.Request{Method: req.Method, Path: []byte(req.URL.Path)}})
		}
		for _, h := range resp.Header {
			w.Header().Add(h[0], h[1])
		}
		if resp.ContentType != "" {
			w.Header().Set("Content-Type", resp.ContentType)
		}
		w.WriteHeader(resp.Status)
		if req.Method != http.MethodHead {
			_, _ = w.Write(resp.Body)
		}
	})
}
