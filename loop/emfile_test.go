package loop_test

import (
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
)

// TestAcceptSurvivesDescriptorExhaustion runs in a child process whose
// open-files limit is lowered after the server starts (as if something
// else had taken the descriptors), floods the Kafka port, and checks that
// accept errors (EMFILE) pause accepting instead of stopping the engine:
// an established connection keeps being served, and new connections are
// accepted again once the flood is gone.
func TestAcceptSurvivesDescriptorExhaustion(t *testing.T) {
	if os.Getenv("FLOODGATE_EMFILE_CHILD") == "1" {
		emfileChild(t)
		return
	}
	if testing.Short() {
		t.Skip("runs a child process")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAcceptSurvivesDescriptorExhaustion$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "FLOODGATE_EMFILE_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child failed: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}

func emfileChild(t *testing.T) {
	srv := testserver.Start(t, withLimits(func(l *limits.Config) {
		l.MaxConnections = 100000 // deliberately not fitted to the descriptor limit
		l.MaxConnectionsPerIP = 100000
	}))
	established := dialFrom(t, "", srv.KafkaAddr())
	expectServed(t, established)

	// Lower the soft limit just above what is open now.
	open := countFDs(t)
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	lowered := rl
	lowered.Cur = uint64(open + 60)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lowered); err != nil {
		t.Fatal(err)
	}
	// The flood runs in this same process, so its sockets count too: open
	// until dialing itself fails, then hold them.
	var flood []net.Conn
	for i := 0; i < 400; i++ {
		c, err := net.DialTimeout("tcp", srv.KafkaAddr(), time.Second)
		if err != nil {
			break
		}
		flood = append(flood, c)
	}
	time.Sleep(300 * time.Millisecond) // let the acceptor meet EMFILE
	errs := srv.Metrics.GetOrCreateCounter(`floodgate_accept_errors_total{listener="kafka",errno="EMFILE"}`).Get()
	if errs == 0 {
		t.Fatalf("no EMFILE accept errors counted with %d flood connections", len(flood))
	}
	for _, c := range flood {
		c.Close()
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	expectServed(t, established) // the engine is still running
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", srv.KafkaAddr(), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no new connection accepted after the flood")
		}
		time.Sleep(50 * time.Millisecond)
	}
	expectServed(t, dialFrom(t, "", srv.KafkaAddr()))
	t.Logf("flood of %d connections; %d EMFILE accept errors; engine kept serving", len(flood), errs)
}

func countFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}
