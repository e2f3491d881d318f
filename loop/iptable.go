package loop

import (
	"hash/maphash"
	"net/netip"
	"sync"

	"github.com/floodgate/floodgate/limits"
)

// ipTable counts the open connections of each source IP across every event
// loop, with the IP's share of the memory budget. It is shared by the
// loops, so that one IP's connections can be spread over all of them: a
// client with many connections (a load generator, a gateway, a NAT) is
// served by every core instead of the one its address hashes to, and
// --max-connections-per-ip still counts all of its connections. It is
// touched when a connection opens and closes, never per request; the
// shards keep two loops opening connections of different IPs from
// waiting on one lock.
type ipTable struct {
	seed   maphash.Seed
	shards [ipShards]ipShard
}

// ipShards is the number of independently locked parts of the table.
const ipShards = 16

type ipShard struct {
	mu sync.Mutex
	m  map[netip.Addr]*ipState
	_  [48]byte // a shard per 64-byte cache line: loops lock different shards
}

// ipState is what one source IP holds: its connections (guarded by its
// shard's lock), and its share of the memory budget (shared with workers,
// hence atomic).
type ipState struct {
	conns int32
	share limits.Share
}

func newIPTable() *ipTable {
	t := &ipTable{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].m = map[netip.Addr]*ipState{}
	}
	return t
}

func (t *ipTable) shard(ip netip.Addr) *ipShard {
	b := ip.As16()
	return &t.shards[maphash.Bytes(t.seed, b[:])%ipShards]
}

// admit counts a connection of ip in, unless ip has max connections
// already, and returns the IP's share of the memory budget.
func (t *ipTable) admit(ip netip.Addr, max int) (*limits.Share, bool) {
	sh := t.shard(ip)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.m[ip]
	if st == nil {
		if max <= 0 {
			return nil, false
		}
		st = new(ipState)
		sh.m[ip] = st
	}
	if int(st.conns) >= max {
		return nil, false
	}
	st.conns++
	return &st.share, true
}

// conns returns how many connections ip has open.
func (t *ipTable) conns(ip netip.Addr) int32 {
	sh := t.shard(ip)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if st := sh.m[ip]; st != nil {
		return st.conns
	}
	return 0
}

// release counts a connection of ip out. The entry goes with the IP's
// last connection: a request of it still running holds a pointer to the
// share and releases into it, so nothing is lost, and the table never
// holds an IP without connections.
func (t *ipTable) release(ip netip.Addr) {
	sh := t.shard(ip)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.m[ip]
	if st == nil {
		return
	}
	if st.conns <= 1 {
		delete(sh.m, ip)
	} else {
		st.conns--
	}
}

// ipCount is one IP's entry in a snapshot of the table.
type ipCount struct {
	conns int32
	held  int64
}

// snapshot copies the table (for /admin/stats).
func (t *ipTable) snapshot() map[netip.Addr]ipCount {
	out := map[netip.Addr]ipCount{}
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for ip, st := range sh.m {
			out[ip] = ipCount{st.conns, st.share.Held()}
		}
		sh.mu.Unlock()
	}
	return out
}
