// Package loopback finds free ports on 127.0.0.1 for tests and benchmarks
// that start servers of their own.
package loopback

import (
	"fmt"
	"net"
	"time"
)

// FreePortRange returns the first of n consecutive ports on 127.0.0.1 that
// were free a moment ago (the gateway's per-broker listeners need a range).
func FreePortRange(n int) (int, error) {
	for base := 20000 + int(time.Now().UnixNano()%20000); base+n <= 60000; base += n {
		ok := true
		var lns []net.Listener
		for p := base; p < base+n; p++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns {
			ln.Close()
		}
		if ok {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no %d consecutive free ports on 127.0.0.1", n)
}
