package loop

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/limits"
)

// quotaKey appends the rate-limit key of h's client to dst: by default the
// source IP and the client id together (Kafka's default quotas for
// unauthenticated clients are per client id; floodgate adds the address so
// that every host running a library's default id, "kgo" or "rdkafka", does
// not share one bucket).
func (c *conn) quotaKey(dst []byte, h *kafka.Header) []byte {
	ip := c.ip.As16()
	switch c.loop.s.lim().QuotaKey {
	case limits.QuotaByIP:
		return append(dst, ip[:]...)
	case limits.QuotaByClientID:
		if len(h.ClientID) == 0 {
			return append(dst, ip[:]...)
		}
		return append(dst, h.ClientID...)
	case limits.QuotaByUser:
		if u := c.user(); u != "" {
			// The prefix keeps a user name from colliding with an IP key.
			dst = append(dst, "user:"...)
			return append(dst, u...)
		}
		return append(dst, ip[:]...)
	default:
		dst = append(dst, ip[:]...)
		return append(dst, h.ClientID...)
	}
}

// ipQuota takes a token of the IP's aggregate bucket (QuotaByClientIDAndIP
// only): one address gets at most limits.QuotaClientsPerIP clients' rate,
// whatever client ids it sends.
func (c *conn) ipQuota(agg *limits.Buckets, now time.Time) time.Duration {
	if agg == nil {
		return 0
	}
	ip := c.ip.As16()
	return agg.Take(ip[:], now)
}

// newIPQuota returns the aggregate per-IP buckets of a request rate, or nil
// when the quota key does not need them.
func newIPQuota(cfg *limits.Config, rate int) *limits.Buckets {
	if rate <= 0 || cfg.QuotaKey != limits.QuotaByClientIDAndIP {
		return nil
	}
	r := float64(rate) * limits.QuotaClientsPerIP
	return limits.NewBuckets(r, r)
}

// newByteQuota returns the buckets of a byte rate (burst: one second of
// it), or nil when it is off.
func newByteQuota(rate int64) *limits.Buckets {
	if rate <= 0 {
		return nil
	}
	return limits.NewBuckets(float64(rate), float64(rate))
}

// byteQuota applies the byte-rate quotas at dispatch, on the event loop,
// as Kafka does (KIP-219, always in delay mode): a Produce is charged its
// bytes, and the throttle is the time the bytes over the rate take to
// drain; a Fetch is charged when its answer is built (chargeFetchBytes),
// so here it only waits out what its client's earlier answers overdrew.
// The connection is not read until then. It returns the throttle.
func (c *conn) byteQuota(r *kafkaRequest) time.Duration {
	s, h := c.loop.s, &r.hdr
	var b *limits.Buckets
	var n int64
	switch h.APIKey {
	case 0:
		b, n = s.quotas().produceBytes, int64(kafka.LengthSize)+int64(h.Length)
	case 1:
		b = s.quotas().fetchBytes
		if b != nil {
			r.quota = c.quotaKey(nil, h)
		}
	}
	if b == nil {
		return 0
	}
	now := time.Now()
	var wait time.Duration
	if r.quota != nil {
		wait = b.TakeN(r.quota, n, now)
	} else {
		var kb [64]byte
		wait = b.TakeN(c.quotaKey(kb[:0], h), n, now)
	}
	if wait <= 0 {
		return 0
	}
	c.byteThrottled(h, b, wait)
	if t := now.Add(wait); t.After(c.throttle) {
		c.throttle = t
	}
	return wait
}

// chargeFetchBytes charges a Fetch answer's record bytes to its client's
// byte quota (from a worker) and returns the throttle the answer carries:
// the time the bytes over the rate take to drain. The client's next
// request is not read before then (byteQuota).
func (r *kafkaRequest) chargeFetchBytes(resp kmsg.Response) time.Duration {
	b := r.c.loop.s.quotas().fetchBytes
	var n int64
	f, ok := resp.(*kmsg.FetchResponse)
	if ff, isFiles := resp.(*kafka.FileFetchResponse); isFiles {
		f, ok, n = ff.FetchResponse, true, ff.FileBytes()
	}
	if b == nil || !ok || r.quota == nil {
		return 0
	}
	for i := range f.Topics {
		for j := range f.Topics[i].Partitions {
			n += int64(len(f.Topics[i].Partitions[j].RecordBatches))
		}
	}
	wait := b.TakeN(r.quota, n, time.Now())
	if wait > 0 {
		r.c.byteThrottled(&r.hdr, b, wait)
	}
	return wait
}

// chargeFetchBytesRaw charges a forwarded Fetch answer (gateway mode) by
// its size; the throttle applies from the client's next request.
func (r *kafkaRequest) chargeFetchBytesRaw(resp []byte) { r.chargeFetchBytesN(int64(len(resp))) }

// chargeFetchBytesN is chargeFetchBytesRaw for an answer of n bytes (one
// relayed through a pipe is not in memory).
func (r *kafkaRequest) chargeFetchBytesN(n int64) {
	if b := r.c.loop.s.quotas().fetchBytes; b != nil && r.quota != nil && r.hdr.APIKey == 1 {
		if wait := b.TakeN(r.quota, n, time.Now()); wait > 0 {
			r.c.byteThrottled(&r.hdr, b, wait)
		}
	}
}

// byteThrottled counts and logs a request over its byte rate.
func (c *conn) byteThrottled(h *kafka.Header, b *limits.Buckets, wait time.Duration) {
	s := c.loop.s
	api := kmsg.NameForKey(h.APIKey)
	limit := "produce-byte-rate"
	if h.APIKey == 1 {
		limit = "fetch-byte-rate"
	}
	s.met.byteThrottled[h.APIKey&1].Inc()
	s.met.throttleTime.Update(wait.Seconds())
	s.warn.Warn("limit:"+limit, "request over its byte rate", "limit", limit, "configured", int64(b.Rate()),
		"actual", "over by "+wait.String()+" of bytes", "client_ip", c.ipStr, "client_id", string(h.ClientID),
		"api", api, "throttle_ms", wait.Milliseconds())
}
