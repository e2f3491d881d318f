package loop

import "testing"

func TestRecordScanFollowsRecordBoundariesWhateverTheChunking(t *testing.T) {
	// Two records (3 and 2 body bytes) and the start of a third (1 of 4).
	stream := []byte{23, 3, 3, 0, 3, 'a', 'b', 'c', 23, 3, 3, 0, 2, 'd', 'e', 23, 3, 3, 0, 4, 'f'}
	tests := []struct {
		name  string
		sizes []int
	}{
		{"whole", []int{len(stream)}},
		{"byte by byte", nil},
		{"split in headers", []int{2, 6, 3, 4, 6}},
		{"split in bodies", []int{6, 8, 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r recordScan
			b := stream
			for i := 0; len(b) > 0; i++ {
				n := 1
				if tt.sizes != nil {
					n = tt.sizes[i]
				}
				r.feed(b[:n])
				b = b[n:]
			}
			if got := r.held(); got != 6 {
				t.Fatalf("held %d; want 6 (the third record's header and one byte)", got)
			}
		})
	}
	var r recordScan
	r.feed(stream[:15])
	if r.held() != 0 {
		t.Fatalf("held %d after two whole records; want 0", r.held())
	}
}
