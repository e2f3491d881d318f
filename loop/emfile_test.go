package loop_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
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
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(stdout)
	var out strings.Builder
	next := func(prefix string) string {
		for lines.Scan() {
			out.WriteString(lines.Text() + "\n")
			if strings.HasPrefix(lines.Text(), prefix) {
				return strings.TrimPrefix(lines.Text(), prefix)
			}
		}
		t.Fatalf("child ended before %q:\n%s%s", prefix, out.String(), stderr.String())
		return ""
	}
	addr := next("ADDR ")
	// The flood comes from this process, so the child's descriptors go to
	// the accepted sockets alone.
	var flood []net.Conn
	for i := 0; i < 300; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			continue
		}
		flood = append(flood, c)
	}
	fmt.Fprintln(stdin, "flooded") // the child waits for its EMFILE count
	next("CHECKED")
	for _, c := range flood {
		c.Close()
	}
	fmt.Fprintln(stdin, "closed")
	next("DONE")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child failed: %v\n%s%s", err, out.String(), stderr.String())
	}
	t.Logf("flood of %d connections\n%s", len(flood), out.String())
}

func emfileChild(t *testing.T) {
	srv := testserver.Start(t, withLimits(func(l *limits.Config) {
		l.MaxConnections = 100000 // deliberately not fitted to the descriptor limit
		l.MaxConnectionsPerIP = 100000
	}))
	established := dialFrom(t, "", srv.KafkaAddr())
	expectServed(t, established)

	// Lower the soft limit just above what is open now, as if something
	// else had taken the descriptors.
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	lowered := rl
	lowered.Cur = uint64(countFDs(t) + 40)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lowered); err != nil {
		t.Fatal(err)
	}
	in := bufio.NewScanner(os.Stdin)
	fmt.Println("ADDR " + srv.KafkaAddr())
	in.Scan() // flooded
	emfile := srv.Metrics.GetOrCreateCounter(`floodgate_accept_errors_total{listener="kafka",errno="EMFILE"}`)
	waitFor(t, 10*time.Second, "EMFILE accept errors counted", func() bool { return emfile.Get() > 0 })
	errs := emfile.Get()
	expectServed(t, established) // full service during the flood
	fmt.Printf("CHECKED accept_errors=%d active=%d\n", errs, srv.Stats().Connections)
	in.Scan() // closed
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "flood connections closed", func() bool { return srv.Stats().Connections <= 1 })
	expectServed(t, established)
	expectServed(t, dialFrom(t, "", srv.KafkaAddr())) // accepting resumed by itself
	fmt.Println("DONE")
}

func countFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}
