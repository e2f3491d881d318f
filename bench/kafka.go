package bench

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaConfig configures a Kafka load run.
type KafkaConfig struct {
	// Mode is produce, consume or roundtrip.
	Mode string
	// Brokers are the seed brokers (host:port).
	Brokers []string
	// Clients is the number of franz-go clients; each produces to (and
	// consumes from) its own partition.
	Clients int
	// RecordSize is the value size in bytes.
	RecordSize int
	// Records is the total record count (0: run for Duration).
	Records int64
	// Duration bounds the run (0: until Records are done).
	Duration time.Duration
	// Acks is 0, 1 or -1 (all).
	Acks int
	// Compression is none, gzip, snappy, lz4 or zstd.
	Compression string
	// Rate, when > 0, paces production to this many records/s in total
	// (open loop); 0 produces as fast as the client buffers allow.
	Rate float64
	// Topic is the topic to use (a fresh random one when empty).
	Topic string
	// MaxBuffered is each producer's cap on records not yet acknowledged.
	MaxBuffered int
	// Linger is the producer's batch linger.
	Linger time.Duration
	// Preloaded makes consume read Records records already in Topic
	// instead of producing them first, so the server's CPU can be measured
	// over the reads alone.
	Preloaded bool
	// DeleteTopic deletes Topic once the run is done (a benchmark cluster
	// such as kfake keeps every record in memory otherwise, and later runs
	// slow down as it holds more).
	DeleteTopic bool
	// IdleTimeout is how long a consume run without a Duration waits for
	// records that do not come before it fails (0: 15 s).
	IdleTimeout time.Duration
	// Progress, when set, receives a status line while the run goes on.
	Progress *Progress
	// TLSCAFile, when set, connects over TLS, verifying the brokers with
	// these CAs.
	TLSCAFile string
}

// Validate checks the configuration.
func (c *KafkaConfig) Validate() error {
	switch c.Mode {
	case "produce", "consume", "roundtrip":
	default:
		return fmt.Errorf("mode %q: want produce, consume or roundtrip", c.Mode)
	}
	if len(c.Brokers) == 0 {
		return errors.New("--brokers: at least one host:port is needed")
	}
	if c.Clients < 1 || c.Clients > 1000 {
		return fmt.Errorf("--clients=%d: must be between 1 and 1000", c.Clients)
	}
	if c.RecordSize < 0 || c.RecordSize > 16<<20 {
		return fmt.Errorf("--record-size=%d: must be between 0 and 16 MiB", c.RecordSize)
	}
	if c.Mode == "roundtrip" && c.RecordSize < 8 {
		return fmt.Errorf("--record-size=%d: roundtrip needs at least 8 bytes (a timestamp)", c.RecordSize)
	}
	if c.Records < 0 || c.Duration < 0 {
		return errors.New("--records and --duration must not be negative")
	}
	if c.Records == 0 && c.Duration == 0 {
		return errors.New("one of --records or --duration is needed")
	}
	if c.Mode == "consume" && c.Records == 0 {
		return errors.New("consume needs --records (the records to preload and read back)")
	}
	if c.Preloaded && (c.Mode != "consume" || c.Topic == "") {
		return errors.New("--preloaded: consume only, and --topic names the preloaded topic")
	}
	switch c.Acks {
	case 0, 1, -1:
	default:
		return fmt.Errorf("--acks=%d: want 0, 1 or -1 (all)", c.Acks)
	}
	if _, err := compressionCodec(c.Compression); err != nil {
		return err
	}
	if c.Rate < 0 {
		return fmt.Errorf("--rate=%v: must not be negative", c.Rate)
	}
	if _, err := tlsClientConfig(c.TLSCAFile); err != nil {
		return err
	}
	return nil
}

func compressionCodec(name string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(name) {
	case "", "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.NoCompression(), fmt.Errorf("--compression=%q: want none, gzip, snappy, lz4 or zstd", name)
}

// ParseAcks reads --acks: 0, 1, -1 or all.
func ParseAcks(s string) (int, error) {
	switch s {
	case "0":
		return 0, nil
	case "1":
		return 1, nil
	case "-1", "all":
		return -1, nil
	}
	return 0, fmt.Errorf("--acks=%q: want 0, 1 or all", s)
}

// KafkaResult is the outcome of a Kafka run.
type KafkaResult struct {
	Mode          string  `json:"mode"`
	Brokers       string  `json:"brokers"`
	Clients       int     `json:"clients"`
	RecordSize    int     `json:"record_size"`
	Acks          int     `json:"acks"`
	Compression   string  `json:"compression"`
	Records       int64   `json:"records"`
	DurationS     float64 `json:"duration_s"`
	RecordsPerSec float64 `json:"records_per_s"`
	MBPerSec      float64 `json:"mb_per_s"`
	// Latency: produce is enqueue to acknowledgement; roundtrip is
	// enqueue to a record's first delivery to a consumer; consume has
	// none.
	Latency Latency `json:"latency"`
	Errors  int64   `json:"errors"`
	// Duplicates counts a roundtrip's deliveries of a record delivered
	// already (a producer that retried a batch whose acknowledgement was
	// lost wrote it twice); they are not in Records or Latency.
	Duplicates int64 `json:"duplicates"`
}

// Table returns the summary table.
func (r *KafkaResult) Table() *Table {
	t := &Table{Header: []string{"mode", "clients", "size", "acks", "records", "records/s", "MB/s", "p50", "p99", "p999", "errors", "duplicates"}}
	lat := func(v float64) string {
		if r.Mode == "consume" {
			return "-"
		}
		return fmt.Sprintf("%.3f ms", v)
	}
	dups := "-"
	if r.Mode == "roundtrip" {
		dups = fmt.Sprint(r.Duplicates)
	}
	t.Add(r.Mode, r.Clients, r.RecordSize, r.Acks, r.Records, r.RecordsPerSec, r.MBPerSec,
		lat(r.Latency.P50MS), lat(r.Latency.P99MS), lat(r.Latency.P999MS), r.Errors, dups)
	return t
}

func (c *KafkaConfig) clientOpts(extra ...kgo.Opt) []kgo.Opt {
	codec, _ := compressionCodec(c.Compression)
	opts := []kgo.Opt{
		c.dialOpt(),
		kgo.SeedBrokers(c.Brokers...),
		kgo.DefaultProduceTopic(c.Topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(codec),
		kgo.MaxBufferedRecords(c.MaxBuffered),
		kgo.ProducerLinger(c.Linger),
		kgo.RecordRetries(10),
	}
	switch c.Acks {
	case 0:
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	case 1:
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	default:
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	}
	return append(opts, extra...)
}

// dialOpt connects in plaintext, or over TLS with TLSCAFile (checked by
// Validate).
func (c *KafkaConfig) dialOpt() kgo.Opt {
	cfg, _ := tlsClientConfig(c.TLSCAFile)
	if cfg == nil {
		return kgo.WithHooks()
	}
	return kgo.DialTLSConfig(cfg)
}

// partitionConsumer is a client that reads partition i of the run's topic
// from its start, a fetch waiting at most maxWait for records.
func (c *KafkaConfig) partitionConsumer(i int, maxWait time.Duration) (*kgo.Client, error) {
	cl, err := kgo.NewClient(c.dialOpt(), kgo.SeedBrokers(c.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{c.Topic: {int32(i): kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxWait(maxWait))
	if err != nil {
		return nil, fmt.Errorf("kafka consumer %d: %w", i, err)
	}
	return cl, nil
}

// consumePartitions reads every partition of the run's topic from its
// start, one client and goroutine each (fetches waiting at most maxWait),
// handing each poll's fetches to handle until ctx ends; it returns when
// every goroutine has stopped.
func (c *KafkaConfig) consumePartitions(ctx context.Context, maxWait time.Duration, handle func(kgo.Fetches)) error {
	var wg sync.WaitGroup
	for i := 0; i < c.Clients; i++ {
		cl, err := c.partitionConsumer(i, maxWait)
		if err != nil {
			return err
		}
		defer cl.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				handle(cl.PollFetches(ctx))
			}
		}()
	}
	wg.Wait()
	return nil
}

// admin runs fn with an admin client of the run's brokers, under a 15 s
// deadline.
func (c *KafkaConfig) admin(ctx context.Context, fn func(context.Context, *kadm.Client) error) error {
	cl, err := kgo.NewClient(c.dialOpt(), kgo.SeedBrokers(c.Brokers...))
	if err != nil {
		return fmt.Errorf("kafka client for %v: %w", c.Brokers, err)
	}
	defer cl.Close()
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return fn(cctx, kadm.NewClient(cl))
}

// createTopic creates the run's topic with one partition per client.
func (c *KafkaConfig) createTopic(ctx context.Context) error {
	return c.admin(ctx, func(ctx context.Context, adm *kadm.Client) error {
		_, err := adm.CreateTopic(ctx, int32(c.Clients), 1, nil, c.Topic)
		switch {
		case errors.Is(err, kerr.TopicAlreadyExists) && c.Mode == "produce":
			return nil // producing into a topic that exists measures the same
		case errors.Is(err, kerr.TopicAlreadyExists):
			// Its records would be read from the start and counted (and
			// their stale stamps would enter the latency).
			return fmt.Errorf("topic %s exists: %s needs a new topic (consume reads an existing one with --preloaded)", c.Topic, c.Mode)
		case err != nil:
			return fmt.Errorf("create topic %s on %v: %w", c.Topic, c.Brokers, err)
		}
		return nil
	})
}

// deleteTopic deletes the run's topic.
func (c *KafkaConfig) deleteTopic(ctx context.Context) error {
	return c.admin(ctx, func(ctx context.Context, adm *kadm.Client) error {
		resp, err := adm.DeleteTopic(ctx, c.Topic)
		if err != nil {
			return fmt.Errorf("delete topic %s on %v: %w", c.Topic, c.Brokers, err)
		}
		if resp.Err != nil {
			return fmt.Errorf("delete topic %s: %w", c.Topic, resp.Err)
		}
		return nil
	})
}

// RunKafka runs cfg.Mode against cfg.Brokers.
func RunKafka(ctx context.Context, cfg KafkaConfig) (*KafkaResult, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Topic == "" {
		cfg.Topic = fmt.Sprintf("floodgate-bench-%d", rand.Uint64()%1_000_000_000)
	}
	if cfg.MaxBuffered == 0 {
		cfg.MaxBuffered = 10000
	}
	if !cfg.Preloaded {
		if err := cfg.createTopic(ctx); err != nil {
			return nil, err
		}
	}
	res := &KafkaResult{Mode: cfg.Mode, Brokers: strings.Join(cfg.Brokers, ","), Clients: cfg.Clients,
		RecordSize: cfg.RecordSize, Acks: cfg.Acks, Compression: cfg.Compression}
	if res.Compression == "" {
		res.Compression = "none"
	}
	var err error
	switch cfg.Mode {
	case "produce":
		err = runProduce(ctx, cfg, res, false)
	case "consume":
		if cfg.Preloaded {
			err = runConsume(ctx, cfg, res)
			break
		}
		pre := cfg
		pre.Progress = nil
		pre.Duration = 0
		pre.Rate = 0
		var ignored KafkaResult
		cfg.Progress.Update("kafka consume: preloading %d records", cfg.Records)
		err = runProduce(ctx, pre, &ignored, false)
		switch {
		case err != nil:
		case ignored.Errors > 0:
			err = fmt.Errorf("preload of %d records: %d produce errors", cfg.Records, ignored.Errors)
		default:
			err = runConsume(ctx, cfg, res)
		}
	case "roundtrip":
		err = runRoundtrip(ctx, cfg, res)
	}
	cfg.Progress.Done()
	if cfg.DeleteTopic {
		// Also after a failed run: the topic would otherwise stay behind.
		if derr := cfg.deleteTopic(context.WithoutCancel(ctx)); derr != nil {
			err = errors.Join(err, derr)
		}
	}
	if err != nil {
		return nil, err
	}
	if res.DurationS > 0 {
		res.RecordsPerSec = float64(res.Records) / res.DurationS
		res.MBPerSec = float64(res.Records) * float64(cfg.RecordSize) / 1e6 / res.DurationS
	}
	return res, nil
}

// budget hands out the right to produce one more record.
type budget struct {
	limit    int64 // 0: unlimited
	deadline time.Time
	n        atomic.Int64
}

func (b *budget) take() bool {
	if !b.deadline.IsZero() && time.Now().After(b.deadline) {
		return false
	}
	if b.limit > 0 {
		return b.n.Add(1) <= b.limit
	}
	b.n.Add(1)
	return true
}

// runProduce produces cfg's records. With stamp (a roundtrip), each
// record's value starts with the time it was due (UnixNano, 8 bytes) and
// its key is its sequence number in its partition (8 bytes), by which the
// consumer tells a duplicate from a new record.
func runProduce(ctx context.Context, cfg KafkaConfig, res *KafkaResult, stamp bool) error {
	clients := make([]*kgo.Client, cfg.Clients)
	for i := range clients {
		cl, err := kgo.NewClient(cfg.clientOpts()...)
		if err != nil {
			return fmt.Errorf("kafka client %d: %w", i, err)
		}
		defer cl.Close()
		clients[i] = cl
	}
	b := &budget{limit: cfg.Records}
	start := time.Now()
	if cfg.Duration > 0 {
		b.deadline = start.Add(cfg.Duration)
	}
	var acked, errs atomic.Int64
	hists := make([]lockedHist, cfg.Clients)
	value := make([]byte, cfg.RecordSize)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	var firstErr atomic.Value
	var wg sync.WaitGroup
	stop := make(chan struct{})
	go every(stop, 200*time.Millisecond, func() {
		cfg.Progress.Update("kafka %s: %.1fs acked %d errors %d", cfg.Mode, time.Since(start).Seconds(), acked.Load(), errs.Load())
	})
	for i, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var interval time.Duration
			if cfg.Rate > 0 {
				interval = time.Duration(float64(cfg.Clients) / cfg.Rate * 1e9)
			}
			next := time.Now()
			h := &hists[i]
			var seq uint64
			for ctx.Err() == nil && b.take() {
				// Paced, a record's latency runs from when it was due, not
				// from when it went out: records held back by a stall (the
				// broker, or MaxBuffered) then count the stall, as an open
				// loop must (no coordinated omission).
				t0 := time.Now()
				if interval > 0 {
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
					t0 = next
					next = next.Add(interval)
				}
				rec := &kgo.Record{Value: value, Partition: int32(i)}
				if stamp {
					rec.Value = make([]byte, cfg.RecordSize)
					copy(rec.Value, value)
					binary.BigEndian.PutUint64(rec.Value, uint64(t0.UnixNano()))
					rec.Key = binary.BigEndian.AppendUint64(nil, seq)
					seq++
				}
				cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
					if err != nil {
						errs.Add(1)
						firstErr.CompareAndSwap(nil, err)
						return
					}
					if !stamp {
						h.Record(time.Since(t0))
					}
					acked.Add(1)
				})
			}
			if err := cl.Flush(ctx); err != nil {
				firstErr.CompareAndSwap(nil, err)
			}
		}()
	}
	wg.Wait()
	close(stop)
	res.DurationS = time.Since(start).Seconds()
	res.Records = acked.Load()
	res.Errors = errs.Load()
	var all Hist
	for i := range hists {
		all.Merge(hists[i].snapshot())
	}
	res.Latency = all.Summary()
	if res.Records == 0 {
		if e, ok := firstErr.Load().(error); ok {
			return fmt.Errorf("no record was acknowledged: %w", e)
		}
		return errors.New("no record was acknowledged")
	}
	return nil
}

// countFetchErrors adds the fetch errors in fs to errs, leaving out the
// cancellation that ends a run.
func countFetchErrors(fs kgo.Fetches, errs *atomic.Int64) {
	fs.EachError(func(_ string, _ int32, err error) {
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			errs.Add(1)
		}
	})
}

// defaultConsumeIdle is KafkaConfig.IdleTimeout's default.
const defaultConsumeIdle = 15 * time.Second

// runConsume reads cfg.Records records from the start of every partition.
func runConsume(ctx context.Context, cfg KafkaConfig, res *KafkaResult) error {
	want := cfg.Records
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.Duration > 0 {
		// A poll returns only with records, so the deadline must cancel
		// it: checked only when records arrive, a run with fewer records
		// than --records waited 30 s more and counted them.
		var c2 context.CancelFunc
		ctx, c2 = context.WithDeadline(ctx, start.Add(cfg.Duration))
		defer c2()
	}
	var got, errs atomic.Int64
	var stalled atomic.Bool
	lastAt := atomic.Int64{} // when records last arrived (UnixNano)
	lastAt.Store(start.UnixNano())
	idle := cmp.Or(cfg.IdleTimeout, defaultConsumeIdle)
	if cfg.Duration == 0 {
		// Without a deadline, records that never come (a topic shorter
		// than --records) would leave the run waiting forever.
		stopWatch := make(chan struct{})
		defer close(stopWatch)
		go every(stopWatch, 200*time.Millisecond, func() {
			if time.Since(time.Unix(0, lastAt.Load())) > idle {
				stalled.Store(true)
				cancel()
			}
		})
	}
	err := cfg.consumePartitions(ctx, 500*time.Millisecond, func(fs kgo.Fetches) {
		countFetchErrors(fs, &errs)
		now := time.Now()
		n := int64(fs.NumRecords())
		if n > 0 {
			lastAt.Store(now.UnixNano())
		}
		total := got.Add(n)
		cfg.Progress.Update("kafka %s: %.1fs consumed %d/%d", cfg.Mode, time.Since(start).Seconds(), total, want)
		if want > 0 && total >= want {
			cancel()
		}
	})
	if err != nil {
		return err
	}
	res.Records = got.Load()
	res.Errors += errs.Load()
	// Until the last record when every record wanted came, else until the
	// deadline: not until the stop was noticed.
	elapsed := time.Since(start)
	if cfg.Duration > 0 {
		elapsed = min(elapsed, cfg.Duration)
	}
	if want > 0 && res.Records >= want {
		elapsed = time.Duration(lastAt.Load() - start.UnixNano())
	}
	res.DurationS = elapsed.Seconds()
	switch {
	case stalled.Load():
		return fmt.Errorf("consumed %d of %d records; none arrived for %v", res.Records, want, idle)
	case want > 0 && res.Records < want && cfg.Duration == 0:
		return fmt.Errorf("consumed %d of %d records before the deadline", res.Records, want)
	}
	return nil
}

func runRoundtrip(ctx context.Context, cfg KafkaConfig, res *KafkaResult) error {
	var h lockedHist
	prod := cfg
	prod.Progress = nil
	var consErr error
	consDone := make(chan struct{})
	// The consumer reads what the producer acknowledged; it is told the
	// count once production ends.
	var pres KafkaResult
	start := time.Now()
	perr := make(chan error, 1)
	go func() { perr <- runProduce(ctx, prod, &pres, true) }()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cons := cfg
	cons.Records = 0
	cons.Duration = 0
	var cres KafkaResult
	var want, got atomic.Int64
	go func() {
		defer close(consDone)
		consErr = runConsumeUntil(cctx, cons, &cres, &h, &want, &got)
	}()
	if err := <-perr; err != nil {
		cancel()
		<-consDone
		return err
	}
	want.Store(pres.Records)
	if got.Load() >= pres.Records {
		// Every record arrived before the count was known: the consumer,
		// which checks the count only when records arrive, would wait for
		// more until the timeout below (and the run would count that
		// wait). Either this or the consumer's own check sees both.
		cancel()
	}
	select {
	case <-consDone:
	case <-time.After(30 * time.Second):
		cancel()
		<-consDone
	}
	if consErr != nil {
		return consErr
	}
	res.Records = pres.Records
	// Records/s of a roundtrip count until the last delivery.
	res.DurationS = time.Since(start).Seconds()
	res.Errors = pres.Errors + cres.Errors
	res.Duplicates = cres.Duplicates
	res.Latency = h.snapshot().Summary()
	return nil
}

// runConsumeUntil consumes until want (set later, 0 = not yet known)
// distinct records have arrived or ctx ends, counting them in got and the
// deliveries of a record that had arrived already in res.Duplicates: a
// duplicate counted as a new record would end the run before every
// record produced had arrived.
func runConsumeUntil(ctx context.Context, cfg KafkaConfig, res *KafkaResult, h *lockedHist, want, got *atomic.Int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var errs, dups atomic.Int64
	var seen deliveries
	err := cfg.consumePartitions(ctx, 100*time.Millisecond, func(fs kgo.Fetches) {
		countFetchErrors(fs, &errs)
		now := time.Now()
		var n int64
		dups.Add(seen.firsts(fs, func(r *kgo.Record) {
			n++
			if len(r.Value) >= 8 {
				h.Record(time.Duration(now.UnixNano() - int64(binary.BigEndian.Uint64(r.Value))))
			}
		}))
		total := got.Add(n)
		cfg.Progress.Update("kafka roundtrip: delivered %d (and %d duplicates)", total, dups.Load())
		if w := want.Load(); w > 0 && total >= w {
			cancel()
		}
	})
	if err != nil {
		return err
	}
	res.Records = got.Load()
	res.Errors = errs.Load()
	res.Duplicates = dups.Load()
	if w := want.Load(); w > 0 && res.Records < w {
		return fmt.Errorf("roundtrip: %d of %d acknowledged records delivered (and %d duplicates)", res.Records, w, res.Duplicates)
	}
	return nil
}

// deliveries remembers which of a roundtrip's records have been delivered,
// by partition and the sequence number runProduce put in each key: a bit
// per record.
type deliveries struct {
	mu   sync.Mutex
	seen map[int32][]uint64
}

// maxDeliveryWords bounds a partition's bits in deliveries (2^30 records,
// 128 MiB): a key beyond is not one of the run's.
const maxDeliveryWords = 1 << 24

// firsts calls first for each record of fs delivered for the first time
// and returns how many were delivered before (duplicates). A record
// without a sequence number counts as a first delivery.
func (d *deliveries) firsts(fs kgo.Fetches, first func(*kgo.Record)) (dups int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen == nil {
		d.seen = map[int32][]uint64{}
	}
	fs.EachRecord(func(r *kgo.Record) {
		var seq uint64
		if len(r.Key) == 8 {
			seq = binary.BigEndian.Uint64(r.Key)
		}
		word, bit := seq/64, uint64(1)<<(seq%64)
		if len(r.Key) != 8 || word >= maxDeliveryWords {
			first(r)
			return
		}
		bits := d.seen[r.Partition]
		if word >= uint64(len(bits)) {
			bits = append(bits, make([]uint64, word+1-uint64(len(bits)))...)
			d.seen[r.Partition] = bits
		}
		if bits[word]&bit != 0 {
			dups++
			return
		}
		bits[word] |= bit
		first(r)
	})
	return dups
}
