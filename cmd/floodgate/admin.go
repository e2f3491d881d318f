package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/floodgate/floodgate/httpapi"
)

// Bounds of the admin listener: it serves operators and scrapers, so a
// few connections, short timeouts and small heads are plenty, and nothing
// a client does there can hold more.
const (
	adminMaxConns       = 64
	adminHeaderTimeout  = 5 * time.Second
	adminWriteTimeout   = 30 * time.Second
	adminIdleTimeout    = 60 * time.Second
	adminMaxHeaderBytes = 8 << 10
)

// limitListener accepts at most n connections at a time; the next waits
// in the kernel's backlog until one closes.
type limitListener struct {
	net.Listener
	slots chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.slots <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &slotConn{Conn: c, release: sync.OnceFunc(func() { <-l.slots })}, nil
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
func startAdmin(addr string, api *httpapi.API, log *slog.Logger) (*http.Server, net.Addr, error) {
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
		if err := srv.Serve(&limitListener{Listener: ln, slots: make(chan struct{}, adminMaxConns)}); err != nil && err != http.ErrServerClosed {
			log.Error("admin listener stopped", "error", err.Error())
		}
	}()
	log.Info("admin listening", "addr", ln.Addr().String(), "max_connections", adminMaxConns)
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
