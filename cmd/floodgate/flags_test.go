package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestInvalidFlagsExitNamingTheFlag runs the binary with bad values: each
// must exit non-zero with a message that names the flag.
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
		{[]string{"--quota-key", "user"}, "quota-key"},
		{[]string{"--log-format", "xml"}, "log-format"},
		{[]string{"--log-level", "loud"}, "log-level"},
		{[]string{"--default-partitions", "0"}, "default-partitions"},
		{[]string{"--advertised-kafka-addr", "0.0.0.0:9092"}, "advertised-kafka-addr"},
		{[]string{"--upstream-brokers", "nohostport"}, "upstream-brokers"},
		{[]string{"--upstream-brokers", "127.0.0.1:1", "--gateway-listen-ports", "9-1"}, "gateway-listen-ports"},
		{[]string{"--fsync", "sometimes"}, "fsync"},
		{[]string{"--offsets-retention-minutes", "0"}, "offsets-retention-minutes"},
		{[]string{"--group-min-session-timeout-ms", "60000", "--group-max-session-timeout-ms", "6000"}, "group-max-session-timeout-ms"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, "="), func(t *testing.T) {
			args := append([]string{"serve", "--kafka-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--in-memory"}, tt.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput() // a server that starts is killed
			if err == nil {
				t.Fatalf("exit 0 for %v:\n%s", tt.args, out)
			}
			if !strings.Contains(string(out), tt.flag) {
				t.Fatalf("message does not name --%s:\n%s", tt.flag, out)
			}
		})
	}
}
