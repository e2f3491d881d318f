package compat

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TestKafkaJS drives kafkajs (node, compat/js/client.js) against the
// floodgate binary: admin.createTopics, producer.send (acks=-1), a consumer
// group with kafkajs' default auto-commit (after every batch, and on
// disconnect), and admin.listGroups and admin.describeGroups. kafkajs only
// speaks non-flexible protocol versions. The npm dependencies are those of
// compat/js/package-lock.json, installed with `npm ci` when missing.
func TestKafkaJS(t *testing.T) {
	if testing.Short() {
		t.Skip("client compatibility suite: skipped with -short")
	}
	node := kafkajsSetup(t)
	t.Parallel()
	addr := startBinary(t)
	runScenario(t, &kafkaJS{node: node, dir: jsDir(t), addr: addr}, addr, "kafkajs")
}

func jsDir(t *testing.T) string {
	dir, err := filepath.Abs("js")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

var (
	npmOnce sync.Once
	npmErr  string
)

// kafkajsSetup finds node and installs kafkajs, or skips loudly.
func kafkajsSetup(t *testing.T) string {
	t.Helper()
	skip := func(why string) {
		t.Skip("\n" + strings.Repeat("!", 78) +
			"\n!!! SKIPPED: kafkajs compatibility: " + why +
			"\n!!! Install node and npm (Debian: apt-get install nodejs npm) to run this test.\n" +
			strings.Repeat("!", 78))
	}
	node, err := exec.LookPath("node")
	if err != nil {
		skip("node is not installed")
	}
	dir := jsDir(t)
	npmOnce.Do(func() {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "kafkajs", "package.json")); err == nil {
			return
		}
		npm, err := exec.LookPath("npm")
		if err != nil {
			npmErr = "npm is not installed and compat/js/node_modules is missing"
			return
		}
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			npmErr = "`npm ci` in compat/js failed: " + err.Error() + "\n" + string(out)
		}
	})
	if npmErr != "" {
		skip(npmErr)
	}
	out, _ := exec.Command(node, "--version").Output()
	pkg, _ := os.ReadFile(filepath.Join(dir, "node_modules", "kafkajs", "package.json"))
	var meta struct {
		Version string `json:"version"`
	}
	_ = json.Unmarshal(pkg, &meta)
	t.Logf("node %s, kafkajs %s", strings.TrimSpace(string(out)), meta.Version)
	return node
}

type kafkaJS struct {
	node, dir, addr string
}

func (k *kafkaJS) createTopic(t *testing.T, topic string, n int) {
	runTool(t, k.dir, "", k.node, "client.js", "create", k.addr, topic, strconv.Itoa(n))
}

func (k *kafkaJS) produce(t *testing.T, _, topic string, vals []string) {
	runTool(t, k.dir, strings.Join(vals, "\n")+"\n", k.node, "client.js", "produce", k.addr, topic)
}

func (k *kafkaJS) startMember(t *testing.T, group, topic, name string, out chan<- rec) member {
	return startProcMember(t, "kafkajs consumer ("+name+")", k.dir, name, out, k.node,
		"client.js", "consume", k.addr, group, topic, name)
}

func (k *kafkaJS) describeGroup(t *testing.T, group, topic string, members []string) {
	out := runTool(t, k.dir, "", k.node, "client.js", "groups", k.addr, group)
	var res struct {
		Listed struct {
			Groups []struct {
				GroupID      string `json:"groupId"`
				ProtocolType string `json:"protocolType"`
			} `json:"groups"`
		} `json:"listed"`
		Described struct {
			Groups []struct {
				GroupID      string `json:"groupId"`
				ErrorCode    int    `json:"errorCode"`
				State        string `json:"state"`
				ProtocolType string `json:"protocolType"`
				Protocol     string `json:"protocol"`
				Members      []struct {
					ClientID         string             `json:"clientId"`
					MemberAssignment map[string][]int32 `json:"memberAssignment"`
				} `json:"members"`
			} `json:"groups"`
		} `json:"described"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("kafkajs groups: %v\n%s", err, out)
	}
	found := false
	for _, g := range res.Listed.Groups {
		if g.GroupID == group && g.ProtocolType == "consumer" {
			found = true
		}
	}
	if !found {
		t.Fatalf("kafkajs admin.listGroups: %s (consumer) missing from %+v", group, res.Listed.Groups)
	}
	if len(res.Described.Groups) != 1 || res.Described.Groups[0].GroupID != group || res.Described.Groups[0].ErrorCode != 0 {
		t.Fatalf("kafkajs admin.describeGroups: %s", out)
	}
	g := res.Described.Groups[0]
	var clientIDs []string
	assigned := 0
	for _, m := range g.Members {
		clientIDs = append(clientIDs, m.ClientID)
		assigned += len(m.MemberAssignment[topic])
	}
	checkDescribed(t, "kafkajs admin", g.State, g.ProtocolType, clientIDs, members)
	if assigned != partitions {
		t.Fatalf("kafkajs admin.describeGroups: %d partitions assigned, want %d: %s", assigned, partitions, out)
	}
}
