package main

import (
	"encoding/json"
	"testing"
)

// TestUnitsAndFormerNamesReachTheServer runs the binary with sizes and
// durations written with units, and limits given by their former names:
// /admin/stats shows each value in its row's unit under the new name.
func TestUnitsAndFormerNamesReachTheServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	p := startFloodgate(t, 16384, "--in-memory",
		"--max-request-size", "10MiB", "--connection-idle-timeout", "10m", "--offsets-retention-minutes", "2h",
		"--memory-limit-bytes", "512MiB", "--max-inflight-requests", "7",
		"--max-memory-bytes", "4GiB", "--max-in-flight-requests-per-worker", "9", "--header-read-timeout", "3s",
		"--max-body-size-bytes", "1.5MiB", "--fsync-interval-ms", "1s", "--segment-bytes", "64MiB", "--upstream-request-timeout", "5000")
	_, body, err := get(p.http, "/admin/stats")
	if err != nil {
		t.Fatal(err)
	}
	var stats any
	if err := json.Unmarshal([]byte(body), &stats); err != nil {
		t.Fatalf("/admin/stats: %v\n%s", err, body)
	}
	values := map[string]string{}
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if f, ok := v["flag"].(string); ok {
				values[f], _ = v["value"].(string)
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(stats)
	for flag, want := range map[string]string{
		"max-request-size": "10485760", "connection-idle-timeout": "600000", "offsets-retention-minutes": "120",
		"request-memory-bytes": "536870912", "max-in-flight-requests-per-connection": "7",
		"max-process-memory-bytes": "4294967296", "max-in-flight-requests-per-event-loop": "9", "header-read-timeout": "3000",
		"max-body-size-bytes": "1572864",
	} {
		if got := values[flag]; got != want {
			t.Errorf("/admin/stats --%s = %q, want %q", flag, got, want)
		}
	}
}
