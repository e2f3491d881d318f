package httpapi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Offsets within a v2 record batch.
const (
	batchCRCOffset   = 17
	batchCRCFrom     = 21 // the CRC covers the batch from the attributes on
	batchHeaderSize  = 61
	batchAfterLength = 49 // header bytes after the length field
)

type kvPair struct{ key, value []byte }

// buildBatch encodes records as one uncompressed v2 record batch (magic 2,
// no producer id, CreateTime now) with its CRC32C, as a Kafka producer does.
func buildBatch(recs []kvPair, nowMillis int64) []byte {
	var records []byte
	for i, kv := range recs {
		r := kmsg.Record{OffsetDelta: int32(i), Key: kv.key, Value: kv.value}
		// Length is everything after the length varint: encode once with
		// a zero length (one varint byte) to learn it.
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		records = r.AppendTo(records)
	}
	b := kmsg.RecordBatch{
		FirstOffset:          0,
		Length:               int32(batchAfterLength + len(records)),
		PartitionLeaderEpoch: -1,
		Magic:                2,
		LastOffsetDelta:      int32(len(recs) - 1),
		FirstTimestamp:       nowMillis,
		MaxTimestamp:         nowMillis,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           int32(len(recs)),
		Records:              records,
	}
	raw := b.AppendTo(make([]byte, 0, batchHeaderSize+len(records)))
	binary.BigEndian.PutUint32(raw[batchCRCOffset:], crc32.Checksum(raw[batchCRCFrom:], castagnoli))
	return raw
}

// inRecord is one record read from a fetch.
type inRecord struct {
	key, value []byte
	offset     int64
}

// decodeBatches reads the records of the v2 batches in raw from offset
// from on, decompressing gzip, snappy, lz4 and zstd batches up to maxOut
// bytes each (0: 256 MiB). Control batches are skipped, and so is a
// partial batch at the end (Kafka may cut the last one).
func decodeBatches(raw []byte, from int64, maxOut int64) ([]inRecord, error) {
	if maxOut <= 0 {
		maxOut = 256 << 20
	}
	var out []inRecord
	for len(raw) >= batchHeaderSize {
		length := int64(int32(binary.BigEndian.Uint32(raw[8:12])))
		total := 12 + length
		if length < batchAfterLength || total > int64(len(raw)) {
			break
		}
		batch := raw[:total]
		raw = raw[total:]
		if batch[16] != 2 {
			continue // message sets of magic 0/1 are not served
		}
		attrs := int16(binary.BigEndian.Uint16(batch[21:23]))
		if attrs&0x20 != 0 {
			continue // transaction markers
		}
		base := int64(binary.BigEndian.Uint64(batch[0:8]))
		n := int32(binary.BigEndian.Uint32(batch[57:61]))
		recs, err := decompress(attrs&7, batch[batchHeaderSize:], maxOut)
		if err != nil {
			return nil, fmt.Errorf("batch at offset %d: %w", base, err)
		}
		for i := int32(0); i < n && len(recs) > 0; i++ {
			l, sz := binary.Varint(recs)
			if sz <= 0 || l < 0 || int64(sz)+l > int64(len(recs)) {
				return nil, fmt.Errorf("batch at offset %d: corrupt record %d", base, i)
			}
			end := sz + int(l)
			var kr kmsg.Record
			if err := kr.ReadFrom(recs[:end]); err != nil {
				return nil, fmt.Errorf("batch at offset %d: record %d: %w", base, i, err)
			}
			recs = recs[end:]
			if off := base + int64(kr.OffsetDelta); off >= from {
				out = append(out, inRecord{key: kr.Key, value: kr.Value, offset: off})
			}
		}
	}
	return out, nil
}

// xerialMagic starts snappy data in the framing of the Java client.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

var errTooLarge = errors.New("decompressed batch too large")

// decompress inflates the records of a batch with codec (attributes & 7).
func decompress(codec int16, src []byte, maxOut int64) ([]byte, error) {
	readAll := func(r io.Reader) ([]byte, error) {
		b, err := io.ReadAll(io.LimitReader(r, maxOut+1))
		if err != nil {
			return nil, err
		}
		if int64(len(b)) > maxOut {
			return nil, errTooLarge
		}
		return b, nil
	}
	switch codec {
	case 0:
		return src, nil
	case 1:
		zr, err := gzip.NewReader(bytes.NewReader(src))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		return readAll(zr)
	case 2:
		if !bytes.HasPrefix(src, xerialMagic) {
			return snappyBlock(src, maxOut)
		}
		src = src[16:] // magic, version, compatible version
		var out []byte
		for len(src) >= 4 {
			n := int(binary.BigEndian.Uint32(src))
			if n > len(src)-4 {
				return nil, errors.New("snappy: truncated xerial chunk")
			}
			b, err := snappyBlock(src[4:4+n], maxOut-int64(len(out)))
			if err != nil {
				return nil, err
			}
			out = append(out, b...)
			src = src[4+n:]
		}
		return out, nil
	case 3:
		return readAll(lz4.NewReader(bytes.NewReader(src)))
	case 4:
		zr, err := zstd.NewReader(bytes.NewReader(src), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(maxOut)))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		return readAll(zr)
	}
	return nil, fmt.Errorf("unknown compression codec %d", codec)
}

func snappyBlock(src []byte, maxOut int64) ([]byte, error) {
	n, err := snappy.DecodedLen(src)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	if int64(n) > maxOut {
		return nil, errTooLarge
	}
	b, err := snappy.Decode(nil, src)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	return b, nil
}

// murmur2 is the Kafka Java client's key hash (Utils.murmur2), so keyed
// records land on the partition a Java or franz-go producer would choose.
func murmur2(data []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	length := len(data)
	h := seed ^ uint32(length)
	for i := 0; i+4 <= length; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := length &^ 3
	switch length % 4 {
	case 3:
		h ^= uint32(data[tail+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[tail+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[tail])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

func sortStrings(s []string) { sort.Strings(s) }

func sortPartitions(p []partitionInfo) {
	sort.Slice(p, func(i, j int) bool { return p[i].Partition < p[j].Partition })
}
