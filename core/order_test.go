package core

import (
	"math/rand/v2"
	"testing"
)

// TestRoomOrder: a room's fan-out order holds each subscription once,
// whatever the joins, leaves and rejoins, each knowing its place in it,
// and a leave moves only the last subscription (into the leaver's
// place): the others keep their order.
func TestRoomOrder(t *testing.T) {
	r := &room{subs: make(map[*Session]*sub)}
	sessions := make([]*Session, 64)
	for i := range sessions {
		sessions[i] = &Session{}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(step int) {
		t.Helper()
		if len(r.order) != len(r.subs) {
			t.Fatalf("step %d: %d in the order, %d subscribed", step, len(r.order), len(r.subs))
		}
		for i, sb := range r.order {
			if sb.at != i || r.subs[sb.s] != sb {
				t.Fatalf("step %d: order[%d] says it is at %d, or is not the session's subscription", step, i, sb.at)
			}
		}
	}
	for step := range 2000 {
		s := sessions[rng.IntN(len(sessions))]
		if _, in := r.subs[s]; in && rng.IntN(2) == 0 {
			before := append([]*sub(nil), r.order...)
			at := r.subs[s].at
			if !r.dropSub(s) {
				t.Fatalf("step %d: a subscribed session's drop reported none", step)
			}
			for i, sb := range r.order { // only the last moved, into at
				if want := before[i]; i != at && sb != want || i == at && sb != before[len(before)-1] {
					t.Fatalf("step %d: a leave at %d moved order[%d]", step, at, i)
				}
			}
		} else {
			r.addSub(s, &sub{}) // a rejoin replaces the subscription
		}
		check(step)
	}
	for _, s := range sessions {
		r.dropSub(s)
	}
	check(-1)
	if len(r.order) != 0 || r.dropSub(sessions[0]) {
		t.Fatal("subscriptions left after every session left")
	}
}
