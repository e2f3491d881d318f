package compat

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The shape of every client's scenario.
const (
	partitions   = 4
	firstBatch   = 200 // records consumed by the two-member group
	secondBatch  = 100 // records after one member restarted
	thirdBatch   = 100 // records produced while the whole group was down
	waitTimeout  = 45 * time.Second
	quietPeriod  = 700 * time.Millisecond // how long to watch for duplicates after a phase
	stableChecks = 200 * time.Millisecond
)

// rec is one record a group member received.
type rec struct {
	member    string
	partition int32
	offset    int64
	value     string
}

// client is one client library under test.
type client interface {
	// createTopic creates topic with n partitions.
	createTopic(t *testing.T, topic string, n int)
	// produce writes values (distinct strings) to topic, spread over its
	// partitions, and returns once they are acknowledged (or, for acks=0,
	// written and flushed).
	produce(t *testing.T, phase, topic string, values []string)
	// startMember joins group as a consumer of topic (resetting to the
	// earliest offset when nothing is committed) and sends every record it
	// receives to out. It commits what it delivered synchronously, or at
	// the latest when it is closed.
	startMember(t *testing.T, group, topic, name string, out chan<- rec) member
	// describeGroup lists the groups and describes group through the client
	// library itself, and checks what it sees (Stable, two members, every
	// partition assigned). It may t.Skip when the library has no such API.
	describeGroup(t *testing.T, group, topic string, members []string)
}

// member is one running group member.
type member interface {
	// close stops consuming, commits what was delivered and leaves the
	// group.
	close(t *testing.T)
}

// tracker collects what the members receive and checks it phase by phase.
type tracker struct {
	t  *testing.T
	ch chan rec

	mu       sync.Mutex
	seen     map[string]rec // value -> first delivery
	phase    string         // prefix of the values the current phase expects
	got      int            // distinct values of the current phase received
	byMember map[string]int // deliveries of the current phase per member
	errs     []string
}

func newTracker(t *testing.T) *tracker {
	tr := &tracker{t: t, ch: make(chan rec, 1024), seen: map[string]rec{}, byMember: map[string]int{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for r := range tr.ch {
			tr.add(r)
		}
	}()
	t.Cleanup(func() { close(tr.ch); <-done })
	return tr
}

func (tr *tracker) add(r rec) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if first, dup := tr.seen[r.value]; dup {
		tr.errs = append(tr.errs, fmt.Sprintf("%q delivered twice: to %s (p%d@%d), then to %s (p%d@%d)",
			r.value, first.member, first.partition, first.offset, r.member, r.partition, r.offset))
		return
	}
	tr.seen[r.value] = r
	if !strings.HasPrefix(r.value, tr.phase+"-") {
		tr.errs = append(tr.errs, fmt.Sprintf("%q (p%d@%d) delivered to %s during phase %q", r.value, r.partition, r.offset, r.member, tr.phase))
		return
	}
	tr.got++
	tr.byMember[r.member]++
}

// begin starts a phase whose values are prefixed with phase.
func (tr *tracker) begin(phase string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.phase, tr.got = phase, 0
	tr.byMember = map[string]int{}
}

// check fails the test on any duplicate or out-of-phase delivery so far.
func (tr *tracker) check() {
	tr.t.Helper()
	tr.mu.Lock()
	errs := tr.errs
	tr.errs = nil
	tr.mu.Unlock()
	for _, e := range errs {
		tr.t.Error(e)
	}
	if len(errs) > 0 {
		tr.t.FailNow()
	}
}

// await waits until n distinct values of the phase arrived, then watches a
// little longer for duplicates. It returns the deliveries per member.
func (tr *tracker) await(n int) map[string]int {
	tr.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		tr.check()
		tr.mu.Lock()
		got := tr.got
		tr.mu.Unlock()
		if got >= n {
			break
		}
		if time.Now().After(deadline) {
			tr.t.Fatalf("phase %q: %d of %d records delivered after %v", tr.phase, got, n, waitTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(quietPeriod)
	tr.check()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.got != n {
		tr.t.Fatalf("phase %q: %d records delivered, want %d", tr.phase, tr.got, n)
	}
	out := map[string]int{}
	for k, v := range tr.byMember {
		out[k] = v
	}
	return out
}

func values(phase string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%04d", phase, i)
	}
	return out
}

// observer watches the group from the outside (franz-go's kadm), so every
// client's scenario waits for the same broker-side state.
type observer struct {
	t   *testing.T
	adm *kadm.Client
}

func newObserver(t *testing.T, addr string) *observer {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("compat-observer"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &observer{t: t, adm: kadm.NewClient(cl)}
}

// waitStable waits until group is Stable with n members that each own at
// least one partition and together own all of topic's partitions.
func (o *observer) waitStable(group, topic string, n int) kadm.DescribedGroup {
	o.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	var last string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		dgs, err := o.adm.DescribeGroups(ctx, group)
		cancel()
		if err == nil {
			dg := dgs[group]
			owned := map[int32]bool{}
			allOwn := true
			for _, m := range dg.Members {
				c, ok := m.Assigned.AsConsumer()
				mine := 0
				if ok {
					for _, at := range c.Topics {
						if at.Topic == topic {
							for _, p := range at.Partitions {
								owned[p] = true
								mine++
							}
						}
					}
				}
				if mine == 0 {
					allOwn = false
				}
			}
			last = fmt.Sprintf("state %s, %d members, %d partitions assigned, err %v", dg.State, len(dg.Members), len(owned), dg.Err)
			if dg.Err == nil && dg.State == "Stable" && len(dg.Members) == n && allOwn && len(owned) == partitions {
				return dg
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			o.t.Fatalf("group %s never became Stable with %d members owning all %d partitions: %s", group, n, partitions, last)
		}
		time.Sleep(stableChecks)
	}
}

// waitEmpty waits until group has no members.
func (o *observer) waitEmpty(group string) {
	o.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		dgs, err := o.adm.DescribeGroups(ctx, group)
		cancel()
		if err == nil && dgs[group].State == "Empty" && len(dgs[group].Members) == 0 {
			return
		}
		if time.Now().After(deadline) {
			o.t.Fatalf("group %s still has members after %v: %+v %v", group, waitTimeout, dgs[group], err)
		}
		time.Sleep(stableChecks)
	}
}

// settleCommits waits, up to limit, until the group's committed offsets
// reach the end of every partition of topic (its members auto-commit what
// they delivered). It asserts nothing: checkCommitted does, after the
// members stopped. Why wait: a member stopped right after it delivered
// commits those records only on close, and librdkafka's close-time commit
// can meet the rebalance its neighbour's leaving started
// (REBALANCE_IN_PROGRESS, as from Kafka) and is not retried, so the
// scenario would measure that race instead of floodgate.
func (o *observer) settleCommits(group, topic string, limit time.Duration) {
	o.t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ends, err1 := o.adm.ListEndOffsets(ctx, topic)
		offs, err2 := o.adm.FetchOffsets(ctx, group)
		cancel()
		if err1 == nil && err2 == nil {
			behind := false
			ends.Each(func(e kadm.ListedOffset) {
				if c, ok := offs.Lookup(topic, e.Partition); !ok || c.At != e.Offset {
					behind = true
				}
			})
			if !behind {
				return
			}
		}
		time.Sleep(stableChecks)
	}
}

// checkCommitted checks that the group's committed offsets are the end of
// every partition of topic.
func (o *observer) checkCommitted(group, topic string, total int) {
	o.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := o.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		o.t.Fatal(err)
	}
	offs, err := o.adm.FetchOffsets(ctx, group)
	if err != nil {
		o.t.Fatal(err)
	}
	sum := int64(0)
	ends.Each(func(e kadm.ListedOffset) {
		sum += e.Offset
		c, ok := offs.Lookup(topic, e.Partition)
		if !ok {
			o.t.Errorf("partition %d: no committed offset (end %d)", e.Partition, e.Offset)
			return
		}
		if c.At != e.Offset {
			o.t.Errorf("partition %d: committed %d, end offset %d", e.Partition, c.At, e.Offset)
		}
	})
	if sum != int64(total) {
		o.t.Errorf("end offsets add up to %d, want %d records", sum, total)
	}
}

// runScenario is the compatibility scenario every client goes through.
func runScenario(t *testing.T, c client, addr, name string) {
	obs := newObserver(t, addr)
	start := time.Now()
	step := func(format string, args ...any) {
		t.Helper()
		t.Logf("[%5.1fs] "+format, append([]any{time.Since(start).Seconds()}, args...)...)
	}
	topic, group := "compat-"+name, "compat-"+name+"-group"
	tr := newTracker(t)

	step("1. create topic %s with %d partitions", topic, partitions)
	c.createTopic(t, topic, partitions)

	step("2. two members join group %s and share the partitions", group)
	a := c.startMember(t, group, topic, name+"-a", tr.ch)
	b := c.startMember(t, group, topic, name+"-b", tr.ch)
	dg := obs.waitStable(group, topic, 2)
	step("   group Stable, protocol %s, generation members %d", dg.Protocol, len(dg.Members))

	step("3. list and describe groups with %s's own admin API", name)
	c.describeGroup(t, group, topic, []string{name + "-a", name + "-b"})

	step("4. produce %d records; the two members see each exactly once", firstBatch)
	tr.begin("one")
	c.produce(t, "one", topic, values("one", firstBatch))
	per := tr.await(firstBatch)
	step("   delivered per member: %v", per)
	if len(per) != 2 {
		t.Fatalf("records went to %d members, want both: %v", len(per), per)
	}

	step("5. restart member a; both resume from the committed offsets")
	a.close(t)
	obs.waitStable(group, topic, 1)
	a = c.startMember(t, group, topic, name+"-a", tr.ch)
	obs.waitStable(group, topic, 2)
	tr.begin("two")
	c.produce(t, "two", topic, values("two", secondBatch))
	per = tr.await(secondBatch)
	step("   delivered per member: %v", per)

	step("6. stop the whole group, produce %d records, one member resumes alone", thirdBatch)
	obs.settleCommits(group, topic, 6*time.Second)
	a.close(t)
	b.close(t)
	obs.waitEmpty(group)
	obs.checkCommitted(group, topic, firstBatch+secondBatch)
	tr.begin("three")
	c.produce(t, "three", topic, values("three", thirdBatch))
	a = c.startMember(t, group, topic, name+"-a", tr.ch)
	obs.waitStable(group, topic, 1)
	per = tr.await(thirdBatch)
	step("   delivered per member: %v", per)
	a.close(t)
	obs.waitEmpty(group)
	obs.checkCommitted(group, topic, firstBatch+secondBatch+thirdBatch)
}

// sortedKeys is for stable messages.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
