// Package bench holds floodgate's load tools: Kafka produce/consume load
// with franz-go, an open-loop HTTP/1.1 load generator, an idle-connection
// holder with a flood mode, and an overload sweep. Each tool reports a
// progress line while it runs, a summary table, JSON, and an optional chart.
package bench

import (
	"math"
	"math/bits"
	"sort"
	"sync"
	"time"
)

// histSub is the number of sub-buckets per power of two; the relative
// error of a reported percentile is at most 1/histSub (about 3%).
const histSub = 32

// Hist is a log-linear latency histogram with bounded memory. The zero
// value is ready to use; it is not safe for concurrent use (merge per-worker
// histograms with Merge).
type Hist struct {
	counts [64 * histSub]uint64
	n      uint64
	sum    float64
	max    int64
}

func histIndex(ns int64) int {
	if ns < histSub {
		if ns < 0 {
			ns = 0
		}
		return int(ns)
	}
	v := uint64(ns)
	exp := bits.Len64(v) - 1 // v in [2^exp, 2^(exp+1))
	shift := exp - 5         // log2(histSub) = 5
	mant := int(v>>uint(shift)) - histSub
	return (shift+1)*histSub + mant
}

func histValue(i int) int64 {
	if i < histSub {
		return int64(i)
	}
	shift := i/histSub - 1
	mant := i%histSub + histSub
	// midpoint of the bucket
	lo := int64(mant) << uint(shift)
	return lo + (int64(1)<<uint(shift))/2
}

// Record adds one latency.
func (h *Hist) Record(d time.Duration) {
	ns := int64(d)
	h.counts[histIndex(ns)]++
	h.n++
	h.sum += float64(ns)
	if ns > h.max {
		h.max = ns
	}
}

// Merge adds o's samples to h.
func (h *Hist) Merge(o *Hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	if o.max > h.max {
		h.max = o.max
	}
}

// Count is the number of samples.
func (h *Hist) Count() uint64 { return h.n }

// Quantile returns the latency at quantile q (0..1), or 0 with no samples.
func (h *Hist) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := histValue(i)
			if v > h.max {
				v = h.max
			}
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}

// Mean returns the mean latency.
func (h *Hist) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Latency is the JSON form of a latency distribution, in milliseconds.
type Latency struct {
	Count  uint64  `json:"count"`
	MeanMS float64 `json:"mean_ms"`
	P50MS  float64 `json:"p50_ms"`
	P99MS  float64 `json:"p99_ms"`
	P999MS float64 `json:"p999_ms"`
	MaxMS  float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// Summary returns the distribution's percentiles.
func (h *Hist) Summary() Latency {
	return Latency{
		Count:  h.n,
		MeanMS: round3(ms(h.Mean())),
		P50MS:  round3(ms(h.Quantile(0.50))),
		P99MS:  round3(ms(h.Quantile(0.99))),
		P999MS: round3(ms(h.Quantile(0.999))),
		MaxMS:  round3(ms(time.Duration(h.max))),
	}
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// lockedHist is a Hist behind a mutex, for low-rate shared recording.
type lockedHist struct {
	mu sync.Mutex
	h  Hist
}

func (l *lockedHist) Record(d time.Duration) {
	l.mu.Lock()
	l.h.Record(d)
	l.mu.Unlock()
}

func (l *lockedHist) snapshot() *Hist {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.h
	return &c
}

// Median returns the median of xs (0 for none); xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
