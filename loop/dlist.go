package loop

// links are an element's neighbours in a dlist.
type links[E any] struct{ prev, next *E }

// linker is an element that holds its own links.
type linker[E any] interface{ links() *links[E] }

// linked is a pointer to an element that holds its own links.
type linked[E any] interface {
	*E
	linker[E]
}

// The list's element types. Static checkers do not follow a method used
// only through a type parameter's constraint, so these assertions also
// mark links() as used.
var (
	_ linker[conn]             = (*conn)(nil)
	_ linker[pendingHandshake] = (*pendingHandshake)(nil)
)

// dlist is an intrusive doubly linked list, oldest at the head: elements
// hold their links, so listing one allocates nothing and one leaves from
// anywhere in O(1). The idle list (loopState) and the TLS handshake table
// use it. The zero value is an empty list.
type dlist[E any, P linked[E]] struct{ head, tail *E }

// pushBack appends e, which must not be in a list.
func (l *dlist[E, P]) pushBack(e P) {
	n := e.links()
	n.prev, n.next = l.tail, nil
	if l.tail != nil {
		P(l.tail).links().next = e
	} else {
		l.head = e
	}
	l.tail = e
}

// remove takes e out of the list, which must hold it.
func (l *dlist[E, P]) remove(e P) {
	n := e.links()
	if n.prev != nil {
		P(n.prev).links().next = n.next
	} else {
		l.head = n.next
	}
	if n.next != nil {
		P(n.next).links().prev = n.prev
	} else {
		l.tail = n.prev
	}
	n.prev, n.next = nil, nil
}
