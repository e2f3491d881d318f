package testproc

import (
	"fmt"
	"syscall"
	"time"
)

// TouchMemory makes the calling process's resident set rise by mib MiB
// for hold, then fall back: it maps mib MiB of anonymous memory, writes
// one byte of every page (so each is resident), waits hold and unmaps it.
// A stand-in server run as a test's child calls it to spike its RSS on
// demand, for the tools that must see such a peak.
func TouchMemory(mib int, hold time.Duration) error {
	mem, err := syscall.Mmap(-1, 0, mib<<20, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return fmt.Errorf("map %d MiB: %w", mib, err)
	}
	for i := 0; i < len(mem); i += 4096 {
		mem[i] = 1
	}
	time.Sleep(hold)
	if err := syscall.Munmap(mem); err != nil {
		return fmt.Errorf("unmap %d MiB: %w", mib, err)
	}
	return nil
}
