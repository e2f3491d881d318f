package loop

import (
	"testing"

	"github.com/floodgate/floodgate/limits"
)

// TestReloadKeepsTheBucketsOfUnchangedRates: a reload that changes one
// rate rebuilds its buckets and keeps the others' (a client's debt and
// burst survive), and a quota-key change rebuilds the per-IP aggregates.
func TestReloadKeepsTheBucketsOfUnchangedRates(t *testing.T) {
	lim := limits.Defaults()
	lim.ProduceByteRate, lim.FetchByteRate = 1000, 2000
	prev := newLiveLimits(lim, HTTPLimits{}, nil)
	if prev.produceRate == nil || prev.fetchRate == nil || prev.produceIPRate == nil || prev.produceBytes == nil || prev.fetchBytes == nil {
		t.Fatalf("buckets missing at start: %+v", prev)
	}
	next := lim
	next.ProduceRate = lim.ProduceRate / 2
	next.FetchByteRate = 0
	l := newLiveLimits(next, HTTPLimits{}, prev)
	if l.produceRate == prev.produceRate || l.produceIPRate == prev.produceIPRate {
		t.Error("the changed produce rate kept its old buckets")
	}
	if l.produceRate.Rate() != float64(next.ProduceRate) {
		t.Errorf("produce rate %v, want %d", l.produceRate.Rate(), next.ProduceRate)
	}
	if l.fetchRate != prev.fetchRate || l.fetchIPRate != prev.fetchIPRate || l.produceBytes != prev.produceBytes {
		t.Error("an unchanged rate got new buckets")
	}
	if l.fetchBytes != nil {
		t.Error("a byte rate turned off kept its buckets")
	}
	next.QuotaKey = limits.QuotaByIP
	l2 := newLiveLimits(next, HTTPLimits{}, l)
	if l2.fetchIPRate != nil || l2.fetchRate != l.fetchRate {
		t.Error("quota-key ip: the per-IP aggregates stay, or the per-client buckets were rebuilt")
	}
}
