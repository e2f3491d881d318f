package loop

import (
	"slices"
	"testing"
)

type item struct {
	id    int
	place links[item]
}

func (i *item) links() *links[item] { return &i.place }

var _ linker[item] = (*item)(nil)

// TestDlistRemovesFromAnywhere: removing the head, a middle element, the
// tail or the only element leaves the others in order, walked both ways,
// and the removed element unlinked.
func TestDlistRemovesFromAnywhere(t *testing.T) {
	for _, tt := range []struct {
		name   string
		n      int
		remove []int
		want   []int
	}{
		{"head", 3, []int{0}, []int{1, 2}},
		{"middle", 3, []int{1}, []int{0, 2}},
		{"tail", 3, []int{2}, []int{0, 1}},
		{"only", 1, []int{0}, nil},
		{"all, middle first", 3, []int{1, 0, 2}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var l dlist[item, *item]
			items := make([]*item, tt.n)
			for i := range items {
				items[i] = &item{id: i}
				l.pushBack(items[i])
			}
			for _, r := range tt.remove {
				l.remove(items[r])
				if items[r].place != (links[item]{}) {
					t.Fatalf("item %d still linked after its removal", r)
				}
			}
			var fwd, back []int
			for e := l.head; e != nil; e = e.place.next {
				fwd = append(fwd, e.id)
			}
			for e := l.tail; e != nil; e = e.place.prev {
				back = append(back, e.id)
			}
			slices.Reverse(back)
			if !slices.Equal(fwd, tt.want) || !slices.Equal(back, tt.want) {
				t.Fatalf("forwards %v, backwards (reversed) %v, want %v", fwd, back, tt.want)
			}
		})
	}
}
