package attack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/floodgate/floodgate/bench"
	"github.com/floodgate/floodgate/internal/loopback"
)

// upstreamBrokers is the size of the cluster behind a gateway: enough
// brokers that partitions, coordinators and per-broker listeners differ.
const upstreamBrokers = 3

// gatewayPorts is how many per-broker listener ports floodgate may take
// (--gateway-listen-ports): one per broker and room for a cluster that
// grows.
const gatewayPorts = 8

// upstream is the cluster a gateway attack's floodgate stands in front of:
// a kfake cluster on 127.0.0.1, auto-creating topics of one partition as a
// default Kafka does (the good client fetches its records back from
// partition 0). It runs in a process of its own (`floodgate bench
// upstream`): in the attacker's process, a race-built test binary, kfake
// shared two cores' worth of the test's scheduler with the attacker's
// goroutines and the good clients, and its pace entered every good
// client's latency.
type upstream struct {
	proc  *bench.Proc
	dir   string // proc's log
	addrs []string
	// args are the flags that put floodgate in front of it.
	args []string
}

// upstreamLine is the line `floodgate bench upstream` prints once its
// brokers listen.
const upstreamLine = "upstream brokers="

// ServeUpstream runs a kfake cluster of n brokers on 127.0.0.1 until ctx
// ends, after writing upstreamLine and the brokers' addresses to w
// (`floodgate bench upstream`).
func ServeUpstream(ctx context.Context, w io.Writer, n int) error {
	c, err := kfake.NewCluster(kfake.NumBrokers(n), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(1))
	if err != nil {
		return fmt.Errorf("upstream kfake cluster: %w", err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(w, "%s%s\n", upstreamLine, strings.Join(c.ListenAddrs(), ",")); err != nil {
		return fmt.Errorf("bench upstream: %w", err)
	}
	<-ctx.Done()
	return nil
}

// startUpstream starts the cluster as `bin bench upstream` and picks free
// ports for floodgate's per-broker listeners.
func startUpstream(bin string) (*upstream, error) {
	if bin == "" {
		return nil, errors.New("a gateway attack needs the floodgate binary to run its upstream cluster")
	}
	u := &upstream{}
	if err := u.startProc(bin); err != nil {
		return nil, err
	}
	first, err := loopback.FreePortRange(gatewayPorts)
	if err != nil {
		u.close()
		return nil, fmt.Errorf("gateway listener ports: %w", err)
	}
	u.args = []string{
		"--upstream-brokers", strings.Join(u.addrs, ","),
		"--gateway-listen-ports", fmt.Sprintf("%d-%d", first, first+gatewayPorts-1),
		"--gateway-advertised-host", "127.0.0.1",
	}
	return u, nil
}

// startProc runs the cluster as `bin bench upstream` and waits for its
// brokers' addresses.
func (u *upstream) startProc(bin string) error {
	dir, err := os.MkdirTemp("", "floodgate-upstream-")
	if err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	u.dir = dir
	p, err := bench.StartProc("upstream", filepath.Join(dir, "upstream.log"), bin, "bench", "upstream", "--brokers", strconv.Itoa(upstreamBrokers))
	if err != nil {
		u.close()
		return err
	}
	u.proc = p
	for deadline := time.Now().Add(20 * time.Second); ; {
		b, _ := os.ReadFile(p.Log)
		if _, rest, ok := strings.Cut(string(b), upstreamLine); ok {
			if line, _, ok := strings.Cut(rest, "\n"); ok {
				u.addrs = strings.Split(line, ",")
				return nil
			}
		}
		if time.Now().After(deadline) {
			u.close()
			return fmt.Errorf("upstream cluster did not start within 20 s:\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// close stops the cluster.
func (u *upstream) close() {
	u.proc.Stop()
	if u.dir != "" {
		os.RemoveAll(u.dir)
	}
}

// startFor starts the server attack a runs against: with its ServerArgs,
// and in front of a fresh upstream cluster when a.Gateway. stop ends both.
func startFor(a Attack, start Starter) (srv *Server, stop func(), err error) {
	args := a.ServerArgs
	var up *upstream
	if a.Gateway {
		if up, err = startUpstream(start.Floodgate); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", a.Name, err)
		}
		args = append(append([]string(nil), up.args...), args...)
	}
	srv, err = start.Server(args...)
	if err != nil {
		if up != nil {
			up.close()
		}
		return nil, nil, err
	}
	if up != nil {
		srv.Upstream = up.addrs
	}
	return srv, func() {
		srv.Stop()
		if up != nil {
			up.close()
		}
	}, nil
}

// gatewayMode reports whether server flags put floodgate in gateway mode.
func gatewayMode(args []string) bool {
	for _, a := range args {
		if a == "--upstream-brokers" || strings.HasPrefix(a, "--upstream-brokers=") {
			return true
		}
	}
	return false
}
