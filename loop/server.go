package loop

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
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
	// KafkaListen and HTTPListen are host:port listen addresses.
	KafkaListen string
	HTTPListen  string
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
}

// Server runs the listeners, the gnet engine and the worker pool.
type Server struct {
	cfg    Config
	log    *slog.Logger
	warn   *limits.WarnLog
	budget *limits.Budget
	pool   *pool
	bufs   bufPool
	met    *serverMetrics
	refuse *refuser // answers refused connections (refuse.go)
	// procMem is the process memory limit (procmem.go); nil: none.
	procMem ProcessMemory

	raw         RawKafkaHandler   // cfg.Kafka when it forwards frames as bytes
	files       FileKafkaHandler  // cfg.Kafka when it answers Fetch from files
	inline      InlineHTTPHandler // cfg.HTTP when it answers cheap routes on the loop
	produceRate *limits.Buckets
	fetchRate   *limits.Buckets
	// Per-IP aggregates of the request rates, and the byte-rate quotas
	// (quota.go); nil when off.
	produceIPRate, fetchIPRate *limits.Buckets
	produceBytes, fetchBytes   *limits.Buckets

	engine    gnet.Engine
	booted    chan struct{}
	bootOnce  sync.Once
	runErr    chan error
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

	ipSeed  maphash.Seed
	loopsMu sync.Mutex
	loops   []*loopState
	byLoop  sync.Map // gnet.EventLoop -> *loopState

	gnet.BuiltinEventEngine
}

// New validates cfg and returns a server that is not yet listening.
func New(cfg Config) (*Server, error) {
	if err := cfg.Limits.Validate(); err != nil {
		return nil, err
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
		booted: make(chan struct{}),
		runErr: make(chan error, 1),
		ipSeed: maphash.MakeSeed(),
	}
	s.warn = limits.NewWarnLog(cfg.Logger, time.Second)
	s.raw, _ = cfg.Kafka.(RawKafkaHandler)
	s.files, _ = cfg.Kafka.(FileKafkaHandler)
	s.inline, _ = cfg.HTTP.(InlineHTTPHandler)
	if cfg.Limits.ProduceRate > 0 {
		s.produceRate = limits.NewBuckets(float64(cfg.Limits.ProduceRate), float64(cfg.Limits.ProduceRate))
	}
	if cfg.Limits.FetchRate > 0 {
		s.fetchRate = limits.NewBuckets(float64(cfg.Limits.FetchRate), float64(cfg.Limits.FetchRate))
	}
	s.produceIPRate = newIPQuota(&cfg.Limits, cfg.Limits.ProduceRate)
	s.fetchIPRate = newIPQuota(&cfg.Limits, cfg.Limits.FetchRate)
	s.produceBytes = newByteQuota(cfg.Limits.ProduceByteRate)
	s.fetchBytes = newByteQuota(cfg.Limits.FetchByteRate)
	s.met = newServerMetrics(cfg.Metrics, s)
	return s, nil
}

// Start listens (unless Listen was called) and runs the engine and the
// acceptors in the background.
func (s *Server) Start() error {
	if s.kafkaLn == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	return s.serve()
}

// Listen binds both listeners, so their addresses are known (port 0) before
// anything is served.
func (s *Server) Listen() error {
	var err error
	if s.kafkaLn, err = net.Listen("tcp", s.cfg.KafkaListen); err != nil {
		return fmt.Errorf("listen kafka %s: %w", s.cfg.KafkaListen, err)
	}
	if s.cfg.HTTPListen != "" {
		if s.httpLn, err = net.Listen("tcp", s.cfg.HTTPListen); err != nil {
			s.kafkaLn.Close()
			return fmt.Errorf("listen http %s: %w", s.cfg.HTTPListen, err)
		}
	}
	return nil
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
		s.runErr <- gnet.Run(s, sock,
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
	case err := <-s.runErr:
		return fmt.Errorf("gnet engine: %w", err)
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
	s.startAcceptor(s.kafkaLn, kindKafka, BootstrapTag)
	if s.httpLn != nil {
		s.startAcceptor(s.httpLn, kindHTTP, BootstrapTag)
	}
	s.extraMu.Lock()
	s.serving = true
	for i, ln := range s.extraLns {
		s.startAcceptor(ln, kindKafka, s.extraTags[i])
	}
	s.extraMu.Unlock()
	s.log.Info("floodgate listening", "kafka", s.kafkaLn.Addr().String(), "http", s.HTTPAddr(),
		"event_loops", s.cfg.EventLoops, "workers", s.cfg.Workers, "max_connections", s.cfg.Limits.MaxConnections)
	return nil
}

// KafkaAddr returns the Kafka listener's address.
func (s *Server) KafkaAddr() string { return s.kafkaLn.Addr().String() }

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
func (s *Server) Limits() limits.Config { return s.cfg.Limits }

// Wait blocks until the engine stops (by itself or by Stop) and returns why.
func (s *Server) Wait() error { return <-s.runErr }

// Stop closes the listeners, every connection and the pool.
func (s *Server) Stop(ctx context.Context) error {
	if !s.stopping.CompareAndSwap(false, true) {
		return nil
	}
	s.kafkaLn.Close()
	if s.httpLn != nil {
		s.httpLn.Close()
	}
	s.extraMu.Lock()
	for _, ln := range s.extraLns {
		ln.Close()
	}
	s.extraMu.Unlock()
	done := make(chan error, 1)
	go func() {
		s.acceptors.Wait()
		if s.registrations != nil {
			close(s.registrations)
			s.registrarsWG.Wait()
		}
		err := s.engine.Stop(ctx)
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
	return reapInterval(s.cfg.Limits.IdleTimeout, s.cfg.HTTPLimits.HeaderTimeout, s.cfg.Limits.RequestReadTimeout), gnet.None
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
