package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/floodgate/floodgate/httpapi"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// liveFlags are the settings SIGHUP may change while serving, by their
// names in --help (isLive matches a flag by any of its names, former ones
// included). Each is read where it is enforced at every use (a new
// connection, a frame, a request, a tick) from the limits the loop and the
// HTTP API swap atomically (loop.Server.SetLimits, httpapi.API.SetLimits);
// nothing else needs to move. The rest are read once at start: the worker
// queue's size, what the broker, the storage and the gateway were opened
// with, the listeners, the routes and the logger. A lowered count closes
// nothing: it refuses what comes next.
var liveFlags = map[string]bool{
	// Connections, counted at accept and in the IP's loop.
	"max-connections": true, "max-connections-per-ip": true, "http-connection-reserve": true,
	// Timeouts, read by the reaper and the transfer and send bounds.
	"connection-idle-timeout": true, "request-read-timeout": true, "min-request-rate": true, "send-timeout": true,
	// Request sizes and in-flight bounds, checked per frame or request.
	"max-request-size": true, "max-in-flight-requests-per-connection": true, "max-partitions-per-request": true,
	"max-non-produce-request-size": true,
	// Waits read at every use: the Kafka memory wait, the HTTP lingering
	// close and the REST fetch's longest wait.
	"memory-wait-timeout": true, "http-linger-timeout": true, "max-rest-fetch-wait": true,
	// The PROXY header's deadline, set per connection (the pending cap is
	// not live: descriptors are reserved for it at start).
	"proxy-protocol-timeout": true,
	// The SASL and TLS handshake bounds, read when a connection opens, a
	// handshake starts or an authentication fails.
	"sasl-authentication-timeout": true, "sasl-failed-authentication-delay": true,
	"max-tls-handshakes": true, "tls-handshake-timeout": true,
	// The memory budget (its limit and the per-IP cap are atomics).
	"request-memory-bytes": true, "request-memory-per-ip-percent": true,
	// Rates and quotas: buckets of an unchanged rate keep their state.
	"produce-rate-limit": true, "fetch-rate-limit": true, "produce-byte-rate": true, "fetch-byte-rate": true,
	"quota-key": true, "throttle-mode": true,
	// HTTP: the codec's head and body limits, the gate's limits and rates.
	"max-header-size-bytes": true, "max-header-count": true, "max-header-name-bytes": true, "max-header-value-bytes": true,
	"max-body-size-bytes": true, "max-body-buffer-bytes": true, "max-decompression-ratio": true,
	"max-decompressed-size-bytes": true, "max-connections-per-route": true, "max-in-flight-requests": true,
	"max-in-flight-requests-per-event-loop": true, "max-requests-per-second-global": true,
	"max-requests-per-second-per-client": true, "max-requests-per-second-per-route": true,
	"max-process-memory-bytes": true, "max-process-memory-percent": true, "header-read-timeout": true,
	"max-rest-response-bytes": true, "max-rest-records-per-request": true,
	// The profile's values are compared one by one; its name is a label.
	"limits-profile": true,
}

// reloader re-reads the configuration on SIGHUP and puts the limits that
// changed in force without closing a connection.
type reloader struct {
	args []string // the command line, parsed again on each reload
	conf *configState
	log  *slog.Logger
	srv  *loop.Server
	api  *httpapi.API
	// configured are the limits as resolved, before the start-time fit to
	// the open-files limit; running are those in force.
	configured, running limits.Config
	http                limits.HTTPConfig
	// flags are the other settings' values as resolved at start.
	flags map[string]string
	// noFile and segReserve redo the start-time fit of --max-connections.
	noFile     uint64
	segReserve int
}

// resolved is one reading of the whole configuration.
type resolved struct {
	lim   limits.Config
	http  limits.HTTPConfig
	flags map[string]string
	conf  *configState
	idx   flagIndex
}

// flagValues returns every flag's value as text, by first name.
func flagValues(c *cli.Context, idx flagIndex) map[string]string {
	out := make(map[string]string, len(idx.order))
	for _, p := range idx.order {
		out[p] = flagText(c, p)
	}
	return out
}

// flagText returns a flag's value as its flag.Value writes it
// (Context.Generic returns the flag.Value of any flag; Context.Value needs
// a flag.Getter, which a cli.Generic such as --route's is not).
func flagText(c *cli.Context, name string) string {
	return fmt.Sprint(c.Generic(name))
}

// resolve reads the configuration again as at start: the same command
// line, the environment captured at start, the file as it is now. It
// parses the command line with a fresh serve command, so it knows the
// flags only as []cli.Flag, however they are built.
func (r *reloader) resolve() (resolved, error) {
	var res resolved
	ran := false
	cmd := serveCommand()
	cmd.Action = func(c *cli.Context) error {
		ran = true
		idx := indexFlags(c.Command.Flags)
		st := &configState{env: r.conf.env}
		if err := st.apply(c, idx); err != nil {
			return err
		}
		lim, err := limitsFromFlags(c)
		if err != nil {
			return err
		}
		hl, err := httpLimitsFromFlags(c)
		if err != nil {
			return err
		}
		res = resolved{lim: lim, http: hl, flags: flagValues(c, idx), conf: st, idx: idx}
		return nil
	}
	app := &cli.App{Name: "floodgate", Commands: []*cli.Command{cmd}, Writer: io.Discard, ErrWriter: io.Discard,
		ExitErrHandler: func(*cli.Context, error) {}}
	if err := app.Run(r.args); err != nil {
		return res, err
	}
	if !ran {
		return res, errors.New("the command line does not run serve")
	}
	return res, nil
}

// change is one setting whose value differs between the running
// configuration and the file.
type change struct {
	name, old, new string
}

func (c change) String() string { return c.name + ": " + c.old + " → " + c.new }

// reload re-reads the configuration and applies what may change live;
// it never stops the server. A configuration that does not parse or
// validate is logged and the running one kept.
func (r *reloader) reload() {
	r.log.Info("reload requested (SIGHUP): re-reading the configuration", "config", r.conf.path)
	res, err := r.resolve()
	if err != nil {
		r.log.Error("reload failed: the configuration was not applied; still serving with the running one", "error", err.Error())
		return
	}
	running, configured, hl := r.running, r.configured, r.http
	var applied, cold []change
	for _, p := range res.idx.order {
		old, nw, kind := r.compare(p, res)
		if old == nw {
			continue
		}
		ch := change{p, old, nw}
		if !isLive(res.idx.names[p]) {
			cold = append(cold, ch)
			continue
		}
		var err error
		switch kind {
		case "kafka":
			if err = running.SetText(p, nw); err == nil {
				err = configured.SetText(p, nw)
			}
		case "http":
			if p == "limits-profile" {
				hl.Profile = res.http.Profile
			} else {
				err = hl.SetText(p, nw)
			}
		default:
			err = fmt.Errorf("--%s: not a limit", p) // a liveFlags entry that no limit has
		}
		if err != nil {
			r.log.Error("reload failed: the configuration was not applied; still serving with the running one", "error", err.Error())
			return
		}
		applied = append(applied, ch)
	}
	if fit, clamped := limits.FitConnections(running.MaxConnections, running.HTTPReserve+r.segReserve, r.noFile); clamped {
		r.log.Warn("--max-connections does not fit the open-files limit; clamped", "flag", "max-connections",
			"configured", running.MaxConnections, "effective", fit, "open_files_limit", r.noFile)
		running.MaxConnections = fit
	}
	hl.Routes = r.http.Routes
	if err := r.apply(running, hl); err != nil {
		r.log.Error("reload failed: the configuration was not applied; still serving with the running one", "error", err.Error())
		return
	}
	r.running, r.configured, r.http = running, configured, hl
	for _, c := range cold {
		res.conf.sources[c.name] = r.conf.sources[c.name]
	}
	r.conf.sources = res.conf.sources
	r.srv.SetLimitSources(res.conf.sources)
	for _, c := range applied {
		r.log.Info("limit changed (SIGHUP)", "limit", c.name, "old", c.old, "new", c.new)
	}
	if len(cold) > 0 {
		names := make([]string, len(cold))
		for i, c := range cold {
			names[i] = c.String()
		}
		r.log.Warn("reload: these settings cannot change while serving and keep their running value until a restart",
			"settings", strings.Join(names, "; "))
	}
	r.log.Info("reload done: still serving", "changed", len(applied), "kept_until_restart", len(cold))
}

// compare returns a setting's running and newly read value, and whether
// it is a Kafka-side limit, an HTTP limit or another flag. Limits are
// compared by value (a profile change moves them without a flag change).
func (r *reloader) compare(p string, res resolved) (old, nw, kind string) {
	if v := r.configured.Value(p); v != "" {
		return v, res.lim.Value(p), "kafka"
	}
	if v := r.http.Value(p); v != "" {
		return v, res.http.Value(p), "http"
	}
	return r.flags[p], res.flags[p], "flag"
}

// apply puts the limits in force in the loop and the HTTP API.
func (r *reloader) apply(lim limits.Config, hl limits.HTTPConfig) error {
	if err := lim.Validate(); err != nil {
		return err
	}
	if err := hl.Validate(); err != nil {
		return err
	}
	if err := r.srv.SetLimits(lim, loop.HTTPLimitsFrom(&hl)); err != nil {
		return err
	}
	if err := r.api.SetLimits(&hl); err != nil {
		return err
	}
	_, procLimit, _ := r.api.MemoryOver()
	before := debug.SetMemoryLimit(-1)
	if now := setGoMemoryLimit(procLimit, os.Getenv("GOMEMLIMIT") != ""); debug.SetMemoryLimit(-1) != before {
		r.log.Info("Go memory limit changed: nine tenths of the process memory limit", "go_memory_limit", now)
	}
	return nil
}

// isLive reports whether a flag, known by names, may change live.
func isLive(names []string) bool {
	for _, n := range names {
		if liveFlags[n] {
			return true
		}
	}
	return false
}

// newReloader keeps what a reload compares against: the limits as
// configured and as running, and every other flag's value.
func newReloader(c *cli.Context, conf *configState, log *slog.Logger, srv *loop.Server, api *httpapi.API,
	configured, running limits.Config, hl limits.HTTPConfig, noFile uint64, segReserve int) *reloader {
	return &reloader{args: os.Args, conf: conf, log: log, srv: srv, api: api, configured: configured, running: running,
		http: hl, flags: flagValues(c, indexFlags(c.Command.Flags)), noFile: noFile, segReserve: segReserve}
}
