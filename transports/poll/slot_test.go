package poll_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/httpx"
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

// A held poll that news wakes waits for a slot like any other poll; its
// answer carries what came while it waited for its turn, not only the
// news that woke it.
func TestHeldPollAnswerTakesWhatCameWhileItWaited(t *testing.T) {
	const room = "slot-late"
	hub := fast
	hub.PresenceInterval = time.Hour
	e := transporttest.NewEnv(t, transporttest.Options{Hub: hub})
	h, base, _ := server(t, e, poll.Config{Hold: time.Hour, Interval: time.Hour, Park: -1, Linger: -1, Running: 1})
	ann := e.Token(t, "ann", transporttest.Claims{})
	send(t, e, room, 1)
	as := &seqs{room: room}
	a := get(t, base, ann, start(room))
	as.mustTake(t, "ann's first poll", a, 1)
	c := held(base, ann, room, a.Cursor)
	free := newsWhileBusy(t, e, h, room)

	// Two more while it waits, then one that tells they were offered:
	// a room's batches are fanned out one after another, so once a
	// session of its own in the room has the last, every session has
	// been offered the two before it.
	w := watch(t, e, room)
	send(t, e, room, 3)
	w.until(t, 5)
	flushUser(t, e, "ann") // what went by her session's writer is in her poll's answer now
	free()
	a = (<-c).answer(t)
	as.mustTake(t, "ann's answer", a, -1)
	if as.last < 4 {
		t.Fatalf("ann's answer ends at seq %d: the two messages that came while it waited for its turn went without it", as.last)
	}
}

// A poll on a ticket carries nothing stored after the ticket's expiry:
// not one that news woke before the expiry and that still waits for its
// slot when the ticket expires, whatever comes meanwhile.
func TestHeldTicketPollCarriesNothingPastExpiry(t *testing.T) {
	const room = "slot-ticket"
	hub := fast
	hub.PresenceInterval = time.Hour
	e := transporttest.NewEnv(t, transporttest.Options{Hub: hub})
	// Long enough for the steps before the expiry on a slow machine;
	// the test waits it out once.
	tickets := auth.NewTickets(e.TicketKey, 3*time.Second, nil)
	h, base, _ := server(t, e, poll.Config{Hold: time.Hour, Interval: time.Hour, Park: -1, Linger: -1, Running: 1,
		Auth: &httpx.Authenticator{Verifier: e.Verifier, Tickets: tickets}})
	ticket, err := tickets.Issue(auth.Identity{User: "ann", Name: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	_, expiry, err := tickets.RedeemUntil(ticket)
	if err != nil {
		t.Fatal(err)
	}
	withTicket := func(q url.Values) url.Values { q.Set("ticket", ticket); return q }
	send(t, e, room, 1)
	as := &seqs{room: room}
	a, err := getWith(t.Context(), base, "", withTicket(start(room)), nil)
	if err != nil || a.Status != http.StatusOK {
		t.Fatalf("ann's first poll: HTTP %d, %v", a.Status, err)
	}
	as.mustTake(t, "ann's first poll", a, 1)
	c := make(chan result, 1)
	go func() {
		a, err := getWith(context.Background(), base, "", withTicket(from(room, a.Cursor)), nil)
		c <- result{a, err}
	}()
	free := newsWhileBusy(t, e, h, room) // before the expiry
	if !time.Now().Before(expiry) {
		t.Skip("the ticket expired before its poll had its news: too slow a machine for this test")
	}
	eventually(t, "the ticket's expiry", func() bool { return time.Now().After(expiry) })
	w := watch(t, e, room)
	send(t, e, room, 3) // after it
	w.until(t, 5)
	flushUser(t, e, "ann")
	free()
	a = (<-c).answer(t)
	as.mustTake(t, "ann's answer", a, -1)
	if as.last > 2 {
		t.Fatalf("ann's answer ends at seq %d: messages stored after her ticket expired went with it", as.last)
	}
}

// newsWhileBusy waits until a poll of room is held, then occupies the
// one slot, as another poll at work would, and sends a message to room,
// which ends the hold: it returns once the poll waits for its turn,
// with the slot's release.
func newsWhileBusy(t *testing.T, e *transporttest.Env, h *poll.Handler, room string) (free func()) {
	t.Helper()
	eventually(t, "the poll is held", func() bool { return h.Waiting() == 1 })
	free = h.Occupy()
	t.Cleanup(free)
	send(t, e, room, 1)
	eventually(t, "the poll has its news and waits for its turn", func() bool { return h.Waiting() == 0 })
	return free
}

// flushUser hands what user's sessions have queued over to their
// transports. A session that has just closed (a first poll's, say) has
// nothing to hand over.
func flushUser(t *testing.T, e *transporttest.Env, user string) {
	t.Helper()
	var ss []*core.Session
	e.Hub.ForEachSession(func(s *core.Session) {
		if s.User() == user {
			ss = append(ss, s)
		}
	})
	for _, s := range ss {
		if err := s.Flush(context.Background()); err != nil && !errors.Is(err, core.ErrClosed) {
			t.Fatalf("flush %s's session: %v", user, err)
		}
	}
}

// watcher is a session of its own in one room, whose messages the test
// reads.
type watcher struct {
	mu   sync.Mutex
	last uint64
	got  chan struct{} // a message came
}

func (w *watcher) Name() string { return "websocket" }

func (w *watcher) Write(frames []core.Frame) error {
	w.mu.Lock()
	for _, f := range frames {
		if f.Type == protocol.TypeMessage {
			w.last = f.Seq
		}
	}
	w.mu.Unlock()
	select {
	case w.got <- struct{}{}:
	default:
	}
	return nil
}

func (w *watcher) Close(core.Disconnect) {}

// watch joins a watcher to room from now on.
func watch(t *testing.T, e *transporttest.Env, room string) *watcher {
	t.Helper()
	w := &watcher{got: make(chan struct{}, 1)}
	s, err := e.Hub.Connect(auth.Identity{User: "watcher", Name: "watcher"}, w, core.SessionOptions{})
	if err != nil {
		t.Fatalf("watcher: %v", err)
	}
	t.Cleanup(func() { s.Close(core.DisconnectNormal) })
	if err := s.Join(context.Background(), room, nil, true); err != nil {
		t.Fatalf("watcher joins %s: %v", room, err)
	}
	return w
}

// until waits, bounded, until the watcher has seq.
func (w *watcher) until(t *testing.T, seq uint64) {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		w.mu.Lock()
		last := w.last
		w.mu.Unlock()
		if last >= seq {
			return
		}
		select {
		case <-w.got:
		case <-timeout:
			t.Fatalf("the watcher has seq %d, not %d", last, seq)
		}
	}
}
