package main

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestInvalidFlagsExitNamingTheFlag runs the binary with bad values: each
// must exit with status 1 at once (not by the test's timeout) with a last
// line "floodgate: ..." that names the flag and the refused value.
func TestInvalidFlagsExitNamingTheFlag(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := floodgateBinary(t)
	tests := []struct {
		args []string
		flag string
	}{
		{[]string{"--max-connections", "0"}, "max-connections"},
		{[]string{"--max-connections", "lots"}, "max-connections"},
		{[]string{"--max-request-size", "10"}, "max-request-size"},
		{[]string{"--request-read-timeout", "0"}, "request-read-timeout"},
		{[]string{"--throttle-mode", "sometimes"}, "throttle-mode"},
		{[]string{"--quota-key", "users"}, "quota-key"},
		{[]string{"--sasl-mechanisms", "PLAIN,GSSAPI"}, "sasl-mechanisms"},
		{[]string{"--sasl-mechanisms", "PLAIN", "--http-auth", "digest"}, "http-auth"},
		{[]string{"--log-format", "xml"}, "log-format"},
		{[]string{"--log-level", "loud"}, "log-level"},
		{[]string{"--default-partitions", "0"}, "default-partitions"},
		{[]string{"--advertised-kafka-addr", "0.0.0.0:9092"}, "advertised-kafka-addr"},
		{[]string{"--upstream-brokers", "nohostport"}, "upstream-brokers"},
		{[]string{"--upstream-brokers", "127.0.0.1:1", "--gateway-listen-ports", "9-1"}, "gateway-listen-ports"},
		{[]string{"--fsync", "sometimes"}, "fsync"},
		{[]string{"--offsets-retention-minutes", "0"}, "offsets-retention-minutes"},
		{[]string{"--group-min-session-timeout-ms", "60000", "--group-max-session-timeout-ms", "6000"}, "group-max-session-timeout-ms"},
		{[]string{"--proxy-protocol", "smtp"}, "proxy-protocol"},
		{[]string{"--proxy-protocol", "kafka"}, "proxy-protocol"},
		{[]string{"--proxy-protocol-from", "10.0.0.0/33"}, "proxy-protocol-from"},
		{[]string{"--proxy-protocol-timeout", "0"}, "proxy-protocol-timeout"},
		{[]string{"--max-request-size", "1.5B"}, "max-request-size"},
		{[]string{"--connection-idle-timeout", "soon"}, "connection-idle-timeout"},
		{[]string{"--memory-limit-bytes", "lots"}, "request-memory-bytes"}, // a former name: the refusal names the flag as it is now
		{[]string{"--segment-bytes", "1.5B"}, "segment-bytes"},
		{[]string{"--fsync-interval-ms", "soon"}, "fsync-interval-ms"},
		{[]string{"--upstream-brokers", "127.0.0.1:1", "--upstream-request-timeout", "soon"}, "upstream-request-timeout"},
		{[]string{"--gateway-splice-pipes", "4097"}, "gateway-splice-pipes"},
		{[]string{"--gateway-splice-pipes", "-1"}, "gateway-splice-pipes"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, "="), func(t *testing.T) {
			args := append([]string{"serve", "--kafka-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--in-memory"}, tt.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("still running after 10s (the flag was accepted) for %v:\n%s", tt.args, out)
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("want exit status 1 for %v, got %v:\n%s", tt.args, err, out)
			}
			// main prints the refusal as its last line: "floodgate: <error>".
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			msg := lines[len(lines)-1]
			bad := tt.args[len(tt.args)-1]
			if !strings.HasPrefix(msg, "floodgate: ") || !strings.Contains(msg, "-"+tt.flag) || !strings.Contains(msg, bad) {
				t.Fatalf("last line %q is not a refusal naming -%s and the value %q:\n%s", msg, tt.flag, bad, out)
			}
		})
	}
}
