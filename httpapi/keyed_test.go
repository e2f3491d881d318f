package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate/floodgate/limits"
)

// TestKeyedRESTRecordsLandWhereFranzGoPutsThem: a key produced over REST
// (v2 and v3, binary keys so the hashed bytes are exact) lands on the
// partition franz-go's default partitioner put the same key on, for keys of
// 1 to 40 bytes among 12 partitions.
func TestKeyedRESTRecordsLandWhereFranzGoPutsThem(t *testing.T) {
	t.Parallel()
	srv := startHTTP(t, func(*limits.HTTPConfig) {})
	const topic, partitions = "keyed", 12
	createTopicN(t, srv, topic, partitions)
	var keys [][]byte
	for size := 1; size <= 40; size++ {
		keys = append(keys, []byte(strings.Repeat(fmt.Sprint(size), size)[:size]))
	}
	keys = append(keys, []byte("21"), []byte("foobar"), []byte{0xff, 0x80, 0x7f, 0x00, 0x01})

	kc, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for _, k := range keys {
		recs = append(recs, &kgo.Record{Topic: topic, Key: k, Value: []byte("kgo")})
	}
	res := kc.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	kgoPart := map[string]int32{}
	spread := map[int32]bool{}
	for _, r := range res {
		kgoPart[string(r.Record.Key)] = r.Record.Partition
		spread[r.Record.Partition] = true
	}
	if len(spread) < 6 {
		t.Fatalf("%d keys fell on %d of %d partitions: not a test of the hash", len(keys), len(spread), partitions)
	}

	var v2, v3 strings.Builder
	v2.WriteString(`{"records":[`)
	for i, k := range keys {
		b64 := base64.StdEncoding.EncodeToString(k)
		if i > 0 {
			v2.WriteByte(',')
		}
		fmt.Fprintf(&v2, `{"key":%q,"value":%q}`, b64, base64.StdEncoding.EncodeToString([]byte("v2")))
		fmt.Fprintf(&v3, `{"key":{"type":"BINARY","data":%q},"value":{"data":"v3"}}`+"\n", b64)
	}
	v2.WriteString(`]}`)
	cl := client()
	base := "http://" + srv.HTTPAddr()
	a := do(t, cl, "POST", base+"/topics/"+topic, "application/vnd.kafka.binary.v2+json", strings.NewReader(v2.String()))
	var oa offsetsAnswer
	if err := json.Unmarshal([]byte(a.body), &oa); err != nil || a.status != 200 || len(oa.Offsets) != len(keys) {
		t.Fatalf("v2 produce: %d %s (%v)", a.status, a.body, err)
	}
	for i, o := range oa.Offsets {
		if want := kgoPart[string(keys[i])]; o.Partition != want {
			t.Errorf("v2: key %q on partition %d, franz-go put it on %d", keys[i], o.Partition, want)
		}
	}

	var clusters struct {
		Data []struct {
			ClusterID string `json:"cluster_id"`
		} `json:"data"`
	}
	if a := do(t, cl, "GET", base+"/v3/clusters", "", nil); json.Unmarshal([]byte(a.body), &clusters) != nil || len(clusters.Data) != 1 {
		t.Fatalf("clusters: %d %s", a.status, a.body)
	}
	a = do(t, cl, "POST", base+"/v3/clusters/"+clusters.Data[0].ClusterID+"/topics/"+topic+"/records", "application/json",
		strings.NewReader(v3.String()))
	lines := v3Lines(t, a.body)
	if a.status != 200 || len(lines) != len(keys) {
		t.Fatalf("v3 produce: %d %s", a.status, a.body)
	}
	for i, l := range lines {
		if want := kgoPart[string(keys[i])]; l.ErrorCode != 200 || l.PartitionID != want {
			t.Errorf("v3: key %q on partition %d (code %d), franz-go put it on %d", keys[i], l.PartitionID, l.ErrorCode, want)
		}
	}
}
