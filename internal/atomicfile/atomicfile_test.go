package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteReplacesTheFileWholeAndLeavesNoTemporaryFile(t *testing.T) {
	for _, sync := range []bool{false, true} {
		dir := t.TempDir()
		path := filepath.Join(dir, "state.json")
		if err := os.WriteFile(path, []byte("old content, longer than the new"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := Write(path, []byte("new"), sync); err != nil {
			t.Fatalf("sync=%v: %v", sync, err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != "new" {
			t.Fatalf("sync=%v: read %q, %v; want \"new\"", sync, got, err)
		}
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("sync=%v: mode %v, %v; want 0600", sync, st.Mode().Perm(), err)
		}
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) != 1 {
			t.Fatalf("sync=%v: directory holds %d entries (%v), want only the file", sync, len(entries), err)
		}
	}
}

func TestWriteIntoAMissingDirectoryFailsAndCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	if err := Write(filepath.Join(dir, "gone", "state.json"), []byte("x"), true); err == nil {
		t.Fatal("Write into a missing directory succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "gone")); !os.IsNotExist(err) {
		t.Fatalf("the missing directory was created (stat: %v)", err)
	}
}
