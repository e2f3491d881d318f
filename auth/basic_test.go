package auth

import (
	"encoding/base64"
	"testing"
)

// TestBasicForgetsAPasswordOnceItChanges: a Basic header that passed is
// remembered for a minute to spare the derivation, but not past a change
// of the user's password: the old password is refused at once, the new
// one accepted (it was accepted for up to a minute after the change).
func TestBasicForgetsAPasswordOnceItChanges(t *testing.T) {
	u, err := OpenUsers(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	set := func(pw string) {
		t.Helper()
		cred, err := NewCredential(ScramSHA256, pw, MinIterations)
		if err != nil {
			t.Fatal(err)
		}
		if err := u.Set("alice", ScramSHA256, cred); err != nil {
			t.Fatal(err)
		}
	}
	header := func(pw string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:"+pw))
	}
	set("old-password")
	b := NewBasic(u)
	for _, step := range []struct {
		name, password string
		change         string // set this password before the check
		want           BasicResult
	}{
		{"old password, first check", "old-password", "", BasicOK},
		{"old password, remembered", "old-password", "", BasicOK},
		{"old password after the change", "old-password", "new-password", BasicWrong},
		{"new password", "new-password", "", BasicOK},
		{"new password, remembered", "new-password", "", BasicOK},
	} {
		if step.change != "" {
			set(step.change)
		}
		if user, got := b.Check(header(step.password), "192.0.2.1"); got != step.want {
			t.Fatalf("%s: %v (user %q), want %v", step.name, got, user, step.want)
		}
	}
}
