package broker

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/storage"
)

// Config configures the embedded broker.
type Config struct {
	// NodeID is this broker's id in Metadata (it is also the controller).
	NodeID int32
	// Host and Port are advertised to clients in Metadata and FindCoordinator.
	Host string
	Port int32
	// TLSHost and TLSPort are advertised instead to clients connected to
	// the TLS listener ("": the TLS listener is off, or not known).
	TLSHost string
	TLSPort int32
	// ClusterID is returned in Metadata and DescribeCluster.
	ClusterID string
	// AutoCreateTopics creates unknown topics on Metadata and Produce.
	AutoCreateTopics bool
	// DefaultPartitions is the partition count of auto-created topics.
	DefaultPartitions int32
	// MaxFetchBytes caps any Fetch response.
	MaxFetchBytes int64
	// MaxMessageBytes is the default max.message.bytes of a topic.
	MaxMessageBytes int32
	// Logger receives broker events; nil means slog.Default().
	Logger *slog.Logger
	// Metrics is the set broker metrics register in; nil means none.
	Metrics *metrics.Set
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	// DataDir keeps topics, partition logs and committed offsets on disk;
	// empty means everything stays in memory.
	DataDir string
	// SegmentBytes is the default segment.bytes of a topic (roll by size).
	SegmentBytes int64
	// SegmentMaxAge rolls a segment once it has been active this long;
	// zero means 7 days.
	SegmentMaxAge time.Duration
	// Fsync is when partition logs are fsynced (see storage.FsyncMode).
	Fsync storage.FsyncMode
	// FsyncInterval is the period of storage.FsyncInterval.
	FsyncInterval time.Duration
	// Groups bounds the consumer group coordinator (group_limits.go).
	Groups GroupLimits

	// MaxOpenSegmentFiles bounds the descriptors partition segment files
	// hold (--max-open-segment-files): files open on use and the least
	// recently used idle ones close beyond it; zero means no bound.
	MaxOpenSegmentFiles int
	// MaxPartitionsPerTopic bounds one topic's partitions
	// (--max-partitions-per-topic); zero means DefaultMaxPartitionsPerTopic.
	MaxPartitionsPerTopic int32
	// MaxPartitions bounds the partitions of every topic together
	// (--max-partitions); zero means DefaultMaxPartitions.
	MaxPartitions int
	// MaxTopics bounds the number of topics (--max-topics); zero means
	// DefaultMaxTopics.
	MaxTopics int
	// MaxMetadataTopics bounds the topics one Metadata request names
	// (--max-metadata-topics); zero means DefaultMaxMetadataTopics.
	MaxMetadataTopics int
	// MaxAutoCreateTopics bounds the topics one Metadata request
	// auto-creates (--max-auto-create-topics-per-request); zero means
	// DefaultMaxAutoCreateTopics.
	MaxAutoCreateTopics int
	// MinSegmentBytes is the least segment.bytes a client may set on a
	// topic (--min-segment-bytes); zero means DefaultMinSegmentBytes.
	MinSegmentBytes int64
	// TimestampBeforeMax and TimestampAfterMax are Kafka's
	// message.timestamp.before.max.ms and message.timestamp.after.max.ms
	// for CreateTime topics: a batch with a record stamped further in the
	// past or future is refused with INVALID_TIMESTAMP. Zero means the
	// default (before: unbounded, after: 1 hour), negative means unbounded.
	TimestampBeforeMax, TimestampAfterMax time.Duration
	// ProducerIDExpiration forgets an idempotent producer's sequence state
	// once it has not appended for this long (Kafka's
	// producer.id.expiration.ms); zero means 1 day.
	ProducerIDExpiration time.Duration
	// MaxProducerStates bounds the idempotent producer states of all
	// partitions; beyond it the least recently used is forgotten. Zero
	// means 200000.
	MaxProducerStates int
	// MaxWaitingFetches bounds the fetches waiting for data at a time
	// (--max-waiting-fetches); 0 means no limit.
	MaxWaitingFetches int64
	// MaxFetchWait caps a Fetch's max_wait_ms (--max-fetch-wait-ms), so
	// a waiter cannot live for days; zero means 5 minutes.
	MaxFetchWait time.Duration
}

// Defaults of the topic and partition limits (see Config).
const (
	DefaultMaxPartitionsPerTopic = 10000
	DefaultMaxPartitions         = 20000
	DefaultMaxTopics             = 10000
	DefaultMaxMetadataTopics     = 10000
	DefaultMaxAutoCreateTopics   = 100
	DefaultMinSegmentBytes       = 1 << 20
)

// Client describes who sent a request.
type Client struct {
	// ID is the Kafka client id of the request header.
	ID string
	// Addr is the remote IP of the connection.
	Addr string
	// Files is set when the answer's writer sends files: a Fetch from disk
	// is then answered with a *kafka.FileFetchResponse whose records stay
	// in their segment files (zero-copy), and the writer releases them.
	Files bool
}

// Responder receives the response to one request. A nil response means no
// response is due (Produce with acks=0). It may be called from any goroutine,
// exactly once.
type Responder func(kmsg.Response)

// handler is one entry of a broker's handler table (see registry.go).
type handler struct {
	min, max int16
	fn       handlerFunc
}

// Broker is the embedded single-node Kafka broker.
type Broker struct {
	cfg      Config
	log      *slog.Logger
	handlers [kafkaMaxKey + 1]handler
	// apiVersions are the ApiVersions responses by version, built once.
	apiVersions [8]*kmsg.ApiVersionsResponse

	mu     sync.RWMutex
	topics map[string]*topic
	byID   map[[16]byte]*topic
	// partitions counts the partitions of every topic; creating and its
	// reservations are topics (and their partitions) being created outside
	// b.mu, counted against the limits until they are added.
	partitions    int
	creating      map[string]bool
	reservedParts int
	warnings      *limits.WarnLog

	producers producerIDs
	// states bounds and expires the idempotent producer states.
	states    *producerStates
	inflaters inflaters
	groups    *groups
	metrics   brokerMetrics
	store     *diskStore // nil: in memory
	waits     fetchWaits

	// stop ends the background loops Open starts (every); loops waits for
	// them. Close stops every goroutine the broker starts: see Close.
	stop      chan struct{}
	loops     sync.WaitGroup
	closeOnce sync.Once
}

const kafkaMaxKey = 80

// New returns a broker serving the APIs of its handler table. It panics
// when Open fails, which only a DataDir can make happen: use Open then.
func New(cfg Config) *Broker {
	b, err := Open(cfg)
	if err != nil {
		panic(fmt.Sprintf("broker: %v", err))
	}
	return b
}

// Open returns a broker; with cfg.DataDir it recovers topics, partition
// logs and committed offsets from disk first.
func Open(cfg Config) (*Broker, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DefaultPartitions <= 0 {
		cfg.DefaultPartitions = 1
	}
	if cfg.MaxFetchBytes <= 0 {
		cfg.MaxFetchBytes = 52428800
	}
	if cfg.MaxFetchWait <= 0 {
		cfg.MaxFetchWait = 5 * time.Minute
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 1048588
	}
	if cfg.ClusterID == "" {
		cfg.ClusterID = "floodgate"
	}
	if cfg.SegmentBytes <= 0 {
		cfg.SegmentBytes = 1 << 30
	}
	cfg.setLimitDefaults()
	b := &Broker{
		cfg:      cfg,
		log:      cfg.Logger,
		topics:   make(map[string]*topic),
		byID:     make(map[[16]byte]*topic),
		creating: make(map[string]bool),
		warnings: limits.NewWarnLog(cfg.Logger, 10*time.Second),
	}
	b.metrics = newBrokerMetrics(cfg.Metrics)
	b.states = newProducerStates(cfg.Now, cfg.ProducerIDExpiration, cfg.MaxProducerStates, b.metrics.set)
	b.waits.init(cfg.MaxWaitingFetches, b.metrics.set)
	b.groups = newGroups(b, cfg.Groups)
	if cfg.DataDir != "" {
		store, err := openStore(cfg, b.log)
		if err != nil {
			return nil, err
		}
		b.store = store
		store.fenced = b.metrics.segmentsFenced
		store.registerMetrics(b.metrics)
		if err := b.loadState(); err != nil {
			store.close(b.allTopics())
			return nil, err
		}
		b.states.sweep() // recovery may have gone over --max-producer-states
	}
	b.buildHandlers()
	b.startBackground()
	return b, nil
}

// startBackground starts the broker's periodic loops; Close stops them.
func (b *Broker) startBackground() {
	b.stop = make(chan struct{})
	b.every(retentionInterval, func() { b.sweepRetention() })
	if b.groups.lim.OffsetsRetention >= 0 {
		b.every(b.groups.lim.OffsetsRetentionCheck, b.groups.sweepOffsets)
	}
}

// every runs fn every d on its own goroutine until Close.
func (b *Broker) every(d time.Duration, fn func()) {
	b.loops.Add(1)
	go func() {
		defer b.loops.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-t.C:
				b.runGuarded(fn)
			}
		}
	}()
}

// runGuarded runs one round of a background loop: a panic (reading data on
// disk) is logged and the loop goes on at its next tick, instead of ending
// the process.
func (b *Broker) runGuarded(fn func()) {
	defer func() {
		if p := recover(); p != nil {
			b.log.Error("background task panicked; it runs again at its next tick", "panic", fmt.Sprint(p),
				"stack", string(debug.Stack()))
		}
	}()
	fn()
}

// VersionRange returns the versions of key floodgate serves.
func (b *Broker) VersionRange(key int16) (min, max int16, ok bool) {
	if key < 0 || int(key) >= len(b.handlers) || b.handlers[key].fn == nil {
		return 0, 0, false
	}
	h := b.handlers[key]
	return h.min, h.max, true
}

// Handle serves one decoded request. The caller has checked the version
// with VersionRange.
func (b *Broker) Handle(req kmsg.Request, cl *Client, respond Responder) {
	h := b.handlers[req.Key()]
	h.fn(b, req, cl, respond)
}

// Close stops everything the broker started and, with a data dir, fsyncs
// and closes its files. It returns once those goroutines have ended;
// calling it again does nothing.
func (b *Broker) Close() {
	b.closeOnce.Do(func() {
		// Group timers (rebalance, sync, session, pending member ids)
		// stop; waiting JoinGroup and SyncGroup requests are answered.
		// Closed groups also make a running offsets.log compaction abort.
		b.groups.close()
		// The periodic loops: retention and offset expiry.
		close(b.stop)
		b.loops.Wait()
		// With a data dir: the fsync syncer (started by openStore), the
		// offsets.log compactions (waited for), then the files.
		if b.store != nil {
			b.store.close(b.allTopics())
		}
	})
}

func (b *Broker) now() time.Time { return b.cfg.Now() }

// newUUID returns a random topic id that is never all zeroes.
func newUUID() [16]byte {
	var id [16]byte
	for id == ([16]byte{}) {
		if _, err := rand.Read(id[:]); err != nil {
			panic(fmt.Sprintf("broker: crypto/rand: %v", err))
		}
	}
	return id
}

// errResponse answers req with code in every part.
func errResponse(req kmsg.Request, code int16) kmsg.Response {
	return kafka.ErrorResponse(req, code)
}

// ServeKafka serves one request for the network loop.
func (b *Broker) ServeKafka(req kmsg.Request, clientID, addr string, respond func(kmsg.Response)) {
	b.Handle(req, &Client{ID: clientID, Addr: addr}, respond)
}

// ServeKafkaFiles is ServeKafka for a writer that sends files: a Fetch
// from disk may be answered with a *kafka.FileFetchResponse (see
// Client.Files), whose sections the writer releases once written or
// dropped.
func (b *Broker) ServeKafkaFiles(req kmsg.Request, clientID, addr string, respond func(kmsg.Response)) {
	b.Handle(req, &Client{ID: clientID, Addr: addr, Files: true}, respond)
}
