package limits

import "testing"

// TestBudgetSetLimitAppliesToTheNextReservation: a lowered limit refuses
// what no longer fits while the bytes held stay held, and the per-client
// cap follows; a raised one admits at once.
func TestBudgetSetLimitAppliesToTheNextReservation(t *testing.T) {
	b := NewBudget(1000, 500)
	var sh Share
	if err := b.ReserveFor(&sh, 400); err != nil {
		t.Fatal(err)
	}
	b.SetLimit(300, 100)
	if b.Limit() != 300 || b.PerClient() != 100 || b.Used() != 400 {
		t.Fatalf("limit %d per client %d used %d, want 300, 100, 400", b.Limit(), b.PerClient(), b.Used())
	}
	if !b.Exhausted() || !b.NearLimit() {
		t.Fatal("400 used of 300 is not exhausted")
	}
	var other Share
	if err := b.ReserveFor(&other, 1); err != ErrBudgetExhausted {
		t.Fatalf("1 byte over the lowered limit: %v, want ErrBudgetExhausted", err)
	}
	b.ReleaseFor(&sh, 350)
	if err := b.ReserveFor(&other, 101); err != ErrShareExhausted {
		t.Fatalf("101 bytes over the lowered per-client cap: %v, want ErrShareExhausted", err)
	}
	b.SetLimit(2000, 0)
	if err := b.ReserveFor(&other, 1500); err != nil || b.PerClient() != 2000 {
		t.Fatalf("1500 bytes under the raised limit: %v (per client %d)", err, b.PerClient())
	}
}
