package core

import (
	"fmt"
	"testing"
	"time"
)

// TestListedEpochs: an add that may have dropped a room from a full
// list makes the user's other listings unknown, not other users', and
// not the user's leaves.
func TestListedEpochs(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newListed(func() time.Time { return now })
	l.mark("ann", "a", true)
	l.mark("ann", "b", false)
	l.mark("bob", "a", true)
	stamp := l.stamp()
	l.forget("ann", "gone")
	if !l.recent("ann", "a") || !l.recent("ann", "b") || !l.recent("bob", "a") {
		t.Fatal("a listing just marked is not recent")
	}
	l.mark("ann", "c", true) // may have dropped a or b
	switch {
	case l.recent("ann", "a") || l.recent("ann", "b"):
		t.Fatal("a listing from before an add is still known")
	case !l.recent("ann", "c") || !l.recent("bob", "a"):
		t.Fatal("the new listing, or another user's, is not known")
	case !l.leftAfter("ann", "gone", stamp):
		t.Fatal("a leave is forgotten after an add")
	}
	now = now.Add(listedTTL)
	if l.recent("ann", "c") || l.leftAfter("ann", "gone", stamp) {
		t.Fatal("a mark is known after its TTL")
	}
}

// TestListedSweep: a full cache drops what has lapsed and listings of
// past epochs and keeps the rest as they were; one still full after
// that is emptied. Either way it stays within maxListedCache.
func TestListedSweep(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newListed(func() time.Time { return now })
	l.mark("ann", "old", true)
	l.mark("ann", "new", true) // "old" is of a past epoch now
	l.mark("bob", "a", false)
	stamp := l.stamp()
	l.forget("bob", "gone")
	fill := func(prefix string) {
		for i := 0; len(l.at) < maxListedCache; i++ {
			l.mark(fmt.Sprint(prefix, i), "r", true)
		}
	}
	fill("u")
	l.mu.Lock()
	lapsed := listKey{"bob", "a"}
	e := l.at[lapsed]
	e.at = now.Add(-listedTTL)
	l.at[lapsed] = e
	l.mu.Unlock()
	before := len(l.at)
	l.mark("cat", "x", true) // sweeps: ann's "old" and bob's "a" go, then cat's is put
	switch {
	case len(l.at) != before-1:
		t.Fatalf("%d marks after the sweep, want %d (two dropped, one put)", len(l.at), before-1)
	case l.recent("ann", "old"):
		t.Fatal("a listing of a past epoch is known after the sweep")
	case l.recent("bob", "a"):
		t.Fatal("a lapsed listing is known after the sweep")
	case !l.recent("ann", "new") || !l.recent("cat", "x") || !l.recent("u0", "r"):
		t.Fatal("a current listing is unknown after the sweep")
	case !l.leftAfter("bob", "gone", stamp):
		t.Fatal("a leave is forgotten by the sweep")
	case len(l.epoch) != 0:
		t.Fatalf("%d epochs kept after the sweep, want none", len(l.epoch))
	}
	l.mark("ann", "newer", true) // epochs still count after the sweep
	if l.recent("ann", "new") || !l.recent("ann", "newer") {
		t.Fatal("an add after the sweep does not make the user's other listings unknown")
	}
	l = newListed(func() time.Time { return now })
	fill("v") // full of current listings: nothing to drop
	l.mark("cat", "y", false)
	if len(l.at) != 1 || !l.recent("cat", "y") || l.recent("v0", "r") {
		t.Fatalf("%d marks after a sweep of a cache with nothing lapsed, want only the new one", len(l.at))
	}
}
