package transporttest

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// fast lets tests send as quickly as they like.
var fast = core.Config{SendRate: 1e6, SendBurst: 1e6}

// Guarantee 1: several senders at once; every subscriber sees 1..total
// exactly once, in order, and the acks hand out each seq once.
func TestOrder(t *testing.T) { Run(t, testOrder) }

func testOrder(t *testing.T, dial Dialer) {
	const senders, perSender, watchers = 4, 25, 3
	const total = senders * perSender
	const room = "order"
	e := NewEnv(t, Options{Hub: fast})
	var subs, from []Client
	for i := range watchers {
		subs = append(subs, dial(t, e, e.Token(t, fmt.Sprint("watcher", i), Claims{}), []Join{{Room: room}}))
	}
	for i := range senders {
		c := dial(t, e, e.Token(t, fmt.Sprint("sender", i), Claims{}), []Join{{Room: room}})
		from = append(from, c)
		subs = append(subs, c) // a session that joined receives its own messages too
	}

	ctx := Ctx(t)
	acks := make([][]protocol.Envelope, senders)
	errs := make(chan error, senders)
	var wg sync.WaitGroup
	for i, c := range from {
		wg.Go(func() {
			for j := range perSender {
				id := fmt.Sprintf("s%d-%d", i, j)
				ack, err := c.Send(ctx, room, id, "text "+id)
				if err != nil || ack.Type != protocol.TypeAck || ack.ID != id || ack.Room != room {
					errs <- fmt.Errorf("sender %d send %d: %+v, %v", i, j, ack, err)
					return
				}
				acks[i] = append(acks[i], ack)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	idOf := make(map[uint64]string)
	for i, list := range acks {
		for j, ack := range list {
			if ack.Seq < 1 || ack.Seq > total {
				t.Fatalf("ack %+v: seq outside 1..%d", ack, total)
			}
			if prev, dup := idOf[ack.Seq]; dup {
				t.Fatalf("seq %d acked twice: %q and %q", ack.Seq, prev, ack.ID)
			}
			if j > 0 && ack.Seq <= list[j-1].Seq {
				t.Fatalf("sender %d: ack seq %d after %d; one sender's messages must keep their order", i, ack.Seq, list[j-1].Seq)
			}
			idOf[ack.Seq] = ack.ID
		}
	}
	for _, c := range subs {
		for n, m := range expectSeqs(t, c, room, 1, total) {
			if m.ID != idOf[m.Seq] || m.Text != "text "+m.ID || m.TS == 0 || m.From == "" {
				t.Fatalf("message %d: %+v, want id %q", n+1, m, idOf[m.Seq])
			}
		}
	}
	fence(t, e, room, subs...)
}

// Guarantee 2: once acked, a message is in history and in the store.
func TestAckMeansDurable(t *testing.T) { Run(t, testAckMeansDurable) }

func testAckMeansDurable(t *testing.T, dial Dialer) {
	const room = "durable"
	e := NewEnv(t, Options{})
	tok := e.Token(t, "alice", Claims{Name: "Alice"})
	watcher := dial(t, e, e.Token(t, "bob", Claims{}), []Join{{Room: room}})
	// Sending needs no join.
	alice := dial(t, e, tok, nil)
	for i := 1; i <= 3; i++ {
		id := fmt.Sprint("durable-", i)
		ack, err := alice.Send(Ctx(t), room, id, "kept "+id)
		if err != nil || ack.Type != protocol.TypeAck || ack.Seq != uint64(i) || ack.TS == 0 {
			t.Fatalf("send %d: %+v, %v", i, ack, err)
		}
		// Ask right after the ack: no waiting, no polling.
		h := history(t, e, tok, room)
		if h.Head != ack.Seq {
			t.Fatalf("history head %d after ack of seq %d", h.Head, ack.Seq)
		}
		found := false
		for _, m := range h.Messages {
			if m.Seq == ack.Seq {
				found = true
				if m.Type != protocol.TypeMessage || m.ID != id || m.Text != "kept "+id || m.From != "alice" ||
					m.Name != "Alice" || m.TS != ack.TS || m.Room != room {
					t.Fatalf("history has %+v for ack %+v", m, ack)
				}
			}
		}
		if !found {
			t.Fatalf("acked seq %d is not in history %+v", ack.Seq, h.Messages)
		}
		p, err := e.Store.Since(Ctx(t), room, ack.Seq-1, 1)
		if err != nil || len(p.Messages) != 1 || p.Messages[0].ID != id || p.Messages[0].TS != ack.TS {
			t.Fatalf("store after ack %+v: %+v, %v", ack, p, err)
		}
		m := nextOf(t, watcher, protocol.TypeMessage)
		if m.Seq != ack.Seq || m.ID != id {
			t.Fatalf("watcher got %+v, want seq %d", m, ack.Seq)
		}
	}
}

// Guarantee 3: a re-send of (room, id) gets the same ack and stores and
// delivers nothing new, even with different text.
func TestIdempotentRetry(t *testing.T) { Run(t, testIdempotentRetry) }

func testIdempotentRetry(t *testing.T, dial Dialer) {
	const room = "retry"
	e := NewEnv(t, Options{})
	tok := e.Token(t, "alice", Claims{})
	alice := dial(t, e, tok, []Join{{Room: room}})
	bob := dial(t, e, e.Token(t, "bob", Claims{}), []Join{{Room: room}})
	ctx := Ctx(t)
	first, err := alice.Send(ctx, room, "dup-1", "hello")
	if err != nil || first.Type != protocol.TypeAck || first.Seq != 1 {
		t.Fatalf("first send: %+v, %v", first, err)
	}
	for i, text := range []string{"hello", "hello", "changed text"} {
		again, err := alice.Send(ctx, room, "dup-1", text)
		if err != nil || again.Type != protocol.TypeAck || again.Seq != first.Seq || again.TS != first.TS ||
			again.ID != first.ID || again.Room != first.Room {
			t.Fatalf("re-send %d: %+v, %v; want the first ack %+v", i, again, err, first)
		}
	}
	// The same id in another room is another message.
	other, err := alice.Send(ctx, "retry-other", "dup-1", "elsewhere")
	if err != nil || other.Type != protocol.TypeAck || other.Seq != 1 {
		t.Fatalf("same id, other room: %+v, %v", other, err)
	}
	for _, c := range []Client{alice, bob} {
		m := expectSeqs(t, c, room, 1, 1)[0]
		if m.ID != "dup-1" || m.Text != "hello" {
			t.Fatalf("delivered %+v", m)
		}
	}
	fence(t, e, room, alice, bob) // seq 2: no second copy of dup-1 came first
	h := history(t, e, tok, room)
	if h.Head != 2 || len(h.Messages) != 2 || h.Messages[0].ID != "dup-1" || h.Messages[0].Text != "hello" {
		t.Fatalf("history: %+v; want dup-1 once, then the fence", h)
	}
}

// Guarantee 3 at the rate limit: "clients retry freely", so a re-send of
// a message that is already stored gets its ack even when the user has no
// sends left; only new messages are limited.
func TestIdempotentRetryAtRateLimit(t *testing.T) { Run(t, testIdempotentRetryAtRateLimit) }

func testIdempotentRetryAtRateLimit(t *testing.T, dial Dialer) {
	const room = "retry-limited"
	e := NewEnv(t, Options{Hub: core.Config{SendRate: 0.01, SendBurst: 1}})
	c := dial(t, e, e.Token(t, "alice", Claims{}), nil)
	first, err := c.Send(Ctx(t), room, "once", "hello")
	if err != nil || first.Type != protocol.TypeAck {
		t.Fatalf("first send: %+v, %v", first, err)
	}
	again, err := c.Send(Ctx(t), room, "once", "hello")
	if err != nil || again.Type != protocol.TypeAck || again.Seq != first.Seq || again.TS != first.TS {
		t.Fatalf("retry at the rate limit: %+v, %v; want the first ack %+v", again, err, first)
	}
	got, err := c.Send(Ctx(t), room, "new", "hello")
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, "a new message at the limit", got, protocol.CodeRateLimited)
}

// Guarantee 3, racing: two connections of one user send the same ids at
// the same time; each id is stored and delivered once and both get the
// same ack.
func TestIdempotentConcurrent(t *testing.T) { Run(t, testIdempotentConcurrent) }

func testIdempotentConcurrent(t *testing.T, dial Dialer) {
	const room = "retry-race"
	const n = 30
	e := NewEnv(t, Options{Hub: fast})
	tok := e.Token(t, "alice", Claims{})
	conns := []Client{dial(t, e, tok, nil), dial(t, e, tok, nil)}
	bob := dial(t, e, e.Token(t, "bob", Claims{}), []Join{{Room: room}})
	for i, ack := range sendSameIDs(t, room, n, conns...) {
		if ack.Seq < 1 || ack.Seq > n {
			t.Fatalf("id same-%d: seq %d outside 1..%d", i, ack.Seq, n)
		}
	}
	ids := make(map[string]bool)
	for _, m := range expectSeqs(t, bob, room, 1, n) {
		if ids[m.ID] {
			t.Fatalf("id %q delivered twice", m.ID)
		}
		ids[m.ID] = true
	}
	fence(t, e, room, bob)
	if h := history(t, e, tok, room); h.Head != n+1 || len(h.Messages) != n+1 {
		t.Fatalf("history head %d with %d messages; want %d", h.Head, len(h.Messages), n+1)
	}
}

// sendSameIDs sends ids same-0…same-(n-1) to room from every conn at
// once, and returns the ack of each id once it has checked that every
// conn got the same ack for it and that no two ids share a seq.
func sendSameIDs(t testing.TB, room string, n int, conns ...Client) []protocol.Envelope {
	t.Helper()
	ctx := Ctx(t)
	acks := make([][]protocol.Envelope, len(conns))
	errs := make(chan error, len(conns))
	var wg sync.WaitGroup
	for k, c := range conns {
		acks[k] = make([]protocol.Envelope, n)
		wg.Go(func() {
			for i := range n {
				ack, err := c.Send(ctx, room, fmt.Sprint("same-", i), fmt.Sprint("text ", i))
				if err != nil || ack.Type != protocol.TypeAck {
					errs <- fmt.Errorf("conn %d send %d: %+v, %v", k, i, ack, err)
					return
				}
				acks[k][i] = ack
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := make(map[uint64]bool)
	for i, a := range acks[0] {
		for _, other := range acks[1:] {
			if b := other[i]; a.Seq != b.Seq || a.TS != b.TS || a.ID != b.ID {
				t.Fatalf("id same-%d: acks differ: %+v and %+v", i, a, b)
			}
		}
		if seen[a.Seq] {
			t.Fatalf("id same-%d: seq %d reused", i, a.Seq)
		}
		seen[a.Seq] = true
	}
	return acks[0]
}

// Guarantee 4: a join from since=4 gets exactly 5..10, then the live ones.
func TestResumeExact(t *testing.T) { Run(t, testResumeExact) }

func testResumeExact(t *testing.T, dial Dialer) {
	const room = "resume"
	e := NewEnv(t, Options{Hub: fast})
	sender := dial(t, e, e.Token(t, "alice", Claims{}), nil)
	send := func(from, to int) {
		for i := from; i <= to; i++ {
			if ack, err := sender.Send(Ctx(t), room, fmt.Sprint("r", i), fmt.Sprint("msg ", i)); err != nil || ack.Seq != uint64(i) {
				t.Fatalf("send %d: %+v, %v", i, ack, err)
			}
		}
	}
	send(1, 10)
	bob := dial(t, e, e.Token(t, "bob", Claims{}), nil)
	j := join(t, bob, room, ptr(4))
	if *j.Head != 10 || !*j.Recovered {
		t.Fatalf("joined %+v; want head 10, recovered", j)
	}
	for _, m := range expectSeqs(t, bob, room, 5, 10) {
		if m.ID != fmt.Sprint("r", m.Seq) || m.Text != fmt.Sprint("msg ", m.Seq) {
			t.Fatalf("replayed %+v", m)
		}
	}
	send(11, 15)
	expectSeqs(t, bob, room, 11, 15)
	fence(t, e, room, bob)
}

// Guarantee 4 while the room is busy: messages sent during the join's
// replay are neither lost nor doubled at the switch to live.
func TestResumeDuringSends(t *testing.T) { Run(t, testResumeDuringSends) }

func testResumeDuringSends(t *testing.T, dial Dialer) {
	const room = "resume-busy"
	const before, during = 50, 100
	e := NewEnv(t, Options{Hub: fast})
	fill(t, e, room, before, "old")
	sender := dial(t, e, e.Token(t, "alice", Claims{}), nil)
	bob := dial(t, e, e.Token(t, "bob", Claims{}), nil)
	ctx := Ctx(t)
	done := make(chan error, 1)
	go func() {
		for i := range during {
			if _, err := sender.Send(ctx, room, fmt.Sprint("live-", i), "new"); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	j := join(t, bob, room, ptr(3))
	if *j.Head < before || !*j.Recovered {
		t.Fatalf("joined %+v; want head >= %d, recovered", j, before)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	expectSeqs(t, bob, room, 4, before+during)
	fence(t, e, room, bob)
}

// Guarantee 4 beyond retention: recovered:false, then what is retained,
// in order, then live.
func TestResumeBeyondRetention(t *testing.T) { Run(t, testResumeBeyondRetention) }

func testResumeBeyondRetention(t *testing.T, dial Dialer) {
	const room = "pruned"
	e := NewEnv(t, Options{Hub: fast, MaxMessages: 5})
	sender := dial(t, e, e.Token(t, "alice", Claims{}), nil)
	for i := 1; i <= 12; i++ {
		if ack, err := sender.Send(Ctx(t), room, fmt.Sprint("p", i), "x"); err != nil || ack.Seq != uint64(i) {
			t.Fatalf("send %d: %+v, %v", i, ack, err)
		}
	}
	bob := dial(t, e, e.Token(t, "bob", Claims{}), nil)
	j := join(t, bob, room, ptr(2))
	if *j.Head != 12 || *j.Recovered {
		t.Fatalf("joined %+v; want head 12, recovered false (3..7 were pruned)", j)
	}
	expectSeqs(t, bob, room, 8, 12) // the five retained
	if ack, err := sender.Send(Ctx(t), room, "p13", "live"); err != nil || ack.Seq != 13 {
		t.Fatalf("send 13: %+v, %v", ack, err)
	}
	expectSeqs(t, bob, room, 13, 13)
	fence(t, e, room, bob)

	// The oldest retained seq minus one is still an exact resume.
	carol := dial(t, e, e.Token(t, "carol", Claims{}), nil)
	if j := join(t, carol, room, ptr(9)); !*j.Recovered || *j.Head != 14 {
		t.Fatalf("join since 9 with 10..14 retained: %+v; want recovered, head 14", j)
	}
	expectSeqs(t, carol, room, 10, 14)
}

// Guarantee 4 at the head: nothing old, then live.
func TestResumeAtHead(t *testing.T) { Run(t, testResumeAtHead) }

func testResumeAtHead(t *testing.T, dial Dialer) {
	const room = "at-head"
	e := NewEnv(t, Options{Hub: fast})
	fill(t, e, room, 10, "old")
	bob := dial(t, e, e.Token(t, "bob", Claims{}), nil)
	if j := join(t, bob, room, ptr(10)); *j.Head != 10 || !*j.Recovered {
		t.Fatalf("joined %+v; want head 10, recovered", j)
	}
	fence(t, e, room, bob) // seq 11 comes first: nothing old was replayed
}

// A join without since is live only.
func TestJoinLive(t *testing.T) { Run(t, testJoinLive) }

func testJoinLive(t *testing.T, dial Dialer) {
	const room = "live"
	e := NewEnv(t, Options{Hub: fast})
	fill(t, e, room, 10, "old")
	bob := dial(t, e, e.Token(t, "bob", Claims{}), nil)
	if j := join(t, bob, room, nil); *j.Head != 10 {
		t.Fatalf("joined %+v; want head 10", j)
	}
	fence(t, e, room, bob) // seq 11 comes first

	// The same through the dialer's own join.
	carol := dial(t, e, e.Token(t, "carol", Claims{}), []Join{{Room: room}})
	fence(t, e, room, bob, carol)
}

// A replay far larger than the session queue is paced, not dropped.
func TestReplayLargerThanQueue(t *testing.T) { Run(t, testReplayLargerThanQueue) }

func testReplayLargerThanQueue(t *testing.T, dial Dialer) {
	const room = "big-replay"
	const n = 200
	cfg := fast
	cfg.QueueFrames = 16
	e := NewEnv(t, Options{Hub: cfg})
	fill(t, e, room, n, "replayed")
	bob := dial(t, e, e.Token(t, "bob", Claims{}), nil)
	if j := join(t, bob, room, ptr(0)); *j.Head != n || !*j.Recovered {
		t.Fatalf("joined %+v; want head %d, recovered", j, n)
	}
	expectSeqs(t, bob, room, 1, n)
	fence(t, e, room, bob)
	alive(t, bob)

	// The same through the dialer's join.
	carol := dial(t, e, e.Token(t, "carol", Claims{}), []Join{{Room: room, Since: ptr(0)}})
	expectSeqs(t, carol, room, 1, n+1)
	alive(t, carol)
}

// The history endpoint pages backwards, each page oldest first. It is
// plain HTTP, the same for every transport, so it runs once.
func TestHistoryPaging(t *testing.T) {
	const room = "pages"
	e := NewEnv(t, Options{Hub: fast})
	fill(t, e, room, 25, "x")
	tok := e.Token(t, "alice", Claims{})
	var seqs []uint64
	before := uint64(0)
	for {
		path := fmt.Sprintf("/v1/rooms/%s/history?limit=10", room)
		if before != 0 {
			path += fmt.Sprint("&before=", before)
		}
		status, body := httpDo(t, e, http.MethodGet, path, tok, nil)
		if status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, status, body)
		}
		var p historyPage
		decodeJSON(t, body, &p)
		if p.Head != 25 {
			t.Fatalf("%s: head %d", path, p.Head)
		}
		if len(p.Messages) == 0 {
			break
		}
		for i, m := range p.Messages {
			if i > 0 && m.Seq != p.Messages[i-1].Seq+1 {
				t.Fatalf("%s: page not oldest first: %d after %d", path, m.Seq, p.Messages[i-1].Seq)
			}
		}
		page := make([]uint64, 0, len(p.Messages))
		for _, m := range p.Messages {
			page = append(page, m.Seq)
		}
		seqs = append(page, seqs...)
		before = p.Messages[0].Seq
		if before == 1 {
			break
		}
	}
	if len(seqs) != 25 || seqs[0] != 1 || seqs[24] != 25 {
		t.Fatalf("walked history %v; want 1..25", seqs)
	}
}

// Guarantee 8 under load: with a tiny queue and bursts of concurrent
// sends (a group commit publishes many messages at once), a reader may be
// closed as slow, possibly more than once; each time it resumes from the
// last seq it got, and in the end it has every message exactly once, in
// order.
func TestResumeAfterSlowUnderLoad(t *testing.T) { Run(t, testResumeAfterSlowUnderLoad) }

func testResumeAfterSlowUnderLoad(t *testing.T, dial Dialer) {
	const room = "busy-replay"
	const before, during = 300, 400
	cfg := fast
	cfg.QueueFrames = 16
	e := NewEnv(t, Options{Hub: cfg})
	fill(t, e, room, before, "replayed")
	tok := e.Token(t, "bob", Claims{})
	ctx := Ctx(t)
	done := make(chan error, 1)
	go func() { done <- fillErr(ctx, e, room, during, "live") }()

	var last uint64
	slow := 0
	for attempt := 0; last < before+during; attempt++ {
		if attempt > 100 {
			t.Fatalf("still at seq %d after %d reconnects", last, attempt)
		}
		c := dial(t, e, tok, nil)
		join(t, c, room, ptr(last))
		for last < before+during {
			m, err := c.Next(ctx)
			if err != nil {
				code := 0
				select {
				case code = <-c.Closed():
				case <-ctx.Done():
				}
				if code != protocol.CloseSlow {
					t.Fatalf("after seq %d: %v (close code %d)", last, err, code)
				}
				slow++
				break
			}
			switch {
			case m.Type == protocol.TypePresence:
			case m.Type == protocol.TypeDisconnect && m.CloseCode == protocol.CloseSlow:
			case m.Type == protocol.TypeMessage && m.Seq == last+1:
				last = m.Seq
			default:
				t.Fatalf("after seq %d got %+v", last, m)
			}
		}
		if last == before+during {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			fence(t, e, room, c)
			alive(t, c)
		}
		c.Close()
	}
	t.Logf("closed as slow %d times on the way", slow)
}

// Guarantee 4 under load: many resumes, each switching from replay to
// live while bursts of messages are being committed and published. Every
// resume continues exactly where the previous connection stopped.
func TestResumeChurnUnderLoad(t *testing.T) { Run(t, testResumeChurnUnderLoad) }

func testResumeChurnUnderLoad(t *testing.T, dial Dialer) {
	const room = "churn"
	const total, perConn = 1500, 15
	e := NewEnv(t, Options{Hub: fast})
	tok := e.Token(t, "bob", Claims{})
	ctx := Ctx(t)
	done := make(chan error, 1)
	go func() { done <- fillErr(ctx, e, room, total, "churn") }()
	var last uint64
	for joins := 0; last < total; joins++ {
		c := dial(t, e, tok, nil)
		join(t, c, room, ptr(last))
		for _, m := range expectSeqs(t, c, room, last+1, min(last+perConn, total)) {
			last = m.Seq
		}
		if last == total {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			fence(t, e, room, c)
			t.Logf("%d resumes", joins+1)
		}
		c.Close()
	}
}
