package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// floodgateUser runs `floodgate user ARGS...` with stdin and returns its
// output.
func floodgateUser(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(floodgateBinary(t), append([]string{"user"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// scramRequest sends one Metadata request as user/pass with SCRAM-SHA-512.
func scramRequest(addr, user, pass string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0),
		kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = cl.Request(ctx, kmsg.NewPtrMetadataRequest())
	return err
}

func TestUserCommandsManageWhoTheRunningBinaryLetsIn(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if out, err := floodgateUser(t, "s3cret-pw\n", "add", "alice", "--data-dir", dir); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	st, err := os.Stat(filepath.Join(dir, "users.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("users.json: %v mode %v, want 0600", err, st.Mode().Perm())
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "users.json")); strings.Contains(string(data), "s3cret-pw") {
		t.Fatal("users.json holds the password")
	}
	out, err := floodgateUser(t, "", "list", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "alice") || !strings.Contains(out, "SCRAM-SHA-512(iterations=4096)") {
		t.Fatalf("user list: %v\n%s", err, out)
	}
	if out, err := floodgateUser(t, "", "add", "bob", "--data-dir", dir); err == nil {
		t.Fatalf("user add with an empty stdin succeeded:\n%s", out)
	}

	p := startFloodgate(t, 4096, "--data-dir", dir, "--sasl-mechanisms", "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
		"--auth-required", "--sasl-failed-authentication-delay", "50")
	if err := scramRequest(p.kafka, "alice", "s3cret-pw"); err != nil {
		t.Fatalf("alice with her password: %v", err)
	}
	if err := scramRequest(p.kafka, "alice", "wrong"); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("alice with a wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
	// Added while the server runs: seen within a second, no signal.
	if out, err := floodgateUser(t, "carol-pw\n", "add", "carol", "--data-dir", dir, "--mechanisms", "SCRAM-SHA-512"); err != nil {
		t.Fatalf("user add carol: %v\n%s", err, out)
	}
	waitUntil(t, 3*time.Second, "carol admitted", func() bool { return scramRequest(p.kafka, "carol", "carol-pw") == nil })
	if out, err := floodgateUser(t, "", "delete", "alice", "--data-dir", dir); err != nil {
		t.Fatalf("user delete: %v\n%s", err, out)
	}
	waitUntil(t, 3*time.Second, "alice refused after delete", func() bool {
		return errors.Is(scramRequest(p.kafka, "alice", "s3cret-pw"), kerr.SaslAuthenticationFailed)
	})
	if kcat, err := exec.LookPath("kcat"); err == nil {
		// librdkafka's SCRAM against the same user.
		for _, mech := range []string{"SCRAM-SHA-512", "PLAIN"} {
			out, err := exec.Command(kcat, "-b", p.kafka, "-L", "-m", "5", "-X", "security.protocol=SASL_PLAINTEXT",
				"-X", "sasl.mechanisms="+mech, "-X", "sasl.username=carol", "-X", "sasl.password=carol-pw").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "broker") {
				t.Fatalf("kcat -L with %s: %v\n%s", mech, err, out)
			}
			// A refused login makes kcat wait out its whole -m timeout; an
			// admitted one answers in tens of milliseconds (measured: 13-37 ms
			// with the right password), so 2 s still tells the two apart.
			out, err = exec.Command(kcat, "-b", p.kafka, "-L", "-m", "2", "-X", "security.protocol=SASL_PLAINTEXT",
				"-X", "sasl.mechanisms="+mech, "-X", "sasl.username=carol", "-X", "sasl.password=nope").CombinedOutput()
			if err == nil {
				t.Fatalf("kcat -L with %s and a wrong password succeeded:\n%s", mech, out)
			}
		}
	} else {
		t.Log("kcat not installed: librdkafka's SASL not checked")
	}
}

// waitUntil polls cond until it holds or d passes.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
