package bench

import (
	"os/exec"
	"reflect"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseCPUs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		bad  bool
	}{
		{in: "0", want: []int{0}},
		{in: "1,3", want: []int{1, 3}},
		{in: "0-2", want: []int{0, 1, 2}},
		{in: "0-1, 4", want: []int{0, 1, 4}},
		{in: "", bad: true},
		{in: "2-1", bad: true},
		{in: "x", bad: true},
		{in: "-1", bad: true},
	} {
		got, err := ParseCPUs(tc.in)
		if tc.bad != (err != nil) || (!tc.bad && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("ParseCPUs(%q) = %v, %v; want %v (error: %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

// TestPinTreePinsAProcessAndItsChildren pins a shell and the sleep it
// started to CPU 0 and reads both masks back.
func TestPinTreePinsAProcessAndItsChildren(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 5 & wait")
	if err := cmd.Start(); err != nil {
		t.Skip("no sh:", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var kids []int
	for i := 0; i < 200 && len(kids) == 0; i++ { // until the shell has forked
		kids = childrenOf(cmd.Process.Pid)
		if len(kids) == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if len(kids) == 0 {
		t.Fatal("the shell started no child")
	}
	defer func() {
		for _, k := range kids {
			_ = unix.Kill(k, unix.SIGKILL)
		}
	}()
	if err := PinTree(cmd.Process.Pid, []int{0}); err != nil {
		t.Fatal(err)
	}
	for _, pid := range append([]int{cmd.Process.Pid}, kids...) {
		if cpus, err := AffinityOf(pid); err != nil || len(cpus) != 1 || cpus[0] != 0 {
			t.Fatalf("process %d: CPUs %v (%v); want CPU 0 only", pid, cpus, err)
		}
	}
}
