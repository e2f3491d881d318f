package bench_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floodgate/floodgate/bench"
	"github.com/floodgate/floodgate/internal/testserver"
)

// slowHTTP is a raw HTTP/1.1 server on 127.0.0.1 that answers each request
// after delay, one at a time per connection, with a Content-Length of 5
// (no body for HEAD, as RFC 9110 says), and records the most requests a
// connection ever had outstanding (sent, not yet answered).
type slowHTTP struct {
	ln          net.Listener
	delay       time.Duration
	maxPending  atomic.Int64
	wg          sync.WaitGroup
	mu          sync.Mutex
	connections []net.Conn
}

func startSlowHTTP(t *testing.T, delay time.Duration) *slowHTTP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &slowHTTP{ln: ln, delay: delay}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.connections {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *slowHTTP) url() string { return "http://" + s.ln.Addr().String() + "/x" }

func (s *slowHTTP) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.connections = append(s.connections, c)
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

// serve reads request heads as they come (counting them) and answers them
// in order from a second goroutine, each after delay.
func (s *slowHTTP) serve(c net.Conn) {
	defer s.wg.Done()
	var pending atomic.Int64
	heads := make(chan bool, 1024) // true: HEAD
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for head := range heads {
			time.Sleep(s.delay)
			body := "hello"
			if head {
				body = ""
			}
			pending.Add(-1) // before the client can see the answer
			if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n%s", body); err != nil {
				return
			}
		}
	}()
	defer close(heads)
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		head := strings.HasPrefix(line, "HEAD ")
		for {
			h, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if h == "\r\n" {
				break
			}
		}
		n := pending.Add(1)
		for m := s.maxPending.Load(); n > m && !s.maxPending.CompareAndSwap(m, n); m = s.maxPending.Load() {
		}
		heads <- head
	}
}

// TestHTTPPipelineBoundsRequestsOnTheWire: --pipeline N puts at most N
// requests on a connection at once (it let N+1 out: --pipeline 1, "no
// pipelining", had 2).
func TestHTTPPipelineBoundsRequestsOnTheWire(t *testing.T) {
	for _, pipeline := range []int{1, 3} {
		t.Run(fmt.Sprint(pipeline), func(t *testing.T) {
			s := startSlowHTTP(t, 5*time.Millisecond)
			r, err := bench.RunHTTP(context.Background(), bench.HTTPConfig{URL: s.url(), Connections: 1, Rate: 1000,
				Duration: 300 * time.Millisecond, Pipeline: pipeline, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if got := s.maxPending.Load(); got != int64(pipeline) {
				t.Errorf("at most %d requests outstanding on the connection, want %d (%d completed)", got, pipeline, r.Completed)
			}
		})
	}
}

// TestHTTPAchievedRateCountsOnlyTheRun: answers that arrive after the run
// (a backlog an overloaded server clears late) are not credited to its
// rate. The server answers 100 requests/s; 1,000/s are offered for 1 s.
func TestHTTPAchievedRateCountsOnlyTheRun(t *testing.T) {
	s := startSlowHTTP(t, 10*time.Millisecond)
	r, err := bench.RunHTTP(context.Background(), bench.HTTPConfig{URL: s.url(), Connections: 1, Rate: 1000,
		Duration: time.Second, Pipeline: 4, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// At most 100 answers fit in the second; counting the drain gave about
	// 300/s here (the backlog answered within the 2 s timeout).
	if r.AchievedRPS > 150 || r.GoodputRPS > r.AchievedRPS {
		t.Errorf("achieved %.0f/s, goodput %.0f/s from a server that answers 100/s (%d completed in all)",
			r.AchievedRPS, r.GoodputRPS, r.Completed)
	}
	if r.Completed <= int64(r.AchievedRPS) {
		t.Errorf("completed %d: the answers after the run are not counted at all", r.Completed)
	}
}

// TestHTTPHeadResponsesHaveNoBody: a HEAD response's Content-Length is not
// followed by a body; reading one would eat the next response.
func TestHTTPHeadResponsesHaveNoBody(t *testing.T) {
	s := startSlowHTTP(t, 0)
	r, err := bench.RunHTTP(context.Background(), bench.HTTPConfig{URL: s.url(), Connections: 1, Rate: 200,
		Duration: 300 * time.Millisecond, Pipeline: 1, Method: "HEAD", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.ErrorCount() != 0 || r.Status[200] < 40 {
		t.Errorf("HEAD: status %v errors %v", r.Status, r.Errors)
	}
}

// shortTopic starts a floodgate whose topic "short" holds 100 records
// over 2 partitions and returns its brokers.
func shortTopic(t *testing.T) []string {
	t.Helper()
	brokers := []string{testserver.Start(t).KafkaAddr()}
	if _, err := bench.RunKafka(context.Background(), bench.KafkaConfig{Mode: "produce", Brokers: brokers, Clients: 2,
		RecordSize: 64, Records: 100, Acks: 1, Topic: "short"}); err != nil {
		t.Fatal(err)
	}
	return brokers
}

// TestKafkaConsumeOfAShortTopicStopsAtItsDeadline: --records more than the
// topic holds, with --duration: the run ends at the deadline with what it
// read (it waited 30 s more, and counted them).
func TestKafkaConsumeOfAShortTopicStopsAtItsDeadline(t *testing.T) {
	brokers := shortTopic(t)
	start := time.Now()
	r, err := bench.RunKafka(context.Background(), bench.KafkaConfig{Mode: "consume", Brokers: brokers, Clients: 2,
		RecordSize: 64, Records: 200, Duration: time.Second, Topic: "short", Preloaded: true})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second || r.DurationS > 1.5 || r.Records != 100 {
		t.Errorf("took %v, duration %.1f s, %d records; want about 1 s and 100", took, r.DurationS, r.Records)
	}
}

// TestKafkaConsumeOfAShortTopicFailsWhenRecordsStop: without --duration,
// records that never come fail the run once none arrived for the idle
// timeout (it waited forever).
func TestKafkaConsumeOfAShortTopicFailsWhenRecordsStop(t *testing.T) {
	brokers := shortTopic(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := bench.RunKafka(ctx, bench.KafkaConfig{Mode: "consume", Brokers: brokers, Clients: 2,
		RecordSize: 64, Records: 200, Topic: "short", Preloaded: true, IdleTimeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "consumed 100 of 200 records; none arrived for 1s") {
		t.Fatalf("error %v, want one saying 100 of 200 records came, then none for 1 s", err)
	}
}

// TestKafkaRunsOnAnExistingTopic: produce may reuse a topic; consume and
// roundtrip may not (they would read and count its old records).
func TestKafkaRunsOnAnExistingTopic(t *testing.T) {
	srv := testserver.Start(t)
	brokers := []string{srv.KafkaAddr()}
	tests := []struct {
		mode, wantErr string
	}{
		{"produce", ""},
		{"produce", ""},
		{"roundtrip", "exists"},
		{"consume", "exists"},
	}
	for _, tt := range tests {
		_, err := bench.RunKafka(context.Background(), bench.KafkaConfig{Mode: tt.mode, Brokers: brokers, Clients: 1,
			RecordSize: 64, Records: 50, Acks: 1, Topic: "reused"})
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s on an existing topic: %v", tt.mode, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s on an existing topic: error %v, want one saying it %s", tt.mode, err, tt.wantErr)
		}
	}
}
