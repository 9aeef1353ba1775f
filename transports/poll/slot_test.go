package poll_test

import (
	"context"
	"testing"
	"time"

	"github.com/chatd/chatd/transports/poll"
	"github.com/chatd/chatd/transports/transporttest"
)

// With one poll at work at a time (Running 1), a poll that waits holds no
// slot: while one client's poll waits for news, or for its pace, another
// client's polls are answered, and the waiting poll is answered once
// news (or a full answer) comes; each client gets every seq once.
func TestWaitingPollHoldsNoSlot(t *testing.T) {
	for _, wait := range []string{"news", "pace"} {
		t.Run(wait, func(t *testing.T) {
			room := "slot-" + wait
			// Presence off its timers (the passes, the poll sessions'
			// leases), so that nothing but the test ends a wait.
			hub := fast
			hub.PresenceInterval = time.Hour
			e := transporttest.NewEnv(t, transporttest.Options{Hub: hub})
			cfg := poll.Config{Hold: time.Hour, Interval: time.Hour, Park: -1, Running: 1, MaxEvents: 4}
			if wait == "pace" {
				cfg.Pace = func() time.Duration { return time.Hour }
			}
			h, base, _ := server(t, e, cfg)
			ann, bob := e.Token(t, "ann", transporttest.Claims{}), e.Token(t, "bob", transporttest.Claims{})
			send(t, e, room, 1)
			as := &seqs{room: room}
			a := get(t, base, ann, start(room))
			as.mustTake(t, "ann's first poll", a, 1)
			c := held(base, ann, room, a.Cursor)
			if wait == "pace" {
				// Answered with news and kept, then resumed with news
				// queued: that poll waits for the pace.
				eventually(t, "ann's poll is held", func() bool { return h.Waiting() == 1 })
				send(t, e, room, 1)
				a = (<-c).answer(t)
				as.mustTake(t, "ann's held poll", a, 1)
				send(t, e, room, 1)
				eventually(t, "ann's kept session has news", func() bool { return h.KeptWithNews() == 1 })
				c = held(base, ann, room, a.Cursor)
			}
			eventually(t, "ann's poll is waiting", func() bool { return h.Waiting() == 1 })

			// Bounded, so that a poll stuck behind ann's fails the test
			// instead of hanging it.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			b, err := getErr(ctx, base, bob, start(room))
			if err != nil {
				t.Fatalf("bob's poll while ann's waits for %s: %v", wait, err)
			}
			select {
			case r := <-c:
				// Bob's poll waited for ann's to end (an hour's wait cut
				// short by something else).
				t.Fatalf("ann's poll ended (%d events, HTTP %d) before bob's was answered", len(r.a.Events), r.a.Status)
			default:
			}
			bs := &seqs{room: room}
			bs.mustTake(t, "bob's first poll", b, int(as.last)+map[string]int{"news": 0, "pace": 1}[wait])

			// News for both: four messages end a wait for news, and fill
			// an answer (MaxEvents), which ends a wait for the pace.
			before := as.last
			send(t, e, room, 4)
			last := before + 4
			a = (<-c).answer(t)
			if as.mustTake(t, "ann's waiting poll", a, -1); as.last == before {
				t.Fatal("ann's waiting poll was answered without the news")
			}
			as.until(t, base, ann, a, last)
			bs.until(t, base, bob, b, last)
		})
	}
}
