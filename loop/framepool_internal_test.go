package loop

import (
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// TestFrameClassHoldsTheFrameAndWastesAtMostAQuarter: every pooled size
// gets the smallest class that holds it, classes are exactly the sizes
// put accepts back, and a buffer is never more than a quarter larger than
// the frame; sizes outside the range, small frames (4 KiB or less) among
// them, are not pooled: a 4 KiB buffer for a 200-byte Produce would hold 20
// times what the memory budget charged for it.
func TestFrameClassHoldsTheFrameAndWastesAtMostAQuarter(t *testing.T) {
	prev := 0
	for n := 1<<framePoolMinShift + 1; n <= 1<<framePoolMaxShift; n += 1 + n/97 {
		idx, size, ok := frameClass(n)
		if !ok {
			t.Fatalf("%d B: not pooled", n)
		}
		if size < n {
			t.Fatalf("%d B: class %d of %d B does not hold it", n, idx, size)
		}
		if size-n > (n-1)/4+1 {
			t.Fatalf("%d B: class of %d B wastes more than a quarter", n, size)
		}
		if size < prev {
			t.Fatalf("%d B: class %d B smaller than the previous size's %d B", n, size, prev)
		}
		prev = size
		if i2, s2, ok := frameClass(size); !ok || i2 != idx || s2 != size {
			t.Fatalf("class %d B maps back to %d (%d B, %v)", size, i2, s2, ok)
		}
		if idx < 0 || idx >= frameClasses {
			t.Fatalf("%d B: class index %d out of 0..%d", n, idx, frameClasses-1)
		}
	}
	for _, n := range []int{0, -1, 1, 200, 1 << framePoolMinShift, 1<<framePoolMaxShift + 1, 1 << 30} {
		if _, _, ok := frameClass(n); ok {
			t.Errorf("%d B is pooled; want not", n)
		}
	}
}

// TestFramePoolReusesAndPoisonsReturnedBuffers: a returned buffer comes
// back for the next frame of its class, filled with the poison pattern
// when poisoning is on; buffers not of a class are not taken back.
func TestFramePoolReusesAndPoisonsReturnedBuffers(t *testing.T) {
	set := metrics.NewSet()
	p := &framePool{poison: true, taken: set.NewCounter("taken"), allocated: set.NewCounter("allocated")}
	b := p.get(100 << 10)
	if len(*b) != 0 || cap(*b) < 100<<10 {
		t.Fatalf("got len %d cap %d; want 0 and >= %d", len(*b), cap(*b), 100<<10)
	}
	*b = append(*b, "frame bytes"...)
	p.put(b)
	if full := (*b)[:cap(*b)]; full[0] != poisonByte || full[len(full)-1] != poisonByte {
		t.Fatalf("returned buffer not poisoned: %x ... %x", full[0], full[len(full)-1])
	}
	// sync.Pool drops an item now and then (under the race detector, a
	// quarter of them at random): try a few times for a reuse.
	reused := p.get(110<<10) == b
	for i := 0; i < 50 && !reused; i++ {
		p.put(b)
		reused = p.get(110<<10) == b
	}
	if !reused {
		t.Error("a returned buffer was never handed out again")
	}
	if p.taken.Get() <= p.allocated.Get() {
		t.Errorf("taken %d, allocated %d: no reuse counted", p.taken.Get(), p.allocated.Get())
	}
	odd := make([]byte, 0, 100<<10+1)
	p.put(&odd) // not a class size: ignored, not poisoned
	if odd[:1][0] == poisonByte {
		t.Error("a buffer of no class was taken back")
	}
}

// TestFrameBufFloorIsTheLargestBufferWithinRoom: a frame grown to what is
// left of the budget gets a buffer whose capacity (what is charged) is at
// most that room, and for Produce no larger pool class would fit.
func TestFrameBufFloorIsTheLargestBufferWithinRoom(t *testing.T) {
	for _, room := range []int{1, 4096, 4097, 5000, 64 << 10, 80<<10 + 1, 1<<20 - 1, 1 << 20, 1<<20 + 1, 1900 << 10, 8 << 20, 8<<20 + 7, 100 << 20} {
		if got := frameBufFloor(1, room); got != room {
			t.Errorf("Fetch, room %d: %d, want the room itself", room, got)
		}
		got := frameBufFloor(0, room)
		if got > room {
			t.Fatalf("Produce, room %d: %d passes it", room, got)
		}
		if _, size, ok := frameClass(got); ok && size != got {
			t.Errorf("Produce, room %d: %d is not a pool class (%d is)", room, got, size)
		}
		if _, next, ok := frameClass(got + 1); ok && next <= room {
			t.Errorf("Produce, room %d: %d, but class %d fits too", room, got, next)
		}
	}
}
