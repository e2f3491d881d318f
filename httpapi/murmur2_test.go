package httpapi

import (
	"math"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestMurmur2KafkaVectors: murmur2 gives the values of Kafka's own
// UtilsTest.testMurmur2 (apache/kafka
// clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java),
// Java's signed int of the hash.
func TestMurmur2KafkaVectors(t *testing.T) {
	for _, tt := range []struct {
		key  string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	} {
		if got := int32(murmur2([]byte(tt.key))); got != tt.want {
			t.Errorf("murmur2(%q) = %d, want %d (Kafka's UtilsTest)", tt.key, got, tt.want)
		}
	}
}

// TestKeyPartitionIsFranzGos: for keys of every length from 0 to 64 bytes
// (every tail length of the hash, bytes above 0x7f included) and partition
// counts from 1 to 2^31-1 (which keeps 31 bits of the hash), keyPartition
// picks the partition franz-go's key partitioner picks.
func TestKeyPartitionIsFranzGos(t *testing.T) {
	kp := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for _, n := range []int32{1, 2, 3, 12, 100, 1000, math.MaxInt32} {
		for size := 0; size <= 64; size++ {
			for seed := 0; seed < 4; seed++ {
				key := make([]byte, size)
				for i := range key {
					key[i] = byte(i*131 + seed*61 + size*7 + 0x80*(i&1))
				}
				want := kp.Partition(&kgo.Record{Key: key}, int(n))
				if got := keyPartition(key, n); int(got) != want {
					t.Fatalf("key % x among %d partitions: %d, franz-go %d", key, n, got, want)
				}
			}
		}
	}
}
