package storetest

import (
	"testing"
)

// testLookup: Lookup finds a stored message by (room, id), and nothing
// for an unknown id or room.
func testLookup(t *testing.T, f Factory) {
	fx := newFixture(t, f, nil)
	stored := fx.append("r", "a")
	got, ok, err := fx.Store.Lookup(fx.ctx, "r", "a")
	if err != nil || !ok || !got.Equal(stored) {
		t.Fatalf("Lookup(r, a) = %+v, %v, %v; want %+v", got, ok, err, stored)
	}
	for _, k := range [][2]string{{"r", "b"}, {"other", "a"}} {
		if _, ok, err := fx.Store.Lookup(fx.ctx, k[0], k[1]); ok || err != nil {
			t.Fatalf("Lookup(%s, %s) found something: %v, %v", k[0], k[1], ok, err)
		}
	}
}
