package poll_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/transports/poll"
	"github.com/chatd/chatd/transports/transporttest"
)

// The pace grows while more than a tenth of the goroutines wait 30 ms or
// more to run, up to its maximum, holds between that and one in fifty,
// and shrinks to 0 once the node keeps up.
func TestPacerFollowsSchedulerLatency(t *testing.T) {
	p := poll.NewPacerWith(time.Second, nil)
	steps := []struct {
		late, total uint64
		want        time.Duration
	}{
		{0, 100, 0},
		{20, 100, 25 * time.Millisecond},  // behind: at least 25 ms more
		{20, 100, 50 * time.Millisecond},  // 25 ms more beats a quarter
		{11, 100, 75 * time.Millisecond},  // just over a tenth
		{10, 100, 75 * time.Millisecond},  // a tenth: held
		{2, 100, 75 * time.Millisecond},   // one in fifty: held
		{50, 100, 100 * time.Millisecond}, // behind again
		{50, 100, 125 * time.Millisecond},
		{50, 100, 156250 * time.Microsecond}, // a quarter beats 25 ms
	}
	for i, s := range steps {
		p.Step(s.late, s.total)
		if got := p.Pace(); got != s.want {
			t.Fatalf("step %d (%d of %d late): pace %v, want %v", i, s.late, s.total, got, s.want)
		}
	}
	for range 40 {
		p.Step(90, 100)
	}
	if got := p.Pace(); got != time.Second {
		t.Fatalf("pace after a long stall %v, want the maximum, 1s", got)
	}
	p.Step(1, 100)
	if got := p.Pace(); got != 900*time.Millisecond {
		t.Fatalf("pace after a tick that kept up %v, want 900ms", got)
	}
	for range 60 { // 0.9^43 of 900 ms is under 10 ms
		p.Step(0, 0) // nothing ran: nothing waits
	}
	if got := p.Pace(); got != 0 {
		t.Fatalf("pace once the node keeps up %v, want 0", got)
	}
}

// The reader of the scheduler's latencies sees goroutines run.
func TestSchedLatenciesCountsGoroutines(t *testing.T) {
	read := poll.SchedLatencies()
	var wg sync.WaitGroup
	for range 1000 {
		wg.Go(func() {})
	}
	wg.Wait()
	if _, total := read(); total == 0 {
		t.Fatal("1000 goroutines ran and the reader counted none")
	}
}

// A poll that carries on with a kept session while the node is behind
// answers no sooner than the pace allows, with everything that came
// meanwhile; an answer that fills does not wait for the pace. The client
// gets every seq once, in order.
func TestPollPacedAnswerTakesWhatCame(t *testing.T) {
	const room = "paced"
	e := transporttest.NewEnv(t, transporttest.Options{Hub: fast})
	var pace atomic.Int64
	asked := make(chan struct{}, 64)
	cfg := poll.Config{Hold: 10 * time.Second, Keep: 5 * time.Second, Park: -1, Linger: -1, MaxEvents: 4,
		Pace: func() time.Duration {
			select {
			case asked <- struct{}{}:
			default:
			}
			return time.Duration(pace.Load())
		}}
	h, base, _ := server(t, e, cfg)
	tok := e.Token(t, "pia", transporttest.Claims{})
	s := &seqs{room: room}
	send(t, e, room, 1)
	a := get(t, base, tok, start(room))
	s.mustTake(t, "first poll", a, 1)

	// A held poll answered live: its session is kept, at no pace.
	c := held(base, tok, room, a.Cursor)
	eventually(t, "the poll is held", func() bool { return e.Hub.Sessions()["poll"] == 1 })
	send(t, e, room, 1)
	a = (<-c).answer(t)
	s.mustTake(t, "held poll", a, 1)
	if h.Kept() != 1 {
		t.Fatalf("%d sessions kept, want 1", h.Kept())
	}
	for len(asked) > 0 {
		<-asked
	}

	// The node is behind: the next poll finds news on its kept session
	// and waits for the pace (an hour), during which three more come;
	// the fourth fills the answer, which goes at once with all four.
	pace.Store(int64(time.Hour))
	send(t, e, room, 1)
	c = held(base, tok, room, a.Cursor)
	a = fillWhilePaced(t, "a poll with news", c, asked, func() { send(t, e, room, 3) })
	s.mustTake(t, "paced answer", a, -1)
	if s.last < 4 {
		t.Fatalf("the paced answer ends at seq %d: what came while it waited is not in it", s.last)
	}

	// Caught up: the pace is 0, and the client carries on exactly.
	pace.Store(0)
	send(t, e, room, 2)
	a = s.until(t, base, tok, a, 8)

	// Behind again, and the next poll on the kept session is held with
	// nothing to say: news that comes while it is held waits for the
	// pace too, and the answer takes what came until it filled.
	pace.Store(int64(time.Hour))
	for len(asked) > 0 {
		<-asked
	}
	_, resumed := h.Polls()
	c = held(base, tok, room, a.Cursor)
	eventually(t, "the poll takes its kept session", func() bool { _, r := h.Polls(); return r > resumed })
	send(t, e, room, 1)
	a = fillWhilePaced(t, "a held poll's news", c, asked, func() { send(t, e, room, 3) })
	s.mustTake(t, "paced held answer", a, -1)
	if s.last < 10 {
		t.Fatalf("the paced held answer ends at seq %d: what came while it waited is not in it", s.last)
	}
	pace.Store(0)
	s.until(t, base, tok, a, 12)
}

// fillWhilePaced waits until the poll whose answer comes on c asks the
// pace (asked), then fills its answer with fill and returns the answer,
// which must not wait for the pace once full. what names the poll.
func fillWhilePaced(t *testing.T, what string, c <-chan result, asked <-chan struct{}, fill func()) answer {
	t.Helper()
	select {
	case <-asked:
	case r := <-c:
		t.Fatalf("%s answered without asking the pace: %d events", what, len(r.a.Events))
	case <-time.After(15 * time.Second):
		t.Fatalf("%s never asked the pace", what)
	}
	fill()
	select {
	case r := <-c:
		return r.answer(t)
	case <-time.After(15 * time.Second):
		t.Fatalf("%s: a paced answer that filled is still waiting", what)
	}
	return answer{}
}
