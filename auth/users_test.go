package auth

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestUsersFileIsPrivateAndHoldsNoPassword(t *testing.T) {
	dir := t.TempDir()
	u, err := OpenUsers(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, mech := range ScramMechanisms {
		cred, err := NewCredential(mech, "hunter2-password", DefaultIterations)
		if err != nil {
			t.Fatal(err)
		}
		if err := u.Set("bob", mech, cred); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, UsersFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("users file mode %v, want 0600", st.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if bytes.Contains(data, []byte("hunter2")) {
		t.Fatal("the users file holds the password")
	}
	if !u.CheckPassword("bob", "hunter2-password") || u.CheckPassword("bob", "hunter3-password") || u.CheckPassword("eve", "hunter2-password") {
		t.Fatal("CheckPassword does not tell the right password from wrong ones")
	}
}

func TestRunningServerSeesUsersAddedByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	server, err := OpenUsers(dir)
	if err != nil {
		t.Fatal(err)
	}
	if server.CheckPassword("carol", "carol-password") {
		t.Fatal("unknown user accepted")
	}
	cli, err := OpenUsers(dir) // the `floodgate user add` process
	if err != nil {
		t.Fatal(err)
	}
	cred, _ := NewCredential(ScramSHA256, "carol-password", DefaultIterations)
	if err := cli.Set("carol", ScramSHA256, cred); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for !server.CheckPassword("carol", "carol-password") {
		if time.Now().After(deadline) {
			t.Fatal("the running server did not see the added user within 3s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := cli.Delete("carol", ""); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(3 * time.Second)
	for server.CheckPassword("carol", "carol-password") {
		if time.Now().After(deadline) {
			t.Fatal("the running server still accepts a deleted user after 3s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestScramRefusesChannelBindingAndBadNonce(t *testing.T) {
	u, _ := OpenUsers(t.TempDir())
	a := NewAuthenticator(u, []string{ScramSHA256})
	for _, first := range []string{"p=tls-unique,,n=a,r=abc", "n,,n=a", "n,,n=a,r=", "x,,n=a,r=abc"} {
		s, _ := a.Start(ScramSHA256)
		if _, _, err := s.Step([]byte(first)); err == nil {
			t.Errorf("client-first %q accepted", first)
		}
	}
}
