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

// TestBudgetRoomIsWhatReserveForWouldTake: Room is the lesser of what is
// left of the budget and of the client's share, and exactly that much
// more fits.
func TestBudgetRoomIsWhatReserveForWouldTake(t *testing.T) {
	b := NewBudget(1000, 400)
	var a, c Share
	if err := b.ReserveFor(&a, 300); err != nil {
		t.Fatal(err)
	}
	if err := b.ReserveFor(&c, 400); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		sh   *Share
		want int64
	}{
		{"share left", &a, 100},
		{"share full", &c, 0},
		{"no share: budget left", nil, 300},
	} {
		if got := b.Room(tc.sh); got != tc.want {
			t.Errorf("%s: room %d, want %d", tc.name, got, tc.want)
		}
		if tc.want > 0 && b.ReserveFor(tc.sh, tc.want+1) == nil {
			t.Errorf("%s: %d fit beyond the room", tc.name, tc.want+1)
		}
		if err := b.ReserveFor(tc.sh, tc.want); err != nil {
			t.Errorf("%s: the room (%d) did not fit: %v", tc.name, tc.want, err)
		}
		b.ReleaseFor(tc.sh, tc.want)
	}
	ch := NewCharge(b, &a)
	if err := ch.Set(50); err != nil {
		t.Fatal(err)
	}
	if got := ch.Room(); got != 100 {
		t.Errorf("charge room %d, want 100 (its 50 and the share's 50 left)", got)
	}
}
