package gateway_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/gateway"
	"github.com/floodgate/floodgate/internal/loopback"
	"github.com/floodgate/floodgate/internal/testcerts"
	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// spliceRecords is the records of the spliced topic: answerValue's 100 B
// to 24 KB, 3.6 MB in all, in batches of up to 64 KiB.
const spliceRecords = 300

// spliceGateway runs kfake with one broker (every Fetch sent to the
// gateway's bootstrap listener goes to its leader) holding spliceRecords
// records in topic "spliced", and the gateway in front of it with pipes
// pipes (0: the default pool). The memory budget is large enough that no
// forwarded Fetch is fitted to it, so the gateway's answers must equal
// kfake's byte for byte. It returns the gateway and kfake's address.
func spliceGateway(t *testing.T, pipes int, loopCfg func(*loop.Config)) (*gw, string) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "spliced"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	direct := cluster.ListenAddrs()[0]
	cl := client(t, direct, kgo.ProducerBatchMaxBytes(64<<10), kgo.DefaultProduceTopic("spliced"), kgo.ProducerBatchCompression(kgo.NoCompression()))
	recs := make([]*kgo.Record, spliceRecords)
	for i := range recs {
		recs[i] = &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: answerValue(i)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce to kfake: %v", err)
	}
	cl.Close()
	g := testserver.StartGatewayLoop(t, cluster.ListenAddrs(), func(l *limits.Config) {
		l.MemoryLimitBytes, l.MemoryPerIPPercent = 1<<30, 100
		// A stuck client's answer stays in its pipe only if the socket's
		// send queue cannot take it whole: loopback's autotuning sizes it
		// past 1 MiB at the first write (64 KiB segments), more than a
		// 900 KiB answer.
		l.SocketSendBuffer = 64 << 10
	}, func(c *gateway.Config) {
		// These tests are about pipes, not timeouts: a race build of kfake
		// on a starved machine takes more than the test server's 5 s to
		// answer 64 Fetches of 900 KiB, and answers that timed out upstream
		// are never spliced or read.
		c.SplicePipes, c.RequestTimeout = pipes, 2*time.Minute
	}, loopCfg)
	return &gw{srv: g.Server, gw: g.Gateway, cluster: cluster, set: g.Metrics}, direct
}

// fetchFrame is a Fetch v11 request frame (length prefix included) for
// partition 0 of topic from offset, of at most maxBytes.
func fetchFrame(corr int32, topic string, offset int64, maxBytes int32) []byte {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(11)
	req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = -1, 0, 1, maxBytes
	req.SessionEpoch = -1
	p := kmsg.NewFetchRequestTopicPartition()
	p.FetchOffset, p.LogStartOffset, p.PartitionMaxBytes, p.CurrentLeaderEpoch = offset, -1, maxBytes, -1
	tp := kmsg.NewFetchRequestTopic()
	tp.Topic, tp.Partitions = topic, []kmsg.FetchRequestTopicPartition{p}
	req.Topics = []kmsg.FetchRequestTopic{tp}
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID("splice-test")).AppendRequest(nil, req, corr)
}

// apiVersionsFrame0 is an ApiVersions v0 request frame.
func apiVersionsFrame0(corr int32) []byte {
	req := kmsg.NewPtrApiVersionsRequest()
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID("splice-test")).AppendRequest(nil, req, corr)
}

// readAnswer reads one answer frame: its correlation id and the rest.
func readAnswer(t *testing.T, c net.Conn) (int32, []byte) {
	t.Helper()
	var head [8]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		t.Fatalf("read answer: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(head[:4])-4)
	if _, err := io.ReadFull(c, body); err != nil {
		t.Fatalf("read answer body of %d bytes: %v", len(body), err)
	}
	return int32(binary.BigEndian.Uint32(head[4:])), body
}

// directFetch is kfake's own answer (after the correlation id) to a Fetch.
func directFetch(t *testing.T, addr string, offset int64, maxBytes int32) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(fetchFrame(1, "spliced", offset, maxBytes)); err != nil {
		t.Fatal(err)
	}
	_, body := readAnswer(t, c)
	return body
}

// smallWindowConn dials addr with a 4 KiB receive buffer: a client that
// does not read leaves most of a large answer on the gateway's side.
func smallWindowConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: loopback.ReceiveBuffer(4096)}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// gauge reads a gauge (or counter) of the gateway's server, 0 when absent.
func gauge(g *gw, name string) float64 {
	var b bytes.Buffer
	g.set.WritePrometheus(&b)
	for _, line := range bytes.Split(b.Bytes(), []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte(name+" ")); ok {
			f, _ := strconv.ParseFloat(string(v), 64)
			return f
		}
	}
	return 0
}

// waitReleased waits until nothing is held of the memory budget and no
// pipe is in use.
func waitReleased(t *testing.T, g *gw) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		used, inUse := gauge(g, "floodgate_memory_used_bytes"), gauge(g, "floodgate_gateway_pipes_in_use")
		if used == 0 && inUse == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s the memory budget still holds %.0f bytes and %.0f pipes are in use", used, inUse)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSplicedAnswersPipelinedStayInOrderAndIntact: one connection
// pipelines 60 requests: Fetches whose answers are small (read into
// memory), up to a pipe (relayed through one) and larger than a pipe
// (read into memory), and ApiVersions between them. Every answer must come
// back in request order, and every Fetch answer must equal kfake's own
// answer to the same request byte for byte. Once the client leaves, the
// budget holds nothing and every pipe is back in the pool.
func TestSplicedAnswersPipelinedStayInOrderAndIntact(t *testing.T) {
	t.Parallel()
	g, direct := spliceGateway(t, 0, nil)
	sizes := []int32{1 << 10, 20 << 10, 64 << 10, 300 << 10, 900 << 10, 3 << 20}
	type req struct {
		fetch    bool
		offset   int64
		maxBytes int32
	}
	var reqs []req
	for i := 0; i < 60; i++ {
		if i%7 == 3 {
			reqs = append(reqs, req{})
			continue
		}
		r := req{fetch: true, offset: int64((i * 37) % 250), maxBytes: sizes[i%len(sizes)]}
		if r.maxBytes == 1<<10 {
			r.offset = spliceRecords // at the end: an answer without records
		}
		reqs = append(reqs, r)
	}
	want := map[int][]byte{}
	for i, r := range reqs {
		if r.fetch {
			want[i] = directFetch(t, direct, r.offset, r.maxBytes)
		}
	}
	spliced0 := gauge(g, "floodgate_gateway_fetch_spliced_total")

	c, err := net.Dial("tcp", g.srv.KafkaAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	var out []byte
	for i, r := range reqs {
		if r.fetch {
			out = append(out, fetchFrame(int32(i), "spliced", r.offset, r.maxBytes)...)
		} else {
			out = append(out, apiVersionsFrame0(int32(i))...)
		}
	}
	go func() { _, _ = c.Write(out) }()
	small, large := 0, 0
	for i, r := range reqs {
		corr, body := readAnswer(t, c)
		if corr != int32(i) {
			t.Fatalf("answer %d has correlation id %d: out of order", i, corr)
		}
		if !r.fetch {
			var av kmsg.ApiVersionsResponse
			if err := av.ReadFrom(body); err != nil || av.ErrorCode != 0 {
				t.Fatalf("answer %d (ApiVersions): %v, error code %d", i, err, av.ErrorCode)
			}
			continue
		}
		if !bytes.Equal(body, want[i]) {
			t.Fatalf("answer %d (Fetch from %d, %d bytes at most): %d bytes differ from kfake's %d", i, r.offset, r.maxBytes, len(body), len(want[i]))
		}
		switch {
		case len(body) < 16<<10:
			small++
		case len(body) > 1<<20:
			large++
		}
	}
	spliced := gauge(g, "floodgate_gateway_fetch_spliced_total") - spliced0
	t.Logf("%d Fetch answers: %.0f through a pipe, %d small and %d larger than a pipe read into memory", len(want), spliced, small, large)
	if spliced < 10 || small == 0 || large == 0 {
		t.Errorf("want spliced answers (got %.0f) mixed with small (%d) and over-pipe-size (%d) buffered ones", spliced, small, large)
	}
	c.Close()
	waitReleased(t, g)
}

// TestSplicedRecordsIntactThroughKgo: kgo consumers read every record
// through the gateway, byte for byte, with fetch limits from 48 KiB to
// 960 KiB (answers relayed through pipes and read into memory). With one
// pipe held by a client that does not read, the others' answers fall
// back to memory and stay intact; with eight, that client holds only its
// share (one) and the others' answers still go through pipes. When that
// client leaves, its pipes and budget are released.
func TestSplicedRecordsIntactThroughKgo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		pipes  int
		holder bool // a client that does not read its eight answers
	}{
		{name: "default pool", pipes: 0},
		{name: "one pipe held by a stuck client", pipes: 1, holder: true},
		{name: "a stuck client holds only its share of eight pipes", pipes: 8, holder: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, _ := spliceGateway(t, tc.pipes, nil)
			addr := g.srv.KafkaAddr()
			var holder net.Conn
			// A stuck client's answer holds its pipe only while it is
			// there: an answer that arrives in fragments too small for
			// the pipe's 256 slots is read into memory (pipe_full). A
			// holder left with no pipe is replaced, a few times; more
			// than its share fails at once.
			const pipeFull = `floodgate_gateway_fetch_buffered_total{reason="pipe_full"}`
			for attempt := 1; tc.holder; attempt++ {
				forwarded, overflowed0 := gauge(g, "floodgate_gateway_requests_forwarded_total"), gauge(g, pipeFull)
				splicedBefore := gauge(g, "floodgate_gateway_fetch_spliced_total")
				holder = smallWindowConn(t, addr)
				var out []byte
				for i := 0; i < 8; i++ {
					out = append(out, fetchFrame(int32(i), "spliced", 0, 900<<10)...)
				}
				if _, err := holder.Write(out); err != nil {
					t.Fatal(err)
				}
				deadline := time.Now().Add(30 * time.Second)
				for gauge(g, "floodgate_gateway_requests_forwarded_total") < forwarded+8 ||
					(gauge(g, "floodgate_gateway_pipes_in_use") < 1 && gauge(g, pipeFull) == overflowed0 &&
						gauge(g, "floodgate_gateway_fetch_spliced_total") == splicedBefore) {
					if time.Now().After(deadline) {
						t.Fatal("the stuck client's answers never held the pipe")
					}
					time.Sleep(10 * time.Millisecond)
				}
				time.Sleep(200 * time.Millisecond) // its other answers arrive meanwhile
				n := gauge(g, "floodgate_gateway_pipes_in_use")
				if n == 1 {
					break
				}
				overflowed := gauge(g, pipeFull) - overflowed0
				if n != 0 || attempt == 5 {
					t.Fatalf("the stuck client holds %.0f pipes of %d, want 1 (answers that overflowed a pipe: %.0f, attempt %d)", n, tc.pipes, overflowed, attempt)
				}
				t.Logf("attempt %d: the stuck client holds no pipe (answers that overflowed one: %.0f); a new holder", attempt, overflowed)
				holder.Close()
				waitReleased(t, g)
			}
			spliced0 := gauge(g, "floodgate_gateway_fetch_spliced_total")
			// The consumers share the stuck client's IP: with the only pipe
			// held, theirs are refused it for that IP's share (a quarter
			// of the pool, at least 1) before the pool is looked at.
			wantOfPipe := func() float64 {
				return gauge(g, `floodgate_gateway_fetch_buffered_total{reason="no_pipe"}`) + gauge(g, `floodgate_gateway_fetch_buffered_total{reason="ip_share"}`)
			}
			noPipe0 := wantOfPipe()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			for c := 0; c < 3; c++ {
				cl := client(t, addr, kgo.ConsumeTopics("spliced"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
					kgo.FetchMaxBytes(int32(48<<10*(1+9*c))), kgo.FetchMaxPartitionBytes(int32(48<<10*(1+9*c))), kgo.FetchMaxWait(100*time.Millisecond))
				seen := make([]bool, spliceRecords)
				for got := 0; got < spliceRecords; {
					fs := cl.PollFetches(ctx)
					if ctx.Err() != nil {
						t.Fatalf("consumer %d: read %d of %d records", c, got, spliceRecords)
					}
					fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("consumer %d: fetch error: %v", c, err) })
					fs.EachRecord(func(r *kgo.Record) {
						i, err := strconv.Atoi(string(r.Key))
						switch {
						case err != nil || i < 0 || i >= spliceRecords:
							t.Fatalf("consumer %d: record with a corrupt key %q", c, r.Key)
						case !bytes.Equal(r.Value, answerValue(i)):
							t.Fatalf("consumer %d: record %d corrupt", c, i)
						case seen[i]:
							t.Fatalf("consumer %d: record %d read twice", c, i)
						}
						seen[i] = true
						got++
					})
				}
				cl.Close()
			}
			spliced := gauge(g, "floodgate_gateway_fetch_spliced_total") - spliced0
			noPipe := wantOfPipe() - noPipe0
			t.Logf("answers through a pipe: %.0f; read into memory for want of a pipe: %.0f", spliced, noPipe)
			if tc.holder && tc.pipes > 1 {
				if spliced == 0 {
					t.Error("with a stuck client holding its share, no other answer went through a pipe")
				}
				holder.Close()
			} else if tc.holder {
				if noPipe == 0 || spliced != 0 {
					t.Errorf("with the only pipe held, want every large answer read into memory: %.0f spliced, %.0f without a pipe", spliced, noPipe)
				}
				if held := gauge(g, "floodgate_memory_used_bytes"); held < 100<<10 {
					t.Errorf("the stuck client's answers are charged %.0f bytes of the budget, want its pipe's bytes", held)
				}
				holder.Close()
			} else if spliced == 0 {
				t.Error("no answer went through a pipe")
			}
			waitReleased(t, g)
		})
	}
}

// TestSplicedAnswersReleasedWhenClientClosesMidAnswer: a client pipelines
// eight Fetches of 900 KiB answers, reads a little and closes while its
// answers sit in pipes and half-written sockets. The budget must hold
// nothing afterwards and every pipe must be back in the pool or closed.
func TestSplicedAnswersReleasedWhenClientClosesMidAnswer(t *testing.T) {
	t.Parallel()
	g, _ := spliceGateway(t, 0, nil)
	c := smallWindowConn(t, g.srv.KafkaAddr())
	var out []byte
	for i := 0; i < 8; i++ {
		out = append(out, fetchFrame(int32(i), "spliced", int64(i*10), 900<<10)...)
	}
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	var buf [1000]byte
	if _, err := io.ReadFull(c, buf[:]); err != nil { // mid-answer
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for gauge(g, "floodgate_gateway_pipes_in_use") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no answer was held in a pipe")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("before the close: %.0f pipes in use, %.0f bytes held", gauge(g, "floodgate_gateway_pipes_in_use"), gauge(g, "floodgate_memory_used_bytes"))
	c.Close()
	waitReleased(t, g)
	if gauge(g, "floodgate_gateway_fetch_spliced_total") == 0 {
		t.Error("no answer went through a pipe")
	}
}

// cuttingBroker is an upstream broker (fakeBroker) that answers a Fetch
// with the first 200 KB of a 512 KiB answer, then closes the connection,
// or with stall keeps it open sending nothing more.
func cuttingBroker(t *testing.T, stall bool) string {
	return fakeBroker(t, func(c net.Conn, corr []byte) bool {
		out := make([]byte, 200_000)
		binary.BigEndian.PutUint32(out, 512<<10)
		copy(out[4:], corr)
		_, _ = c.Write(out)
		if stall {
			_, _ = io.Copy(io.Discard, c)
		}
		return false
	})
}

// fakeBroker is an upstream broker of one node and topic "cut": it
// answers ApiVersions and Metadata as Kafka does, and a Fetch with fetch
// (its correlation id given), which reports whether to go on serving the
// connection.
func fakeBroker(t *testing.T, fetch func(c net.Conn, corr []byte) bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	port := int32(ln.Addr().(*net.TCPAddr).Port)
	serve := func(c net.Conn) {
		defer c.Close()
		for {
			var lb [4]byte
			if _, err := io.ReadFull(c, lb[:]); err != nil {
				return
			}
			frame := make([]byte, binary.BigEndian.Uint32(lb[:]))
			if _, err := io.ReadFull(c, frame); err != nil {
				return
			}
			key, ver := int16(binary.BigEndian.Uint16(frame)), int16(binary.BigEndian.Uint16(frame[2:]))
			corr := frame[4:8]
			var resp kmsg.Response
			switch key {
			case 18:
				r := kmsg.NewPtrApiVersionsResponse()
				for _, k := range []struct{ key, max int16 }{{0, 9}, {1, 12}, {3, 12}, {18, 3}} {
					ak := kmsg.NewApiVersionsResponseApiKey()
					ak.ApiKey, ak.MaxVersion = k.key, k.max
					r.ApiKeys = append(r.ApiKeys, ak)
				}
				resp = r
			case 3:
				r := kmsg.NewPtrMetadataResponse()
				b := kmsg.NewMetadataResponseBroker()
				b.NodeID, b.Host, b.Port = 0, "127.0.0.1", port
				r.Brokers = []kmsg.MetadataResponseBroker{b}
				tp := kmsg.NewMetadataResponseTopic()
				tp.Topic = kmsg.StringPtr("cut")
				p := kmsg.NewMetadataResponseTopicPartition()
				p.Replicas, p.ISR = []int32{0}, []int32{0}
				tp.Partitions = []kmsg.MetadataResponseTopicPartition{p}
				r.Topics = []kmsg.MetadataResponseTopic{tp}
				resp = r
			case 1:
				if !fetch(c, corr) {
					return
				}
				continue
			default:
				return
			}
			resp.SetVersion(ver)
			out := append([]byte{0, 0, 0, 0}, corr...)
			if resp.IsFlexible() && key != 18 {
				out = append(out, 0)
			}
			out = resp.AppendTo(out)
			binary.BigEndian.PutUint32(out, uint32(len(out)-4))
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln.Addr().String()
}

// TestSplicedAnswerReleasedWhenUpstreamFailsMidAnswer: the upstream sends
// 200 KB of a 512 KiB Fetch answer (spliced into a pipe as it arrives),
// then closes the connection or stalls until the request times out. The
// client gets an error answer in order, the budget holds nothing
// afterwards, the half-filled pipe is closed rather than reused, and the
// event loop kept serving meanwhile (the splice runs in the upstream
// reader, not on the loop).
func TestSplicedAnswerReleasedWhenUpstreamFailsMidAnswer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stall bool
	}{
		{name: "upstream closes", stall: false},
		{name: "upstream stalls until the request times out", stall: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := cuttingBroker(t, tc.stall)
			tg := testserver.StartGateway(t, []string{up}, func(l *limits.Config) {
				l.MemoryLimitBytes, l.MemoryPerIPPercent = 1<<30, 100
			}, func(c *gateway.Config) { c.RequestTimeout = 1500 * time.Millisecond })
			g := &gw{srv: tg.Server, gw: tg.Gateway, set: tg.Metrics}
			c, err := net.Dial("tcp", g.srv.KafkaAddr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(append(fetchFrame(7, "cut", 0, 1<<20), apiVersionsFrame0(8)...)); err != nil {
				t.Fatal(err)
			}
			if tc.stall {
				// Mid-answer: the pipe holds what arrived, charged.
				deadline := time.Now().Add(5 * time.Second)
				for gauge(g, "floodgate_gateway_pipes_in_use") != 1 || gauge(g, "floodgate_memory_used_bytes") < 150_000 {
					if time.Now().After(deadline) {
						t.Fatalf("stalled mid-answer: %.0f pipes in use, %.0f bytes held; want 1 and the 200 KB spliced in",
							gauge(g, "floodgate_gateway_pipes_in_use"), gauge(g, "floodgate_memory_used_bytes"))
					}
					time.Sleep(10 * time.Millisecond)
				}
				// The loop serves another client meanwhile.
				start := time.Now()
				hc := http.Client{Timeout: time.Second}
				resp, err := hc.Get("http://" + g.srv.HTTPAddr() + "/health")
				if err != nil {
					t.Fatalf("/health while an upstream stalls mid-answer: %v", err)
				}
				resp.Body.Close()
				if d := time.Since(start); d > 500*time.Millisecond {
					t.Errorf("/health took %v while an upstream stalled mid-answer", d)
				}
			}
			corr, body := readAnswer(t, c)
			if corr != 7 {
				t.Fatalf("first answer has correlation id %d, want 7", corr)
			}
			var fr kmsg.FetchResponse
			fr.SetVersion(11)
			if err := fr.ReadFrom(body); err != nil {
				t.Fatalf("decode the Fetch answer: %v", err)
			}
			code := fr.ErrorCode
			if len(fr.Topics) > 0 && len(fr.Topics[0].Partitions) > 0 {
				code = fr.Topics[0].Partitions[0].ErrorCode
			}
			if code == 0 {
				t.Fatalf("the cut answer was answered without an error: %+v", fr)
			}
			if corr, _ := readAnswer(t, c); corr != 8 {
				t.Fatalf("second answer has correlation id %d, want 8", corr)
			}
			c.Close()
			waitReleased(t, g)
			// A pipe that filled short of its size (its slots taken by
			// small socket fragments, likelier on a loaded machine) was
			// read back into memory, emptied, before the cut was seen: it
			// goes back to the pool rightly. Otherwise it held bytes when
			// the upstream failed and must have been closed.
			overflowed := g.set.GetOrCreateCounter(`floodgate_gateway_fetch_buffered_total{reason="pipe_full"}`).Get()
			if open := gauge(g, "floodgate_gateway_pipes_open"); open != 0 && overflowed == 0 {
				t.Errorf("%.0f pipes open: the half-filled pipe went back to the pool", open)
			}
		})
	}
}

// TestTLSClientFetchesThroughTheGatewayWithoutPipes: a TLS client's
// answers are sealed by the loop, so they are read into memory, never
// spliced; its records arrive intact.
func TestTLSClientFetchesThroughTheGatewayWithoutPipes(t *testing.T) {
	t.Parallel()
	certs := testcerts.New(t)
	g, direct := spliceGateway(t, 0, func(c *loop.Config) {
		c.KafkaTLSListen, c.TLS = "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{certs.Server}}
	})
	c, err := tls.Dial("tcp", g.srv.KafkaTLSAddr(), certs.ClientConfig(false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	for i, mb := range []int32{64 << 10, 900 << 10, 300 << 10} {
		want := directFetch(t, direct, int64(i*50), mb)
		if _, err := c.Write(fetchFrame(int32(i), "spliced", int64(i*50), mb)); err != nil {
			t.Fatal(err)
		}
		corr, body := readAnswer(t, c)
		if corr != int32(i) || !bytes.Equal(body, want) {
			t.Fatalf("answer %d (correlation id %d, %d bytes) differs from kfake's (%d bytes)", i, corr, len(body), len(want))
		}
	}
	if n := gauge(g, "floodgate_gateway_fetch_spliced_total"); n != 0 {
		t.Errorf("%.0f answers to a TLS client went through a pipe", n)
	}
	c.Close()
	waitReleased(t, g)
}

// pieceAnswer is the answer frame the pieces broker sends: 60,000 bytes
// of a pattern after the length and correlation id.
func pieceAnswer(corr int32) []byte {
	out := make([]byte, 8+60_000)
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	binary.BigEndian.PutUint32(out[4:], uint32(corr))
	for i := 8; i < len(out); i++ {
		out[i] = byte(i*7) ^ byte(i>>10)
	}
	return out
}

// TestSplicedAnswerThatFillsItsPipeFallsBackToMemoryIntact: a pipe holds a
// page or a socket buffer's fragment per slot, so one of 64 KiB (16 slots)
// fills short of its size when the answer arrives in 1,000-byte pieces,
// one at a time. The bytes already in the pipe are read back, the rest
// read after them, and the client gets the answer byte for byte; the
// drained pipe goes back to the pool and nothing stays charged.
func TestSplicedAnswerThatFillsItsPipeFallsBackToMemoryIntact(t *testing.T) {
	t.Parallel()
	up := fakeBroker(t, func(c net.Conn, corr []byte) bool {
		out := pieceAnswer(int32(binary.BigEndian.Uint32(corr)))
		for off := 0; off < len(out); off += 1000 {
			if _, err := c.Write(out[off:min(off+1000, len(out))]); err != nil {
				return false
			}
			time.Sleep(time.Millisecond)
		}
		return true
	})
	tg := testserver.StartGateway(t, []string{up}, func(l *limits.Config) {
		l.MemoryLimitBytes, l.MemoryPerIPPercent = 1<<30, 100
	}, func(c *gateway.Config) { c.SplicePipeBytes = 64 << 10 })
	g := &gw{srv: tg.Server, gw: tg.Gateway, set: tg.Metrics}
	c, err := net.Dial("tcp", g.srv.KafkaAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(append(fetchFrame(3, "cut", 0, 1<<20), fetchFrame(4, "cut", 0, 1<<20)...)); err != nil {
		t.Fatal(err)
	}
	for _, corr := range []int32{3, 4} {
		got, body := readAnswer(t, c)
		want := pieceAnswer(corr)
		if got != corr || len(body) != len(want)-8 {
			t.Fatalf("answer with correlation id %d (want %d), %d bytes (want %d)", got, corr, len(body), len(want)-8)
		}
		if !bytes.Equal(body, want[8:]) {
			t.Fatalf("answer %d corrupt", corr)
		}
	}
	if n := gauge(g, `floodgate_gateway_fetch_buffered_total{reason="pipe_full"}`); n != 2 {
		t.Errorf("%.0f answers fell back for a full pipe, want 2", n)
	}
	c.Close()
	waitReleased(t, g)
	if open := gauge(g, "floodgate_gateway_pipes_open"); open != 1 {
		t.Errorf("%.0f pipes open, want the drained one back in the pool", open)
	}
}

// TestUpstreamClosedWhileThePipeIsFullIsSeenAtOnce: the broker sends an
// answer's first pieces (1,000 bytes each: about one pipe slot apiece)
// and closes its connection. When the pieces fill the 64 KiB pipe exactly,
// splice(2) answers EAGAIN for the pipe before it looks at the socket,
// and the end of file shows only to a read: without one, the reader (and
// every request pending on that upstream connection) waited for the
// request timeout (5 s here). The client must get its error answer at once,
// whatever the number of pieces that fill the pipe on this kernel.
func TestUpstreamClosedWhileThePipeIsFullIsSeenAtOnce(t *testing.T) {
	for pieces := 13; pieces <= 19; pieces++ {
		t.Run(strconv.Itoa(pieces), func(t *testing.T) {
			up := fakeBroker(t, func(c net.Conn, corr []byte) bool {
				out := pieceAnswer(int32(binary.BigEndian.Uint32(corr)))
				for i := 0; i < pieces; i++ {
					if _, err := c.Write(out[i*1000 : (i+1)*1000]); err != nil {
						return false
					}
					time.Sleep(time.Millisecond)
				}
				time.Sleep(50 * time.Millisecond) // the reader waits on a full pipe
				return false                      // close
			})
			tg := testserver.StartGateway(t, []string{up}, func(l *limits.Config) {
				l.MemoryLimitBytes, l.MemoryPerIPPercent = 1<<30, 100
			}, func(c *gateway.Config) { c.SplicePipeBytes = 64 << 10 })
			g := &gw{srv: tg.Server, gw: tg.Gateway, set: tg.Metrics}
			c, err := net.Dial("tcp", g.srv.KafkaAddr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			start := time.Now()
			if _, err := c.Write(fetchFrame(3, "cut", 0, 1<<20)); err != nil {
				t.Fatal(err)
			}
			if got, _ := readAnswer(t, c); got != 3 {
				t.Fatalf("answer with correlation id %d, want 3", got)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Fatalf("the broker's close was seen after %v (the request timeout is 5 s)", took.Round(time.Millisecond))
			}
			c.Close()
			waitReleased(t, g)
		})
	}
}
