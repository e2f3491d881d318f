package limits

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"
)

func TestRateLimitedLogRemembersBoundedKeys(t *testing.T) {
	r := NewWarnLog(slog.New(slog.NewTextHandler(io.Discard, nil)), time.Minute)
	// An attacker from 100,000 addresses, each key logged and then
	// suppressed: the map used to keep every one (the suppressed counts
	// were never pruned).
	for i := 0; i < 100_000; i++ {
		key := fmt.Sprintf("malformed:10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
		r.Warn(key, "x")
		if r.Due(key) {
			t.Fatalf("key %s logged twice within the interval", key)
		}
	}
	if n := r.Keys(); n > warnKeys+1 {
		t.Fatalf("%d keys remembered, bound is %d", n, warnKeys+1)
	}
}
