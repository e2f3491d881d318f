package attack

import (
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"

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
// a kfake cluster in this process on 127.0.0.1, auto-creating topics of
// one partition as a default Kafka does (the good client fetches its
// records back from partition 0).
type upstream struct {
	cluster *kfake.Cluster
	addrs   []string
	// args are the flags that put floodgate in front of it.
	args []string
}

// startUpstream starts the cluster and picks free ports for floodgate's
// per-broker listeners.
func startUpstream() (*upstream, error) {
	c, err := kfake.NewCluster(kfake.NumBrokers(upstreamBrokers), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(1))
	if err != nil {
		return nil, fmt.Errorf("upstream kfake cluster: %w", err)
	}
	first, err := loopback.FreePortRange(gatewayPorts)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("gateway listener ports: %w", err)
	}
	addrs := c.ListenAddrs()
	return &upstream{cluster: c, addrs: addrs, args: []string{
		"--upstream-brokers", strings.Join(addrs, ","),
		"--gateway-listen-ports", fmt.Sprintf("%d-%d", first, first+gatewayPorts-1),
		"--gateway-advertised-host", "127.0.0.1",
	}}, nil
}

// close stops the cluster.
func (u *upstream) close() { u.cluster.Close() }

// startFor starts the server attack a runs against: with its ServerArgs,
// and in front of a fresh upstream cluster when a.Gateway. stop ends both.
func startFor(a Attack, start Starter) (srv *Server, stop func(), err error) {
	args := a.ServerArgs
	var up *upstream
	if a.Gateway {
		if up, err = startUpstream(); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", a.Name, err)
		}
		args = append(append([]string(nil), up.args...), args...)
	}
	srv, err = start(args...)
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
