package loop_test

import (
	"bufio"
	"encoding/binary"
	"io"
	"testing"

	"github.com/floodgate/floodgate/internal/testserver"
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
