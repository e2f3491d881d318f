package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// poisonBatch is issue 14's 69-byte stored batch: snappy, valid CRC, the
// payload only the 8-byte xerial magic.
func poisonBatch() []byte {
	b := make([]byte, 61, 69)
	binary.BigEndian.PutUint32(b[8:], 49+8)
	b[16] = 2
	binary.BigEndian.PutUint16(b[21:], 2) // snappy
	binary.BigEndian.PutUint64(b[43:], 0xffffffffffffffff)
	binary.BigEndian.PutUint16(b[51:], 0xffff)
	binary.BigEndian.PutUint32(b[53:], 0xffffffff)
	binary.BigEndian.PutUint32(b[57:], 1)
	b = append(b, 0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func produceBatch(t *testing.T, kafkaAddr, topic string, batch []byte) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("produce: %v %+v", err, resp)
	}
}

// TestBinarySurvivesPoisonBatch, against the real binary: a REST long poll
// waiting when issue 14's poison snappy batch arrives is answered 500
// naming it (the process used to exit on the fetch waiter's goroutine);
// 1,000 more GETs of it leave the route serving; and a restart on the same
// data dir (the poison on disk) starts and answers the same way.
func TestBinarySurvivesPoisonBatch(t *testing.T) {
	dir := t.TempDir()
	p := startFloodgate(t, 4096, "--data-dir", dir, "--fsync", "always")
	cl := &http.Client{Timeout: 15 * time.Second}
	get := func(p *process, path string) (int, string) {
		t.Helper()
		resp, err := cl.Get("http://" + p.http + path)
		if err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, p.stderr.String())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Create the topic (Metadata auto-creates it) before the long poll.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kc, err := kgo.NewClient(kgo.SeedBrokers(p.kafka))
	if err != nil {
		t.Fatal(err)
	}
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("poison")
	meta.Topics = append(meta.Topics, mt)
	meta.AllowAutoTopicCreation = true
	if _, err := meta.RequestWith(ctx, kc); err != nil {
		t.Fatal(err)
	}
	kc.Close()

	type res struct {
		code int
		body string
	}
	done := make(chan res, 1)
	go func() {
		resp, err := cl.Get("http://" + p.http + "/topics/poison/partitions/0/records?offset=0&timeout=10000")
		if err != nil {
			done <- res{-1, err.Error()}
			return
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		done <- res{resp.StatusCode, b.String()}
	}()
	time.Sleep(500 * time.Millisecond)
	produceBatch(t, p.kafka, "poison", poisonBatch())
	r := <-done
	if r.code != 500 || !strings.Contains(r.body, `"next_offset":1`) {
		t.Fatalf("long poll on the poison: %d %s", r.code, r.body)
	}
	p.alive(t)
	for i := 0; i < 1000; i++ {
		if code, body := get(p, "/topics/poison/partitions/0/records?offset=0"); code != 500 {
			t.Fatalf("GET %d: %d %s", i, code, body)
		}
	}
	if code, _ := get(p, "/topics/poison/partitions/0/offsets"); code != 200 {
		t.Fatalf("the records route's neighbours stopped serving: %d", code)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()

	q := startFloodgate(t, 4096, "--data-dir", dir, "--fsync", "always")
	if code, body := get(q, "/topics/poison/partitions/0/records?offset=0"); code != 500 || !strings.Contains(body, `"offset":0`) {
		t.Fatalf("after restart: %d %s", code, body)
	}
	if code, _ := get(q, "/health"); code != 200 {
		t.Fatalf("health after restart: %d", code)
	}
	q.alive(t)
}
