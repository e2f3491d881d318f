package broker

import (
	"log/slog"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestAnswersAdvertiseTheListenerTheRequestCameIn: Metadata,
// FindCoordinator (old and batched) and DescribeCluster name the TLS
// address to a TLS client and the plaintext one to a plaintext client.
func TestAnswersAdvertiseTheListenerTheRequestCameIn(t *testing.T) {
	b, err := Open(Config{NodeID: 1, Host: "plain.example", Port: 9092, TLSHost: "tls.example", TLSPort: 9093,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	fc := func(v int16) kmsg.Request {
		r := kmsg.NewPtrFindCoordinatorRequest()
		r.SetVersion(v)
		r.CoordinatorKey, r.CoordinatorKeys = "g", []string{"g"}
		return r
	}
	dc := kmsg.NewPtrDescribeClusterRequest()
	dc.SetVersion(0)
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(9)
	tests := []struct {
		name string
		req  kmsg.Request
		addr func(kmsg.Response) (string, int32)
	}{
		{"Metadata", md, func(r kmsg.Response) (string, int32) {
			br := r.(*kmsg.MetadataResponse).Brokers[0]
			return br.Host, br.Port
		}},
		{"FindCoordinator v3", fc(3), func(r kmsg.Response) (string, int32) {
			f := r.(*kmsg.FindCoordinatorResponse)
			return f.Host, f.Port
		}},
		{"FindCoordinator v4", fc(4), func(r kmsg.Response) (string, int32) {
			c := r.(*kmsg.FindCoordinatorResponse).Coordinators[0]
			return c.Host, c.Port
		}},
		{"DescribeCluster", dc, func(r kmsg.Response) (string, int32) {
			br := r.(*kmsg.DescribeClusterResponse).Brokers[0]
			return br.Host, br.Port
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var plain, secure kmsg.Response
			b.ServeKafka(tt.req, "c", "127.0.0.1", func(r kmsg.Response) { plain = r })
			b.ServeKafkaTLS(tt.req, "c", "127.0.0.1", "", func(r kmsg.Response) { secure = r })
			if h, p := tt.addr(plain); h != "plain.example" || p != 9092 {
				t.Errorf("plaintext client told %s:%d", h, p)
			}
			if h, p := tt.addr(secure); h != "tls.example" || p != 9093 {
				t.Errorf("TLS client told %s:%d", h, p)
			}
		})
	}
}
