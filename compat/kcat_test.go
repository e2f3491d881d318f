package compat

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// TestKcat drives librdkafka through kcat against the floodgate binary:
// kcat -P (acks=all, keyed records, librdkafka's partitioner), kcat -G (the
// balanced consumer: librdkafka's group client with auto-commit, which it
// turns on only when every classic group API is advertised) and kcat -L -J
// (metadata). kcat has no way to list or describe groups, so step 3 checks
// the metadata instead; the group itself is checked by the observer.
func TestKcat(t *testing.T) {
	if testing.Short() {
		t.Skip("client compatibility suite: skipped with -short")
	}
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("\n" + strings.Repeat("!", 78) +
			"\n!!! SKIPPED: librdkafka compatibility: kcat is not installed." +
			"\n!!! Install it with `make deps-test` (apt-get install kcat) to run this test.\n" +
			strings.Repeat("!", 78))
	}
	t.Parallel()
	addr := startBinary(t)
	version, _ := exec.Command(kcat, "-V").CombinedOutput()
	for _, l := range strings.Split(string(version), "\n") {
		if strings.Contains(l, "librdkafka") || strings.HasPrefix(l, "kcat -") {
			t.Logf("%s", strings.TrimSpace(l))
		}
	}
	c := &kcatClient{kcat: kcat, addr: addr, franz: &franz{addr: addr}}
	runScenario(t, c, addr, "kcat")
}

type kcatClient struct {
	kcat  string
	addr  string
	franz *franz // kcat cannot create topics
}

func (k *kcatClient) createTopic(t *testing.T, topic string, n int) {
	t.Logf("   (kcat cannot create topics: kadm creates it)")
	k.franz.createTopic(t, topic, n)
}

func (k *kcatClient) produce(t *testing.T, _, topic string, vals []string) {
	var in strings.Builder
	for i, v := range vals {
		fmt.Fprintf(&in, "k%d:%s\n", i, v)
	}
	runTool(t, "", in.String(), k.kcat, "-P", "-b", k.addr, "-t", topic, "-K", ":",
		"-X", "client.id=compat-kcat-producer", "-X", "acks=all", "-X", "linger.ms=5")
}

func (k *kcatClient) startMember(t *testing.T, group, topic, name string, out chan<- rec) member {
	return startProcMember(t, "kcat -G ("+name+")", "", name, out, k.kcat,
		"-b", k.addr, "-G", group, "-u", "-q", "-f", "%p %o %s\n",
		"-X", "client.id="+name,
		"-X", "auto.offset.reset=earliest",
		"-X", "session.timeout.ms=6000",
		"-X", "heartbeat.interval.ms=300",
		"-X", "auto.commit.interval.ms=200",
		"-X", "fetch.wait.max.ms=300",
		topic)
}

func (k *kcatClient) describeGroup(t *testing.T, group, topic string, members []string) {
	out := runTool(t, "", "", k.kcat, "-L", "-J", "-b", k.addr, "-t", topic)
	var md struct {
		Brokers []struct {
			ID   int32  `json:"id"`
			Name string `json:"name"`
		} `json:"brokers"`
		Topics []struct {
			Topic      string `json:"topic"`
			Err        string `json:"err"`
			Partitions []struct {
				Partition int32 `json:"partition"`
				Leader    int32 `json:"leader"`
			} `json:"partitions"`
		} `json:"topics"`
	}
	if err := json.Unmarshal([]byte(out), &md); err != nil {
		t.Fatalf("kcat -L -J: %v\n%s", err, out)
	}
	if len(md.Brokers) != 1 || !strings.HasSuffix(md.Brokers[0].Name, k.addr) {
		t.Fatalf("kcat -L: brokers %+v, want one at %s", md.Brokers, k.addr)
	}
	if len(md.Topics) != 1 || md.Topics[0].Topic != topic || len(md.Topics[0].Partitions) != partitions {
		t.Fatalf("kcat -L: topics %+v, want %s with %d partitions", md.Topics, topic, partitions)
	}
	for _, p := range md.Topics[0].Partitions {
		if p.Leader != md.Brokers[0].ID {
			t.Fatalf("kcat -L: partition %d led by %d, want broker %d", p.Partition, p.Leader, md.Brokers[0].ID)
		}
	}
	t.Logf("   kcat -L: broker %s, topic %s with %d partitions (kcat cannot list or describe groups)", md.Brokers[0].Name, topic, partitions)
}
