package recordbatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestXerialFramingIsSplitIntoItsBlocksAndCutsAreRefused(t *testing.T) {
	header := append([]byte(XerialMagic), 0, 0, 0, 1, 0, 0, 0, 1)
	chunk := func(b ...byte) []byte { return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name   string
		src    []byte
		xerial bool
		blocks [][]byte
		err    bool
	}{
		{name: "raw snappy is not xerial", src: []byte{3, 8, 'a', 'b', 'c'}},
		{name: "the magic alone is a cut header", src: []byte(XerialMagic), xerial: true, err: true},
		{name: "a header without chunks has no blocks", src: header, xerial: true},
		{name: "two chunks are two blocks", src: cat(header, chunk(1, 2, 3), chunk(4)), xerial: true, blocks: [][]byte{{1, 2, 3}, {4}}},
		{name: "an empty chunk is an empty block", src: cat(header, chunk()), xerial: true, blocks: [][]byte{{}}},
		{name: "a chunk length of two bytes is cut", src: cat(header, chunk(1), []byte{0, 0}), xerial: true, blocks: [][]byte{{1}}, err: true},
		{name: "a chunk claiming 4 GiB is cut", src: cat(header, []byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3}), xerial: true, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsXerial(tt.src); got != tt.xerial {
				t.Fatalf("IsXerial = %v, want %v", got, tt.xerial)
			}
			if !tt.xerial {
				return
			}
			chunks, err := XerialChunks(tt.src)
			var blocks [][]byte
			for err == nil && len(chunks) > 0 {
				var block []byte
				block, chunks, err = NextXerialBlock(chunks)
				if err == nil {
					blocks = append(blocks, block)
				}
			}
			if (err != nil) != tt.err || err != nil && !errors.Is(err, ErrXerial) {
				t.Fatalf("error %v, want one (ErrXerial): %v", err, tt.err)
			}
			if len(blocks) != len(tt.blocks) {
				t.Fatalf("blocks %q, want %q", blocks, tt.blocks)
			}
			for i := range blocks {
				if !bytes.Equal(blocks[i], tt.blocks[i]) {
					t.Fatalf("block %d = %q, want %q", i, blocks[i], tt.blocks[i])
				}
			}
		})
	}
}
