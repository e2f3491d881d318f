package testserver

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/floodgate/floodgate/storage"
)

// PlantBatch appends batch (a v2 record batch, its base offset rewritten
// to the log's end) to partition of topic in the stopped broker's dataDir,
// bypassing the produce path and its validation, and returns the offset
// it was stored at. It stands for data that reached the disk without being
// validated: written by an older version, or damaged on disk. The base
// offset is outside the CRC, so a batch whose CRC was valid stays valid.
//
// It reads the layout of broker/persist.go: topics.json names each topic's
// id, and logs/<id>/<partition>/ holds the partition's segments.
func PlantBatch(t testing.TB, dataDir, topic string, partition int32, batch []byte) int64 {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dataDir, "topics.json"))
	if err != nil {
		t.Fatalf("plant: %v", err)
	}
	var metas []struct {
		Name string `json:"name"`
		ID   string `json:"id"`
	}
	if err := json.Unmarshal(data, &metas); err != nil {
		t.Fatalf("plant: topics.json: %v", err)
	}
	id := ""
	for _, m := range metas {
		if m.Name == topic {
			id = m.ID
		}
	}
	if id == "" {
		t.Fatalf("plant: no topic %q in %s", topic, dataDir)
	}
	l, _, err := storage.Open(storage.Options{Dir: filepath.Join(dataDir, "logs", id, strconv.Itoa(int(partition)))})
	if err != nil {
		t.Fatalf("plant: %v", err)
	}
	defer func() {
		if err := l.Close(); err != nil {
			t.Fatalf("plant: close: %v", err)
		}
	}()
	raw := append([]byte(nil), batch...)
	base := l.Stats().Next
	binary.BigEndian.PutUint64(raw, uint64(base))
	info, err := storage.ParseBatch(raw)
	if err != nil {
		t.Fatalf("plant: the batch does not parse (CRC or header): %v", err)
	}
	if err := l.Append(raw, info, storage.MaxSegmentBytes); err != nil {
		t.Fatalf("plant: %v", err)
	}
	if err := l.Sync(); err != nil {
		t.Fatalf("plant: sync: %v", err)
	}
	return base
}
