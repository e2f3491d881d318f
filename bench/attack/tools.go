package attack

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// The building blocks of attacks: connections held open, each doing
// something hostile, and loops of short connections.

// hold opens n connections to listener l of t, perIP from each attacker
// address starting with AttackerIP(firstIP), and runs f on each until ctx
// ends; every connection is closed when hold returns. It fails only when
// no connection could be opened at all.
func hold(ctx context.Context, t *Target, l Listener, n, perIP, firstIP int, f func(ctx context.Context, c net.Conn)) error {
	dial := func(ctx context.Context, ip net.IP) (net.Conn, error) { return Dial(ctx, ip, t.Addr(l)) }
	return holdDialed(ctx, dial, n, perIP, firstIP, f)
}

// holdDialed is hold with each connection opened by dial from its
// attacker address.
func holdDialed(ctx context.Context, dial func(ctx context.Context, ip net.IP) (net.Conn, error), n, perIP, firstIP int, f func(ctx context.Context, c net.Conn)) error {
	var wg sync.WaitGroup
	var opened atomic.Int64
	var lastErr atomic.Value
	sem := make(chan struct{}, 32) // connects in flight
	for i := 0; i < n && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := dial(ctx, AttackerIP(firstIP+i/perIP))
			<-sem
			if err != nil {
				lastErr.Store(err)
				return
			}
			opened.Add(1)
			stop := closeOnDone(ctx, c)
			defer stop()
			f(ctx, c)
			<-ctx.Done()
		}(i)
	}
	wg.Wait()
	if opened.Load() == 0 && n > 0 {
		err, _ := lastErr.Load().(error)
		return fmt.Errorf("no connection opened: %v", err)
	}
	return nil
}

// closeOnDone closes c when ctx ends, which also unblocks a write or read
// stuck on it; the returned function closes c at once and waits.
func closeOnDone(ctx context.Context, c net.Conn) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case <-ctx.Done():
		case <-done:
		}
		c.Close()
	}()
	return func() { close(done); <-finished }
}

// repeat runs f in workers goroutines, again and again, until ctx ends.
func repeat(ctx context.Context, workers int, f func(ctx context.Context, worker int)) error {
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for ctx.Err() == nil {
				f(ctx, w)
			}
		}(w)
	}
	wg.Wait()
	return nil
}

// once dials from ip, runs f on the connection and closes it; a failed
// dial pauses a little so a refusing server is not spun against.
func once(ctx context.Context, ip net.IP, addr string, f func(ctx context.Context, c net.Conn)) {
	c, err := Dial(ctx, ip, addr)
	if err != nil {
		sleep(ctx, 10*time.Millisecond)
		return
	}
	stop := closeOnDone(ctx, c)
	defer stop()
	f(ctx, c)
}

// trickle writes one byte of b every interval until ctx ends or a write
// fails.
func trickle(ctx context.Context, c net.Conn, interval time.Duration) {
	for ctx.Err() == nil {
		sleep(ctx, interval)
		if _, err := c.Write([]byte{'0'}); err != nil {
			return
		}
	}
}

// stream writes zeros as fast as the peer takes them until ctx ends or a
// write fails.
func stream(ctx context.Context, c net.Conn) {
	buf := make([]byte, 64<<10)
	for ctx.Err() == nil {
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

// drainFor reads and discards what c sends for at most d.
func drainFor(c net.Conn, d time.Duration) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, _ = io.Copy(io.Discard, c)
}

// kafkaHead is the start of a Kafka request frame that announces size
// bytes after the length: api key, version, correlation id, client id.
func kafkaHead(size int32, key, version int16, corr int32) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(size))
	b = binary.BigEndian.AppendUint16(b, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	const id = "attacker"
	b = binary.BigEndian.AppendUint16(b, uint16(len(id)))
	return append(b, id...)
}

// httpHead is a request head with the given extra header lines.
func httpHead(method, path string, headers ...string) []byte {
	b := fmt.Appendf(nil, "%s %s HTTP/1.1\r\nHost: attack\r\n", method, path)
	for _, h := range headers {
		b = append(b, h...)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}

// writeAll writes b, reporting whether it all went out.
func writeAll(c net.Conn, b []byte) bool {
	_, err := c.Write(b)
	return err == nil
}
