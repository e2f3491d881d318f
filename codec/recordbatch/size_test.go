package recordbatch

import (
	"encoding/binary"
	"testing"
)

func TestSizeAndBaseOffsetAreReadFromAnyMagic(t *testing.T) {
	batch := Build([]Record{{Key: []byte("k"), Value: []byte("value")}})
	binary.BigEndian.PutUint64(batch[OffBaseOffset:], 42)
	if got := Size(batch); got != int64(len(batch)) {
		t.Fatalf("Size = %d, want the batch's %d bytes", got, len(batch))
	}
	if got := BaseOffset(batch); got != 42 {
		t.Fatalf("BaseOffset = %d, want 42", got)
	}
	batch[OffMagic] = 1 // a message set: the length field stands in the same place
	if got := Size(batch); got != int64(len(batch)) {
		t.Fatalf("Size of magic 1 = %d, want %d", got, len(batch))
	}
	binary.BigEndian.PutUint32(batch[OffLength:], 0xffffffff) // -1: corrupt
	if got := Size(batch); got != LengthPrefix-1 {
		t.Fatalf("Size with length -1 = %d, want %d", got, LengthPrefix-1)
	}
}
