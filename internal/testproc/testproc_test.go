package testproc

import (
	"testing"
	"time"
)

func TestListenAddrsReadsTheListeningLineInBothLogFormats(t *testing.T) {
	for _, tt := range []struct{ name, line string }{
		{"text", `time=2026-12-01T17:26:48.579Z level=INFO msg="floodgate listening" kafka=127.0.0.1:37151 http=127.0.0.1:38161 event_loops=2` + "\n"},
		{"printed", "floodgate listening kafka=127.0.0.1:37151 http=127.0.0.1:38161\n"},
		{"json", `{"time":"2026-12-01T17:26:48.579Z","level":"INFO","msg":"floodgate listening","kafka":"127.0.0.1:37151","http":"127.0.0.1:38161","event_loops":2}` + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b Buffer
			b.Write([]byte("level=INFO msg=\"open files limit\" soft=20000\n" + tt.line))
			k, h, err := ListenAddrs(&b, nil, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if k != "127.0.0.1:37151" || h != "127.0.0.1:38161" {
				t.Fatalf("kafka=%q http=%q, want 127.0.0.1:37151 and 127.0.0.1:38161", k, h)
			}
		})
	}
}

func TestListenAddrsGivesUpWhenTheChildExits(t *testing.T) {
	var b Buffer
	b.Write([]byte("level=ERROR msg=\"listen: address in use\"\n"))
	exited := make(chan struct{})
	close(exited)
	start := time.Now()
	if _, _, err := ListenAddrs(&b, exited, 10*time.Second); err == nil {
		t.Fatal("no error for a child that exited without listening")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v to notice the exit", d)
	}
}
