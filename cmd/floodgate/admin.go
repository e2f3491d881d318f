package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/floodgate/floodgate/httpapi"
	"github.com/floodgate/floodgate/limits"
)

// Bounds of the admin listener: it serves operators and scrapers, so a
// few connections, short timeouts and small heads are plenty, and nothing
// a client does there can hold more.
const (
	adminMaxConns       = 64
	adminMaxConnsPerIP  = 8
	adminHeaderTimeout  = 5 * time.Second
	adminWriteTimeout   = 30 * time.Second
	adminIdleTimeout    = 15 * time.Second
	adminMaxHeaderBytes = 8 << 10
)

// limitListener accepts at most cap(slots) connections at a time (the
// next waits in the kernel's backlog until one closes), and at most
// perIP from one address: a connection past that is closed at once, so
// one client keeping idle connections cannot hold every slot.
type limitListener struct {
	net.Listener
	slots chan struct{}
	perIP int
	mu    sync.Mutex
	byIP  map[string]int
	// refused counts connections closed at the per-address cap
	// (floodgate_admin_connections_refused_total); warn logs them,
	// rate-limited. Both may be nil (tests).
	refused *metrics.Counter
	warn    *limits.WarnLog
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		l.slots <- struct{}{}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.slots
			return nil, err
		}
		ip := remoteHost(c)
		l.mu.Lock()
		if n := l.byIP[ip]; n >= l.perIP {
			l.mu.Unlock()
			// Counted before the close, which the client sees.
			if l.refused != nil {
				l.refused.Inc()
			}
			_ = c.Close()
			if l.warn != nil {
				l.warn.Warn("admin:per-ip", "admin connection refused: too many from one address", "limit", "admin connections per client address",
					"configured", l.perIP, "actual", n, "client_ip", ip)
			}
			<-l.slots
			continue
		}
		l.byIP[ip]++
		l.mu.Unlock()
		return &slotConn{Conn: c, release: sync.OnceFunc(func() {
			l.mu.Lock()
			if l.byIP[ip]--; l.byIP[ip] <= 0 {
				delete(l.byIP, ip)
			}
			l.mu.Unlock()
			<-l.slots
		})}, nil
	}
}

// remoteHost is the address part of c's peer.
func remoteHost(c net.Conn) string {
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}

// slotConn gives its slot back once, when first closed.
type slotConn struct {
	net.Conn
	release func()
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// startAdmin serves /admin/*, /metrics, /health and /ready on addr.
func startAdmin(addr string, api *httpapi.API, log *slog.Logger, set *metrics.Set) (*http.Server, net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("--admin-listen=%s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           api.AdminHandler(),
		ReadHeaderTimeout: adminHeaderTimeout,
		ReadTimeout:       adminHeaderTimeout,
		WriteTimeout:      adminWriteTimeout,
		IdleTimeout:       adminIdleTimeout,
		MaxHeaderBytes:    adminMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(&limitListener{Listener: ln, slots: make(chan struct{}, adminMaxConns),
			perIP: adminMaxConnsPerIP, byIP: map[string]int{},
			refused: set.NewCounter("floodgate_admin_connections_refused_total"),
			warn:    limits.NewWarnLog(log, 10*time.Second)}); err != nil && err != http.ErrServerClosed {
			log.Error("admin listener stopped", "error", err.Error())
		}
	}()
	log.Info("admin listening", "addr", ln.Addr().String(), "max_connections", adminMaxConns, "max_connections_per_ip", adminMaxConnsPerIP)
	return srv, ln.Addr(), nil
}

// stopAdmin closes the admin listener within a second.
func stopAdmin(srv *http.Server) {
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}
