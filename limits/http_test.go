package limits

import (
	"testing"
	"time"
)

func TestParseRoute(t *testing.T) {
	tests := []struct {
		in   string
		want Route
		err  bool
	}{
		{"api:/topics,max-body-size=500MB,rps=100,burst=500,key=header:X-API-Key",
			Route{Name: "api", Prefix: "/topics", MaxBodyBytes: 500e6, RPS: 100, Burst: 500, Key: KeyHeader, Header: "X-API-Key"}, false},
		{"up:/upload,max-body-size=1GiB", Route{Name: "up", Prefix: "/upload", MaxBodyBytes: 1 << 30}, false},
		{"r:/x,rps=5,key=client_ip", Route{Name: "r", Prefix: "/x", RPS: 5, Burst: 50, Key: KeyClientIP}, false},
		{"p:/x,rps=5,key=path", Route{Name: "p", Prefix: "/x", RPS: 5, Burst: 50, Key: KeyPath}, false},
		{"noslash:x", Route{}, true},
		{":/x", Route{}, true},
		{"a:/x,rps=-1", Route{}, true},
		{"a:/x,key=cookie", Route{}, true},
		{"a:/x,max-body-size=lots", Route{}, true},
		{"a:/x,colour=red", Route{}, true},
		{"bad name:/x", Route{}, true},
	}
	for _, tt := range tests {
		got, err := ParseRoute(tt.in)
		if (err != nil) != tt.err {
			t.Fatalf("%q: err %v", tt.in, err)
		}
		if err == nil && got != tt.want {
			t.Fatalf("%q: %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestHTTPProfiles(t *testing.T) {
	for _, name := range []string{"development", "production", "high-traffic"} {
		c, err := HTTPProfile(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, l := range HTTPTable {
			if c.Value(l.Flag) == "" {
				t.Fatalf("%s: no value for %s", name, l.Flag)
			}
		}
	}
	d := HTTPDefaults()
	for _, l := range HTTPTable {
		if got := d.Value(l.Flag); got != l.Default {
			t.Fatalf("%s: default %q, table says %q", l.Flag, got, l.Default)
		}
	}
	if _, err := HTTPProfile("turbo"); err == nil {
		t.Fatal("unknown profile accepted")
	}
}

func TestBucketsBurstThenRate(t *testing.T) {
	r := NewBuckets(10, 100)
	now := time.Unix(1000, 0)
	ok := 0
	for i := 0; i < 150; i++ {
		if r.Allow([]byte("k"), now).OK {
			ok++
		}
	}
	if ok != 100 {
		t.Fatalf("burst admitted %d", ok)
	}
	res := r.Allow([]byte("k"), now)
	if res.OK || res.Remaining != 0 || res.Wait != 100*time.Millisecond || res.Full != 10*time.Second {
		t.Fatalf("refusal %+v", res)
	}
	ok = 0
	for i := 0; i < 100; i++ { // 10 s at 10 requests/s offered... at 100/s
		now = now.Add(10 * time.Millisecond)
		if r.Allow([]byte("k"), now).OK {
			ok++
		}
	}
	if ok != 10 {
		t.Fatalf("steady admitted %d in 1s, want 10", ok)
	}
	if !r.Allow([]byte("other"), now).OK {
		t.Fatal("keys share a bucket")
	}
}

func TestMemoryLimit(t *testing.T) {
	c := HTTPConfig{MaxMemoryBytes: 1000, MaxMemoryPercent: 50}
	if got := c.MemoryLimit(1000); got != 500 {
		t.Fatalf("%d", got)
	}
	c.MaxMemoryBytes = 100
	if got := c.MemoryLimit(1000); got != 100 {
		t.Fatalf("%d", got)
	}
	if MemoryTotal() <= 0 {
		t.Fatal("no memory total")
	}
}

func TestBucketsKeepBoundedKeysOfClientInput(t *testing.T) {
	b := NewBuckets(10, 10)
	now := time.Now()
	long := make([]byte, 32<<10)
	for i := 0; i < 200_000; i++ {
		long[0], long[1], long[2] = byte(i), byte(i>>8), byte(i>>16)
		b.Take(long, now)
	}
	if n := b.Len(); n > 16*maxKeysPerShard {
		t.Fatalf("%d keys kept, bound %d", n, 16*maxKeysPerShard)
	}
	// Keys past the bound share a bucket: inventing ids does not escape
	// the rate.
	var throttled bool
	for i := 0; i < 100; i++ {
		long[0], long[1], long[2], long[3] = byte(i), 0xff, 0xff, 0xff
		if b.Take(long, now) > 0 {
			throttled = true
		}
	}
	if !throttled {
		t.Fatal("100 new ids past the key bound were never throttled")
	}
}
