package bench

import (
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
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

// niceOf reads the niceness of process pid from /proc (field 19 of stat).
func niceOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	n, err := strconv.Atoi(fields[16]) // field 19 overall
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLowerPriorityIsInheritedByNewChildren lowers a shell's priority and
// checks it and the process it starts afterwards, as a holder's threads
// started after LowerPriority inherit it.
func TestLowerPriorityIsInheritedByNewChildren(t *testing.T) {
	cmd := exec.Command("sh", "-c", "read x; sleep 5 & wait")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skip("no sh:", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := LowerPriority(cmd.Process.Pid, 7); err != nil {
		t.Fatal(err)
	}
	if n := niceOf(t, cmd.Process.Pid); n != 7 {
		t.Fatalf("shell niceness %d, want 7", n)
	}
	if _, err := in.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	var kids []int
	for i := 0; i < 200 && len(kids) == 0; i++ {
		if kids = childrenOf(cmd.Process.Pid); len(kids) == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if len(kids) == 0 {
		t.Fatal("the shell started no child")
	}
	defer func() { _ = unix.Kill(kids[0], unix.SIGKILL) }()
	if n := niceOf(t, kids[0]); n != 7 {
		t.Fatalf("child niceness %d, want 7 (inherited)", n)
	}
	if err := LowerPriority(cmd.Process.Pid, 20); err == nil {
		t.Error("niceness 20 accepted")
	}
}
