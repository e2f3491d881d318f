package loop

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sys/unix"

	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/limits"
)

// A connection refused by a limit (--max-connections,
// --max-connections-per-ip, the memory budget) is answered before it is
// closed, so that its client logs a reason and backs off instead of seeing
// a bare EOF: a Kafka connection's first request gets an error in its
// API's shape, an HTTP connection a 503 with Retry-After and the JSON body
// naming the limit.
//
// The Kafka error is THROTTLING_QUOTA_EXCEEDED (89), chosen from what the
// clients do with a non-zero ApiVersions error code (their first request):
//   - franz-go (kgo broker.go): the connection's init returns
//     kerr.ThrottlingQuotaExceeded, retriable in kerr, so the request is
//     retried with the client's backoff; the error names a quota.
//   - sarama (broker.go Open): logs "Error in ApiVersionsResponse ... kafka
//     server: The throttling quota has been exceeded", retries ApiVersions
//     v0 on the same connection, meets its close and reconnects after its
//     backoff.
//   - kafka-go: Error(89).Temporary() is true; writers and readers retry.
//   - librdkafka (rd_kafka_broker_handle_ApiVersion): any code other than
//     UNSUPPORTED_VERSION and INVALID_REQUEST fails the connection with a
//     WARN "ApiVersionRequest failed: Broker: Throttling quota has been
//     exceeded" and reconnects after reconnect.backoff.ms (exponential).
//   - kafkajs (broker apiVersions): any code but UNSUPPORTED_VERSION is
//     thrown as a KafkaJSProtocolError; 89 is retriable, so the retrier
//     backs off and reconnects.
//
// REQUEST_TIMED_OUT (7) and NETWORK_EXCEPTION (13) are retriable in all five
// too, but send an operator after the network; BROKER_NOT_AVAILABLE (8) is
// not temporary in kafka-go. A quota error says "a limit of the server",
// which is what happened.
//
// Under a flood this costs the refused connection's descriptor and a slot of
// a fixed table for at most refuseTime: the first request is peeked
// (MSG_PEEK, at most refuseReadMax bytes, left in the kernel's buffer
// meanwhile), one goroutine with its own epoll serves every slot, and when
// the table is full (or descriptors are short) a refused connection is
// closed at once, as before.
const (
	// RefuseKafkaCode is the Kafka error code of a refused connection.
	RefuseKafkaCode = kafka.ErrThrottlingQuotaExceeded
	// refuseSlots bounds how many refused connections wait for their answer.
	refuseSlots = 256
	// refuseTime bounds how long a refused connection is kept.
	refuseTime = time.Second
	// refuseReadMax bounds the bytes read from a refused connection: the
	// first request (peeked) and what follows it until the client closes.
	refuseReadMax = 4 << 10
	// refusePoll is how often deadlines are checked when nothing happens.
	refusePoll = 100 * time.Millisecond
)

// refusal is one refused connection waiting for its first request.
type refusal struct {
	fd       int
	gen      int32 // tells a slot's uses apart in epoll events
	kind     listenerKind
	answered bool
	read     int   // bytes consumed after the answer
	deadline int64 // unix nanos
	// What the answer names.
	limit      string
	configured int64
	actual     int64
}

// refuser answers refused connections from one goroutine and one epoll.
type refuser struct {
	s    *Server
	epfd int
	// fdRoom is how many descriptors refused connections may hold beside
	// the server's own connections: the open-files limit at start minus
	// limits.ReservedFDs. Holding a refused connection must never make
	// accept or a park's dup fail.
	fdRoom int64

	mu    sync.Mutex
	slots [refuseSlots]refusal
	free  []int32
	used  atomic.Int32

	stop chan struct{}
	done chan struct{}

	// Used by the refuser goroutine only.
	buf [refuseReadMax]byte
	out []byte
}

// newRefuser creates the epoll instance; run serves it.
func newRefuser(s *Server) (*refuser, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("refuser epoll: %w", err)
	}
	r := &refuser{s: s, epfd: epfd, stop: make(chan struct{}), done: make(chan struct{})}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil {
		r.fdRoom = int64(rl.Cur) - limits.ReservedFDs
	}
	r.free = make([]int32, refuseSlots)
	for i := range r.free {
		r.free[i] = int32(refuseSlots - 1 - i)
		r.slots[i].fd = -1
	}
	return r, nil
}

// holdConn takes a refused socket accepted by Go's net package. It reports
// false when the socket was closed at once (no slot, no descriptor).
func (r *refuser) holdConn(nc *net.TCPConn, kind listenerKind, limit string, configured, actual int64) bool {
	if !r.room() {
		_ = nc.Close()
		r.s.met.refusedUnanswered.Inc()
		return false
	}
	fd := -1
	if raw, err := nc.SyscallConn(); err == nil {
		_ = raw.Control(func(f uintptr) {
			if d, err := unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0); err == nil {
				fd = d
			}
		})
	}
	// Go's poller forgets its own descriptor; the duplicate keeps the
	// socket (O_NONBLOCK is shared by both).
	_ = nc.Close()
	if fd < 0 {
		r.s.met.refusedUnanswered.Inc()
		return false
	}
	return r.hold(fd, kind, limit, configured, actual)
}

// holdGnet takes a refused connection from its event loop (in OnOpen,
// before gnet read anything from it): it keeps a duplicate of the socket,
// and the caller closes gnet's connection.
func (r *refuser) holdGnet(gc gnet.Conn, kind listenerKind, limit string, configured, actual int64) bool {
	if !r.room() {
		r.s.met.refusedUnanswered.Inc()
		return false
	}
	fd, err := gc.Dup()
	if err != nil {
		r.s.met.refusedUnanswered.Inc()
		return false
	}
	return r.hold(fd, kind, limit, configured, actual)
}

// room reports whether one more refused connection may be held.
func (r *refuser) room() bool {
	n := int64(r.used.Load())
	if n >= refuseSlots {
		return false
	}
	return r.fdRoom <= 0 || r.s.active.Load()+n < r.fdRoom
}

// hold registers fd, a refused socket floodgate owns, to be answered. It
// closes fd when there is no room.
func (r *refuser) hold(fd int, kind listenerKind, limit string, configured, actual int64) bool {
	r.mu.Lock()
	if len(r.free) == 0 || r.isStopped() {
		r.mu.Unlock()
		_ = unix.Close(fd)
		r.s.met.refusedUnanswered.Inc()
		return false
	}
	i := r.free[len(r.free)-1]
	r.free = r.free[:len(r.free)-1]
	sl := &r.slots[i]
	*sl = refusal{fd: fd, gen: sl.gen + 1, kind: kind, limit: limit, configured: configured, actual: actual,
		deadline: time.Now().Add(refuseTime).UnixNano()}
	r.used.Add(1)
	// Edge-triggered: the request is peeked, not consumed, so a
	// level-triggered descriptor would stay ready until it completes.
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: i, Pad: sl.gen}
	if err := unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		r.releaseLocked(i)
		r.mu.Unlock()
		r.s.met.refusedUnanswered.Inc()
		return false
	}
	r.mu.Unlock()
	return true
}

func (r *refuser) isStopped() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// releaseLocked closes slot i's socket and frees the slot.
func (r *refuser) releaseLocked(i int32) {
	sl := &r.slots[i]
	if sl.fd < 0 {
		return
	}
	_ = unix.EpollCtl(r.epfd, unix.EPOLL_CTL_DEL, sl.fd, nil)
	_ = unix.Close(sl.fd)
	sl.fd = -1
	sl.limit = ""
	r.free = append(r.free, i)
	r.used.Add(-1)
}

// run serves the refused connections until close.
func (r *refuser) run() {
	defer close(r.done)
	events := make([]unix.EpollEvent, 64)
	for !r.isStopped() {
		n, err := unix.EpollWait(r.epfd, events, int(refusePoll/time.Millisecond))
		if err != nil && !errors.Is(err, unix.EINTR) {
			r.s.warn.Warn("refuser", "refused-connection poller failed; refused connections close at once", "error", err.Error())
			break
		}
		now := time.Now().UnixNano()
		r.mu.Lock()
		for _, ev := range events[:max(n, 0)] {
			i := ev.Fd
			if i < 0 || i >= refuseSlots || r.slots[i].fd < 0 || r.slots[i].gen != ev.Pad {
				continue
			}
			if !r.serve(&r.slots[i], ev.Events) {
				r.releaseLocked(i)
			}
		}
		for i := range r.slots {
			if r.slots[i].fd >= 0 && r.slots[i].deadline <= now {
				if !r.slots[i].answered {
					r.s.met.refusedTimedOut.Inc()
				}
				r.releaseLocked(int32(i))
			}
		}
		r.mu.Unlock()
	}
	r.mu.Lock()
	for i := range r.slots {
		r.releaseLocked(int32(i))
	}
	r.mu.Unlock()
	_ = unix.Close(r.epfd)
}

// close stops run and closes every held socket, within about refusePoll.
func (r *refuser) close() {
	r.mu.Lock()
	if !r.isStopped() {
		close(r.stop)
	}
	r.mu.Unlock()
	<-r.done
}

// serve advances one refused connection; false closes it.
func (r *refuser) serve(sl *refusal, events uint32) bool {
	if !sl.answered {
		n, _, err := unix.Recvfrom(sl.fd, r.buf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0
		case err != nil || n == 0:
			return false
		}
		answer, ok := r.answer(sl, r.buf[:n])
		if !ok {
			// Not a whole request head yet: wait for more bytes, unless
			// the window is full or the peer is gone.
			return n < refuseReadMax && events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0
		}
		if answer == nil {
			return false
		}
		if w, err := unix.Write(sl.fd, answer); err != nil || w != len(answer) {
			return false
		}
		sl.answered = true
		r.s.met.refusedAnswered[sl.kind].Inc()
		// FIN after the answer, then read until the client closes: closing
		// with its request unread would send RST, which can destroy the
		// answer before the client reads it.
		if err := unix.Shutdown(sl.fd, unix.SHUT_WR); err != nil {
			return false
		}
	}
	for {
		// Never more than refuseReadMax (+1 to see that it is exceeded).
		n, err := unix.Read(sl.fd, r.buf[:min(refuseReadMax, refuseReadMax-sl.read+1)])
		switch {
		case errors.Is(err, unix.EAGAIN):
			return true
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil || n == 0:
			return false
		}
		if sl.read += n; sl.read > refuseReadMax {
			return false
		}
	}
}

// answer builds the answer to the request head in b. ok is false while b
// does not hold a whole head yet; a nil answer with ok closes without one
// (not a request floodgate can answer).
func (r *refuser) answer(sl *refusal, b []byte) (answer []byte, ok bool) {
	if sl.kind == kindHTTP {
		if !bytes.Contains(b, []byte("\r\n\r\n")) && len(b) < refuseReadMax {
			return nil, false
		}
		r.out = AppendHTTPResponse(r.out[:0], refusedHTTP(sl.limit, sl.configured, sl.actual))
		return r.out, true
	}
	if len(b) < kafka.LengthSize {
		return nil, false
	}
	var h kafka.Header
	err := kafka.ParseHeader(b[kafka.LengthSize:], kafka.FrameLength(b), &h)
	if errors.Is(err, kafka.ErrShortHeader) {
		return nil, false
	}
	if err != nil {
		return nil, true
	}
	resp := refusedKafka(&h)
	if resp == nil {
		return nil, true
	}
	r.out = kafka.AppendResponse(r.out[:0], &h, resp)
	return r.out, true
}

// refusedKafka is the answer to the first request of a refused Kafka
// connection: its API's error shape with RefuseKafkaCode, or nil when the
// API cannot carry a top-level error (or kmsg does not know the version).
func refusedKafka(h *kafka.Header) kmsg.Response {
	req := kmsg.RequestForKey(h.APIKey)
	if req == nil || h.APIVersion > req.MaxVersion() {
		return nil
	}
	resp, ok := kafka.TopLevelErrorResponse(h.APIKey, h.APIVersion, RefuseKafkaCode)
	if !ok {
		return nil
	}
	return resp
}

// refusedHTTP is the answer of a refused HTTP connection.
func refusedHTTP(limit string, configured, actual int64) *HTTPResponse {
	return &HTTPResponse{Status: 503, ContentType: "application/json", Close: true,
		Header: [][2]string{{"Retry-After", "1"}},
		Body:   LimitErrorBody(limit, configured, actual, "connection refused: "+limit+" reached")}
}
