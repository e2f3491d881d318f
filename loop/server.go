package loop

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/panjf2000/gnet/v2"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/auth"
	"github.com/floodgate/floodgate/limits"
)

// KafkaHandler serves decoded Kafka requests (the embedded broker, or the
// gateway to an upstream cluster).
type KafkaHandler interface {
	// VersionRange returns the versions of key the handler serves.
	VersionRange(key int16) (min, max int16, ok bool)
	// ServeKafka handles req and calls respond exactly once, from any
	// goroutine, possibly later; a nil response means none is due.
	ServeKafka(req kmsg.Request, clientID, addr string, respond func(kmsg.Response))
}

// FileKafkaHandler is a KafkaHandler that may answer a Fetch with records
// left in files (a *kafka.FileFetchResponse) when served through
// ServeKafkaFiles: the loop sends them with sendfile(2) and releases them.
type FileKafkaHandler interface {
	ServeKafkaFiles(req kmsg.Request, clientID, addr string, respond func(kmsg.Response))
}

// Config configures a Server.
type Config struct {
	// KafkaListen and HTTPListen are host:port listen addresses ("": no
	// such listener; at least one Kafka listener is needed).
	KafkaListen string
	HTTPListen  string
	// KafkaTLSListen and HTTPSListen are the TLS listeners ("": none);
	// they need TLS.
	KafkaTLSListen string
	HTTPSListen    string
	// TLS configures the TLS listeners' handshakes (tlsconf.Server).
	TLS *tls.Config
	// EventLoops is the number of gnet event loops (0 = GOMAXPROCS).
	EventLoops int
	// Workers is the size of the request worker pool (0 = 4 x GOMAXPROCS).
	Workers int
	// Limits are the enforced limits.
	Limits limits.Config
	// Kafka serves Kafka requests.
	Kafka KafkaHandler
	// HTTP serves HTTP requests.
	HTTP HTTPHandler
	// HTTPLimits are the HTTP codec limits and the header timeout.
	HTTPLimits HTTPLimits
	// Logger receives events; nil means slog.Default().
	Logger *slog.Logger
	// Metrics is the set the server's metrics are registered in.
	Metrics *metrics.Set
	// Proxy configures the PROXY protocol and X-Forwarded-For (proxy.go).
	Proxy ProxyConfig
	// SASL, when set, serves SaslHandshake and SaslAuthenticate on the
	// Kafka listeners (sasl.go).
	SASL *auth.Authenticator
	// AuthRequired closes a connection that sends anything but
	// ApiVersions, SaslHandshake and SaslAuthenticate before it
	// authenticated, and one that does not authenticate within
	// Limits.SASLAuthenticationTimeout.
	AuthRequired bool
}

// Server runs the listeners, the gnet engine and the worker pool.
type Server struct {
	cfg    Config
	log    *slog.Logger
	warn   *limits.WarnLog
	budget *limits.Budget
	pool   *pool
	bufs   bufPool
	frames framePool // Produce request frames (framepool.go)
	met    *serverMetrics
	refuse *refuser // answers refused connections (refuse.go)
	// procMem is the process memory limit (procmem.go); nil: none.
	procMem ProcessMemory
	// client is cfg.Kafka when it wants the connection's identity.
	client ClientKafkaHandler

	raw    RawKafkaHandler   // cfg.Kafka when it forwards frames as bytes
	files  FileKafkaHandler  // cfg.Kafka when it answers Fetch from files
	inline InlineHTTPHandler // cfg.HTTP when it answers cheap routes on the loop

	// rawChunks is raw when it takes large Produce frames in pieces.
	rawChunks ChunkedRawKafkaHandler
	// splice is raw when it may answer a Fetch through a pipe.
	splice SpliceRawKafkaHandler

	// cur is the part of the configuration a reload may change (live.go).
	cur atomic.Pointer[liveLimits]
	// sources says where each setting's value came from (SetLimitSources).
	sources atomic.Pointer[map[string]string]

	engine   gnet.Engine
	booted   chan struct{}
	bootOnce sync.Once
	// ran is closed once gnet.Run has returned (the engine stopped,
	// every event loop ended), with runErr its result.
	ran       chan struct{}
	runErr    error
	sockDir   string
	kafkaLn   net.Listener
	httpLn    net.Listener
	acceptors sync.WaitGroup
	// registrations carries accepted sockets to the registrar goroutines.
	registrations chan registration
	registrarsWG  sync.WaitGroup
	stopping      atomic.Bool

	connIDs     atomic.Uint64
	acceptPause atomic.Int64 // unix nanos until which acceptors pause
	extraMu     sync.Mutex
	extraLns    []net.Listener
	extraTags   []int32
	serving     bool         // acceptors running; guarded by extraMu
	active      atomic.Int64 // open connections (Kafka and HTTP), parked included
	parked      atomic.Int64
	inflight    atomic.Int64
	// sockSend and sockReceive are the kernel's sizes of the listeners'
	// socket buffers (0: autotuning); setBufs the sizes the listeners
	// hold, guarded by extraMu.
	sockSend, sockReceive atomic.Int64
	setBufs               socketBuffers

	// listened: Listen bound the listeners (from then on a reload may
	// change their socket buffer sizes). The TLS listeners (nil: none),
	// the running handshakes' slots (--max-tls-handshakes), the TLS
	// connections open.
	listened   atomic.Bool
	kafkaTLSLn net.Listener
	httpsLn    net.Listener
	tlsSlots   handshakeTable
	tlsActive  atomic.Int64
	tlsKafka   TLSKafkaHandler // cfg.Kafka when it tells TLS requests apart
	// handshakes counts the handshake goroutines; stopCtx ends them (Stop).
	handshakes sync.WaitGroup
	stopCtx    context.Context
	stopAll    context.CancelFunc

	ips      *ipTable      // connections and memory share per source IP
	nextLoop atomic.Uint64 // round robin over loops for new connections
	loopsMu  sync.Mutex
	loops    []*loopState
	byLoop   sync.Map // gnet.EventLoop -> *loopState

	// Connections waiting for their PROXY header (proxy.go).
	proxyPending atomic.Int64
	pendingMu    sync.Mutex
	pendingConns map[*net.TCPConn]struct{}

	gnet.BuiltinEventEngine
}

// New validates cfg and returns a server that is not yet listening.
func New(cfg Config) (*Server, error) {
	if err := cfg.Limits.Validate(); err != nil {
		return nil, err
	}
	if (cfg.Proxy.Kafka || cfg.Proxy.HTTP) && len(cfg.Proxy.From) == 0 {
		return nil, errors.New("--proxy-protocol needs --proxy-protocol-from: no peer would be trusted to send a header")
	}
	if cfg.AuthRequired && cfg.SASL == nil {
		return nil, errors.New("loop: AuthRequired without SASL mechanisms")
	}
	if cfg.EventLoops <= 0 {
		cfg.EventLoops = runtime.GOMAXPROCS(0)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4 * runtime.GOMAXPROCS(0)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.NewSet()
	}
	s := &Server{
		cfg:    cfg,
		log:    cfg.Logger,
		budget: limits.NewBudget(cfg.Limits.MemoryLimitBytes, cfg.Limits.MemoryPerIP()),
		pool:   newPool(cfg.Workers, cfg.Limits.MaxQueued),
		frames: framePool{poison: poisonFrames},
		booted: make(chan struct{}),
		ran:    make(chan struct{}),
		ips:    newIPTable(),
	}
	s.stopCtx, s.stopAll = context.WithCancel(context.Background())
	s.warn = limits.NewWarnLog(cfg.Logger, time.Second)
	s.raw, _ = cfg.Kafka.(RawKafkaHandler)
	s.rawChunks, _ = cfg.Kafka.(ChunkedRawKafkaHandler)
	s.splice, _ = cfg.Kafka.(SpliceRawKafkaHandler)
	s.client, _ = cfg.Kafka.(ClientKafkaHandler)
	s.tlsKafka, _ = cfg.Kafka.(TLSKafkaHandler)
	s.files, _ = cfg.Kafka.(FileKafkaHandler)
	s.inline, _ = cfg.HTTP.(InlineHTTPHandler)
	if (cfg.KafkaTLSListen != "" || cfg.HTTPSListen != "") && cfg.TLS == nil {
		return nil, errors.New("loop: a TLS listener needs a TLS configuration")
	}
	s.cur.Store(newLiveLimits(cfg.Limits, cfg.HTTPLimits, nil))
	s.met = newServerMetrics(cfg.Metrics, s)
	s.frames.taken = cfg.Metrics.NewCounter("floodgate_kafka_frame_buffers_taken_total")
	s.frames.allocated = cfg.Metrics.NewCounter("floodgate_kafka_frame_buffers_allocated_total")
	s.bufs.frames = &s.frames // raw handlers' answers go back to the frame pools (ResponseBuffer)
	if cfg.Proxy.Kafka || cfg.Proxy.HTTP {
		s.met.proxyMetrics(s)
	}
	return s, nil
}

// Start listens (unless Listen was called) and runs the engine and the
// acceptors in the background.
func (s *Server) Start() error {
	if !s.listened.Load() {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	return s.serve()
}

// Listen binds both listeners, so their addresses are known (port 0) before
// anything is served.
func (s *Server) Listen() error {
	if s.cfg.KafkaListen == "" && s.cfg.KafkaTLSListen == "" {
		return errors.New("loop: no Kafka listener (both --kafka-listen and --kafka-tls-listen are off)")
	}
	lns := []struct {
		name, addr string
		ln         *net.Listener
	}{
		{"kafka", s.cfg.KafkaListen, &s.kafkaLn},
		{"http", s.cfg.HTTPListen, &s.httpLn},
		{"kafka-tls", s.cfg.KafkaTLSListen, &s.kafkaTLSLn},
		{"https", s.cfg.HTTPSListen, &s.httpsLn},
	}
	bufs := socketBuffersOf(s.lim())
	var first net.Listener
	for _, l := range lns {
		if l.addr == "" {
			continue
		}
		ln, err := listenTCP(l.addr, bufs)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("listen %s %s: %w", l.name, l.addr, err)
		}
		*l.ln = ln
		if first == nil {
			first = ln
		}
	}
	s.extraMu.Lock()
	s.setBufs = bufs
	s.extraMu.Unlock()
	s.noteSocketBuffers(first, bufs)
	s.listened.Store(true)
	return nil
}

// noteSocketBuffers records for floodgate_socket_buffer_bytes what the
// kernel made of bufs on ln (every listener has the same), and logs a size
// the kernel capped.
func (s *Server) noteSocketBuffers(ln net.Listener, bufs socketBuffers) {
	send, receive := effectiveSocketBuffers(ln, bufs)
	s.sockSend.Store(send)
	s.sockReceive.Store(receive)
	for _, b := range []struct {
		flag, sysctl  string
		asked, actual int64
	}{{"socket-send-buffer", "net.core.wmem_max", bufs.send, send}, {"socket-receive-buffer", "net.core.rmem_max", bufs.receive, receive}} {
		if b.asked > 0 && b.actual < 2*b.asked {
			s.log.Warn("socket buffer capped by the kernel", "limit", b.flag, "configured", b.asked, "actual", b.actual/2, "raise", b.sysctl)
		}
	}
}

// setListenerSocketBuffers applies changed socket buffer sizes to every
// listener, for the connections accepted from then on. A size returned to
// autotuning (-1) cannot be unset on a listening socket: it keeps its last
// size until a restart.
func (s *Server) setListenerSocketBuffers(prev, next socketBuffers) {
	if prev == next || !s.listened.Load() {
		return
	}
	if (prev.send > 0 && next.send <= 0) || (prev.receive > 0 && next.receive <= 0) {
		s.log.Warn("socket buffer sizes return to the kernel's autotuning only at a restart; listeners keep their last sizes",
			"socket_send_buffer", next.send, "socket_receive_buffer", next.receive)
	}
	s.extraMu.Lock()
	defer s.extraMu.Unlock()
	// What the listeners hold now: a size left to autotuning keeps the
	// last one set.
	if next.send > 0 {
		s.setBufs.send = next.send
	}
	if next.receive > 0 {
		s.setBufs.receive = next.receive
	}
	var first net.Listener
	for _, ln := range append([]net.Listener{s.kafkaLn, s.httpLn, s.kafkaTLSLn, s.httpsLn}, s.extraLns...) {
		tl, ok := ln.(*net.TCPListener)
		if !ok {
			continue
		}
		rc, err := tl.SyscallConn()
		if err != nil {
			continue
		}
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = setSocketBuffers(int(fd), next) }); err == nil && serr != nil {
			s.log.Warn("socket buffer sizes not set", "addr", ln.Addr().String(), "err", serr)
		}
		if first == nil {
			first = ln
		}
	}
	if first != nil {
		s.noteSocketBuffers(first, s.setBufs)
	}
}

// listenerBuffers are the socket buffer sizes for a listener bound now:
// those the others hold (a reload back to -1 leaves them their last
// sizes), or the configured ones before Listen.
func (s *Server) listenerBuffers() socketBuffers {
	if !s.listened.Load() {
		return socketBuffersOf(s.lim())
	}
	s.extraMu.Lock()
	defer s.extraMu.Unlock()
	return s.setBufs
}

// closeListeners closes the listeners bound by Listen.
func (s *Server) closeListeners() {
	for _, ln := range []net.Listener{s.kafkaLn, s.httpLn, s.kafkaTLSLn, s.httpsLn} {
		if ln != nil {
			ln.Close()
		}
	}
}

// SetHTTPHandler sets the HTTP handler; call it before Start.
func (s *Server) SetHTTPHandler(h HTTPHandler) {
	s.cfg.HTTP = h
	s.inline, _ = h.(InlineHTTPHandler)
}

// SetKafkaHandler sets the Kafka handler; call it before Start.
func (s *Server) SetKafkaHandler(h KafkaHandler) {
	s.cfg.Kafka = h
	s.raw, _ = h.(RawKafkaHandler)
	s.rawChunks, _ = h.(ChunkedRawKafkaHandler)
	s.splice, _ = h.(SpliceRawKafkaHandler)
	s.client, _ = h.(ClientKafkaHandler)
	s.tlsKafka, _ = h.(TLSKafkaHandler)
	s.files, _ = h.(FileKafkaHandler)
}

func (s *Server) serve() error {
	if s.cfg.Kafka == nil {
		return errors.New("loop: no Kafka handler")
	}
	var err error
	// gnet needs a listener of its own; it gets a private unix socket that
	// nobody else can reach, and every real connection arrives by Register.
	if s.sockDir, err = os.MkdirTemp("", "floodgate-"); err != nil {
		return fmt.Errorf("engine socket dir: %w", err)
	}
	sock := "unix://" + filepath.Join(s.sockDir, "engine.sock")
	go func() {
		defer close(s.ran)
		s.runErr = gnet.Run(s, sock,
			gnet.WithMulticore(true),
			gnet.WithNumEventLoop(s.cfg.EventLoops),
			gnet.WithLoadBalancing(gnet.SourceAddrHash),
			gnet.WithTicker(true),
			gnet.WithReadBufferCap(64<<10),
			gnet.WithLogger(gnetLogger{s.log}),
		)
	}()
	select {
	case <-s.booted:
	case <-s.ran:
		return fmt.Errorf("gnet engine: %w", s.runErr)
	case <-time.After(10 * time.Second):
		return errors.New("gnet engine did not start within 10s")
	}
	if err := s.discoverLoops(); err != nil {
		_ = s.Stop(context.Background())
		return err
	}
	if s.refuse, err = newRefuser(s); err != nil {
		_ = s.Stop(context.Background())
		return err
	}
	go s.refuse.run()
	s.registrations = make(chan registration, 1024)
	s.startRegistrars()
	if s.kafkaLn != nil {
		s.startAcceptor(s.kafkaLn, kindKafka, BootstrapTag)
	}
	if s.httpLn != nil {
		s.startAcceptor(s.httpLn, kindHTTP, BootstrapTag)
	}
	if s.kafkaTLSLn != nil {
		s.startTLSAcceptor(s.kafkaTLSLn, kindKafka, BootstrapTag)
	}
	if s.httpsLn != nil {
		s.startTLSAcceptor(s.httpsLn, kindHTTP, BootstrapTag)
	}
	s.extraMu.Lock()
	s.serving = true
	for i, ln := range s.extraLns {
		s.startAcceptor(ln, kindKafka, s.extraTags[i])
	}
	s.extraMu.Unlock()
	s.log.Info("floodgate listening", "kafka", s.KafkaAddr(), "http", s.HTTPAddr(), "kafka_tls", s.KafkaTLSAddr(), "https", s.HTTPSAddr(),
		"event_loops", s.cfg.EventLoops, "workers", s.cfg.Workers, "max_connections", s.lim().MaxConnections)
	return nil
}

// KafkaAddr returns the Kafka listener's address, or "".
func (s *Server) KafkaAddr() string { return lnAddr(s.kafkaLn) }

// KafkaTLSAddr returns the Kafka TLS listener's address, or "".
func (s *Server) KafkaTLSAddr() string { return lnAddr(s.kafkaTLSLn) }

// HTTPSAddr returns the HTTPS listener's address, or "".
func (s *Server) HTTPSAddr() string { return lnAddr(s.httpsLn) }

func lnAddr(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// HTTPAddr returns the HTTP listener's address, or "".
func (s *Server) HTTPAddr() string {
	if s.httpLn == nil {
		return ""
	}
	return s.httpLn.Addr().String()
}

// Budget returns the memory budget.
func (s *Server) Budget() *limits.Budget { return s.budget }

// Limits returns the limits in force.
func (s *Server) Limits() limits.Config { return *s.lim() }

// Wait blocks until the engine stops (by itself or by Stop) and returns why.
func (s *Server) Wait() error {
	<-s.ran
	return s.runErr
}

// stopEngine shuts the gnet engine down and returns once it has stopped:
// when gnet.Run returns, not at gnet's Engine.Stop, which looks every
// 500 ms (each server stop took half a second; the test suites stop
// servers by the hundred). Engine.Stop still signals the shutdown and
// reports an engine that never ran.
func (s *Server) stopEngine(ctx context.Context) error {
	stopped := make(chan error, 1)
	go func() { stopped <- s.engine.Stop(ctx) }()
	select {
	case <-s.ran:
		return nil
	case err := <-stopped:
		select {
		case <-s.ran: // stopped already: Engine.Stop's complaint is moot
			return nil
		default:
			return err
		}
	}
}

// Stop closes the listeners, every connection and the pool.
func (s *Server) Stop(ctx context.Context) error {
	if !s.stopping.CompareAndSwap(false, true) {
		return nil
	}
	s.closeListeners()
	s.extraMu.Lock()
	for _, ln := range s.extraLns {
		ln.Close()
	}
	s.extraMu.Unlock()
	s.closePending()
	s.stopAll() // handshakes in progress end now
	done := make(chan error, 1)
	go func() {
		s.acceptors.Wait()
		s.handshakes.Wait() // none enrolls into a stopped engine
		if s.registrations != nil {
			close(s.registrations)
			s.registrarsWG.Wait()
		}
		err := s.stopEngine(ctx)
		if s.refuse != nil {
			s.refuse.close()
		}
		s.pool.stop()
		done <- err
	}()
	defer os.RemoveAll(s.sockDir)
	// Shutdown is bounded by ctx whatever a handler or a client does: a
	// worker stuck in a handler must not keep the process from exiting
	// (SIGTERM's grace period is the operator's promise).
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		s.log.Warn("shutdown grace period over; exiting with work in flight", "in_flight", s.inflight.Load(),
			"queued", s.pool.depth(), "parked", s.parked.Load())
		return fmt.Errorf("stop: %w", ctx.Err())
	}
}

// OnBoot records the engine. Its event loops do not exist yet: gnet calls
// OnBoot before it starts them, so readiness is signalled by the first tick.
func (s *Server) OnBoot(eng gnet.Engine) gnet.Action {
	s.engine = eng
	return gnet.None
}

// OnTick runs the idle reaper and the late-head checks inside each loop.
// The first tick also marks the engine ready: gnet starts the ticker only
// after every event loop is registered.
func (s *Server) OnTick() (time.Duration, gnet.Action) {
	s.bootOnce.Do(func() { close(s.booted) })
	s.loopsMu.Lock()
	ls := append([]*loopState(nil), s.loops...)
	s.loopsMu.Unlock()
	now := time.Now()
	for _, l := range ls {
		l := l
		_ = l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			l.reap(now)
			return nil
		}))
	}
	lim := s.lim()
	frame := lim.RequestReadTimeout
	if s.cfg.AuthRequired && s.cfg.SASL != nil {
		frame = min(frame, lim.SASLAuthenticationTimeout)
	}
	return reapInterval(lim.IdleTimeout, s.httpLim().HeaderTimeout, frame), gnet.None
}

// reapInterval checks idle connections often enough to close them within
// about 1/8 of the timeout (late heads and frames within 1/4 of theirs), but not more
// than 10 times a second.
func reapInterval(idle, head, frame time.Duration) time.Duration {
	d := idle / 8
	if head > 0 && head/4 < d {
		d = head / 4
	}
	if frame > 0 && frame/4 < d {
		d = frame / 4
	}
	if d < 100*time.Millisecond {
		d = 100 * time.Millisecond
	}
	if d > 5*time.Second {
		d = 5 * time.Second
	}
	return d
}

// loopOf returns the state of the event loop that owns gc.
func (s *Server) loopOf(gc gnet.Conn) *loopState {
	el := gc.EventLoop()
	if l, ok := s.byLoop.Load(el); ok {
		return l.(*loopState)
	}
	l := newLoopState(s, el)
	if prev, loaded := s.byLoop.LoadOrStore(el, l); loaded {
		return prev.(*loopState)
	}
	s.loopsMu.Lock()
	s.loops = append(s.loops, l)
	s.loopsMu.Unlock()
	return l
}
