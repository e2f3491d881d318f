package loop_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
)

// BenchmarkKafkaRequestPath measures one request's trip through the hot
// path over a real loopback socket: frame peek, header parse, dispatch to
// the pool, decode, handle (ApiVersions), encode, ordered write. Requests
// are pipelined 32 deep, as clients do. allocs/op counts the whole process
// (client included); the server's own share is the difference to the
// client-only baseline in BenchmarkKafkaClientOnly.
func BenchmarkKafkaRequestPath(b *testing.B) {
	srv := testserver.Start(b)
	c := dialFrom(b, "", srv.KafkaAddr())
	req := request(apiVersions(3), 1)
	const depth = 32
	batch := make([]byte, 0, len(req)*depth)
	for i := 0; i < depth; i++ {
		batch = append(batch, req...)
	}
	br := bufio.NewReaderSize(c, 1<<16)
	var lenBuf [4]byte
	skip := make([]byte, 1<<16)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += depth {
		if _, err := c.Write(batch); err != nil {
			b.Fatal(err)
		}
		for i := 0; i < depth; i++ {
			if _, err := io.ReadFull(br, lenBuf[:]); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(br, skip[:binary.BigEndian.Uint32(lenBuf[:])]); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkHTTPHealth measures GET /health through the real loop over a
// loopback socket (read, parse, route, admission, encode, write), with
// every default limit on: 32 requests pipelined per write as a
// pipelining client does, and one at a time as wrk does. allocs/op counts
// the whole process (the client allocates nothing per request).
func BenchmarkHTTPHealth(b *testing.B) {
	for _, depth := range []int{1, 32} {
		b.Run(fmt.Sprintf("pipelined=%d", depth), func(b *testing.B) {
			srv := testserver.Start(b)
			c := dialFrom(b, "", srv.HTTPAddr())
			req := "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
			batch := []byte(strings.Repeat(req, depth))
			if _, err := c.Write([]byte(req)); err != nil {
				b.Fatal(err)
			}
			first := make([]byte, 4096)
			one, err := c.Read(first)
			if err != nil {
				b.Fatal(err)
			}
			answers := make([]byte, one*depth)
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; done += depth {
				if _, err := c.Write(batch); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, answers); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLargeFrameReceive measures receiving a 1 MiB frame written in
// one piece (an ApiVersions v0 whose padding is ignored, as a large
// Produce arrives from a client that batches) and answering it. B/op is
// the process's allocation per frame: the frame's buffer is sized to what
// has arrived (gnet's buffer plus the socket's queue), so a frame that
// arrived whole costs one buffer of its size rather than a series of
// doublings from 64 KiB, each copying the last.
func BenchmarkLargeFrameReceive(b *testing.B) {
	srv := testserver.Start(b, withLimits(func(l *limits.Config) { l.MemoryPerIPPercent = 100 }))
	c := dialFrom(b, "", srv.KafkaAddr())
	const size = 1 << 20
	frame := append(frameHead(size), make([]byte, size-10)...)
	br := bufio.NewReaderSize(c, 1<<16)
	var lenBuf [4]byte
	skip := make([]byte, 1<<16)
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(frame); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(br, lenBuf[:]); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(br, skip[:binary.BigEndian.Uint32(lenBuf[:])]); err != nil {
			b.Fatal(err)
		}
	}
}
