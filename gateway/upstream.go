package gateway

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/floodgate/floodgate/codec/kafka"
)

// errUpstreamClosed fails requests pending on a connection that broke.
var errUpstreamClosed = errors.New("upstream connection closed")

// errUpstreamTimeout fails a request the upstream did not answer in time.
var errUpstreamTimeout = errors.New("upstream request timed out")

// maxUpstreamFrame bounds a response frame read from upstream.
const maxUpstreamFrame = 1 << 30

// responseFunc receives a whole response frame (length prefix included) or
// an error.
type responseFunc func(frame []byte, err error)

type pendingReq struct {
	cb    responseFunc
	timer *time.Timer
}

// upstreamConn is one connection to an upstream broker. Requests are
// pipelined with correlation ids of its own; a reader goroutine matches
// responses. Any error (or a request timing out) closes it and fails every
// pending request, so nothing waits forever.
type upstreamConn struct {
	node    int32
	addr    string
	nc      net.Conn
	timeout time.Duration

	wmu sync.Mutex // serialises writes

	mu      sync.Mutex
	pending map[int32]*pendingReq
	corr    int32
	dead    bool
	clients int // client connections assigned (guarded by the pool's lock)
}

func dialUpstream(node int32, addr string, dialTimeout, reqTimeout time.Duration, tlsCfg *tls.Config) (*upstreamConn, error) {
	nc, err := dialNet(addr, dialTimeout, tlsCfg)
	if err != nil {
		return nil, fmt.Errorf("dial upstream broker %d at %s: %w", node, addr, err)
	}
	u := &upstreamConn{node: node, addr: addr, nc: nc, timeout: reqTimeout, pending: map[int32]*pendingReq{}}
	go u.readLoop()
	return u, nil
}

// isDead reports whether the connection failed.
func (u *upstreamConn) isDead() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.dead
}

// send forwards a request frame (after its length prefix) and calls cb
// with the response, unless expectResponse is false (Produce acks=0). The
// frame's correlation id is overwritten.
func (u *upstreamConn) send(frame []byte, expectResponse bool, timeout time.Duration, cb responseFunc) error {
	u.mu.Lock()
	if u.dead {
		u.mu.Unlock()
		return errUpstreamClosed
	}
	u.corr++
	corr := u.corr
	if expectResponse {
		p := &pendingReq{cb: cb}
		p.timer = time.AfterFunc(timeout, func() { u.expire(corr) })
		u.pending[corr] = p
	}
	u.mu.Unlock()

	binary.BigEndian.PutUint32(frame[4:], uint32(corr))
	var prefix [4]byte
	binary.BigEndian.PutUint32(prefix[:], uint32(len(frame)))
	bufs := net.Buffers{prefix[:], frame}
	u.wmu.Lock()
	_ = u.nc.SetWriteDeadline(time.Now().Add(u.timeout))
	_, err := bufs.WriteTo(u.nc)
	u.wmu.Unlock()
	if err != nil {
		u.fail(fmt.Errorf("write to upstream broker %d: %w", u.node, err))
		return err
	}
	return nil
}

// expire fails a request that got no answer in time and closes the
// connection: Kafka answers in order, so everything behind it is stuck too.
func (u *upstreamConn) expire(corr int32) {
	u.mu.Lock()
	_, ok := u.pending[corr]
	u.mu.Unlock()
	if ok {
		u.fail(errUpstreamTimeout)
	}
}

// fail closes the connection and fails every pending request with err.
func (u *upstreamConn) fail(err error) {
	u.mu.Lock()
	if u.dead {
		u.mu.Unlock()
		return
	}
	u.dead = true
	pending := u.pending
	u.pending = map[int32]*pendingReq{}
	u.mu.Unlock()
	_ = u.nc.Close()
	for _, p := range pending {
		p.timer.Stop()
		p.cb(nil, err)
	}
}

// close ends the connection, failing what is pending.
func (u *upstreamConn) close() { u.fail(errUpstreamClosed) }

func (u *upstreamConn) readLoop() {
	var head [8]byte
	for {
		_ = u.nc.SetReadDeadline(time.Time{})
		if _, err := io.ReadFull(u.nc, head[:]); err != nil {
			u.fail(fmt.Errorf("read from upstream broker %d: %w", u.node, err))
			return
		}
		n := int(binary.BigEndian.Uint32(head[:4]))
		if n < 4 || n > maxUpstreamFrame {
			u.fail(fmt.Errorf("upstream broker %d sent a frame of %d bytes", u.node, n))
			return
		}
		frame := make([]byte, kafka.LengthSize+n)
		copy(frame, head[:])
		if _, err := io.ReadFull(u.nc, frame[8:]); err != nil {
			u.fail(fmt.Errorf("read from upstream broker %d: %w", u.node, err))
			return
		}
		corr := int32(binary.BigEndian.Uint32(frame[4:]))
		u.mu.Lock()
		p, ok := u.pending[corr]
		delete(u.pending, corr)
		u.mu.Unlock()
		if !ok {
			continue // expired already
		}
		p.timer.Stop()
		p.cb(frame, nil)
	}
}
