package limits

import (
	"fmt"
	"syscall"
)

// ReservedFDs are the descriptors floodgate keeps for itself beyond client
// connections: listeners, the engine's epoll and eventfds, log and segment
// files, the HTTP listener's reserve, and the moment during which a
// registered or parked socket is held twice (dup).
const ReservedFDs = 128

// RaiseNoFile raises the soft RLIMIT_NOFILE to the hard limit and returns
// both after the change.
func RaiseNoFile() (soft, hard uint64, err error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0, fmt.Errorf("getrlimit: %w", err)
	}
	if rl.Cur < rl.Max {
		want := rl
		want.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
			rl = want
		}
	}
	return rl.Cur, rl.Max, nil
}

// FitConnections returns the largest connection limit that fits in soft
// descriptors, and whether max had to be lowered to it. Each connection
// needs one descriptor; ReservedFDs and httpReserve are kept aside.
func FitConnections(max int, httpReserve int, soft uint64) (int, bool) {
	room := int64(soft) - ReservedFDs - int64(httpReserve)
	if room < 1 {
		room = 1
	}
	if int64(max) <= room {
		return max, false
	}
	return int(room), true
}

// MinSegmentFiles is the least descriptor budget of partition segment
// files: below it most reads would reopen a file.
const MinSegmentFiles = 64

// FitSegmentFiles returns the descriptor budget of partition segment files
// and whether the configured value had to be changed: what the soft
// open-files limit leaves after connections, the HTTP reserve and
// ReservedFDs, when configured is 0 (auto) or larger than that; never less
// than MinSegmentFiles.
func FitSegmentFiles(configured, connections, httpReserve int, soft uint64) (int, bool) {
	room := int64(soft) - ReservedFDs - int64(httpReserve) - int64(connections)
	room = max(room, MinSegmentFiles)
	if configured > 0 && int64(configured) <= room {
		return configured, false
	}
	return int(room), configured > 0
}
