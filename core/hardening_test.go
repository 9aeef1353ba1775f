package core_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// Sessions that connect while the hub shuts down are either refused or
// closed by the shutdown; under -race, no goroutine of the hub starts
// while Shutdown waits for them.
func TestConnectDuringShutdown(t *testing.T) {
	for round := range 20 {
		hub := newHub(t, core.Config{Heartbeat: time.Millisecond})
		var wg sync.WaitGroup
		var admitted []*core.Session
		var mu sync.Mutex
		for i := range 8 {
			wg.Go(func() {
				id := auth.Identity{User: fmt.Sprintf("u%d", i)}
				s, err := hub.Connect(id, newRecorder(), core.SessionOptions{Heartbeat: true, PresenceTTL: time.Millisecond})
				if err != nil {
					if code, _ := protocol.CodeOf(err); code != protocol.CodeUnavailable {
						t.Errorf("round %d: Connect during shutdown: %v, want unavailable", round, err)
					}
					return
				}
				mu.Lock()
				admitted = append(admitted, s)
				mu.Unlock()
				_ = s.Join(context.Background(), "r", nil, false)
				s.Close(core.DisconnectNormal) // starts the lease janitor
			})
		}
		if err := hub.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		for _, s := range admitted {
			<-s.Done()
		}
	}
}

// slowStore holds a Since call whose after equals block.after until the
// test releases it; everything else passes through.
type slowStore struct {
	core.Engine
	after   atomic.Int64 // -1: hold nothing
	held    chan struct{}
	release chan struct{}
}

func (s *slowStore) Since(ctx context.Context, room string, after uint64, limit int) (core.Page, error) {
	p, err := s.Engine.Since(ctx, room, after, limit)
	if limit > 0 && int64(after) == s.after.Load() {
		s.after.Store(-1)
		s.held <- struct{}{}
		<-s.release
	}
	return p, err
}

// A store read that is slow while a session joins must not delay delivery
// to the room's other sessions: the hub never reads the store while it
// holds a room's lock. The joining session still gets every message once.
func TestSlowJoinReadDoesNotBlockRoom(t *testing.T) {
	ctx := context.Background()
	slow := &slowStore{held: make(chan struct{}), release: make(chan struct{})}
	slow.after.Store(-1)
	// No recent window: the catch-up must read the store (recent_test.go
	// covers replays from memory).
	hub, _ := newHubOver(t, core.Config{RecentFrames: -1}, func(st core.Engine) core.Engine { slow.Engine = st; return slow })
	alice := auth.Identity{User: "alice"}
	watcher := watch(t, hub, alice, "r")
	for i := range 3 {
		if _, err := hub.Send(ctx, alice, "r", fmt.Sprintf("m%d", i+1), "hello"); err != nil {
			t.Fatal(err)
		}
	}

	// bob's catch-up reads 1..3; the read is held, and message 4 is sent
	// meanwhile, so the catch-up must read again from 3: that read is held
	// too, and message 5 must reach alice while it is.
	slow.after.Store(0)
	joiner := newRecorder()
	b, err := hub.Connect(auth.Identity{User: "bob"}, joiner, core.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	joined := make(chan error, 1)
	go func() { joined <- b.Join(ctx, "r", protocol.Ptr(uint64(0)), false) }()
	select {
	case <-slow.held:
	case err := <-joined:
		t.Fatalf("join ended before its catch-up read: %v", err)
	}
	if _, err := hub.Send(ctx, alice, "r", "m4", "hello"); err != nil {
		t.Fatal(err)
	}
	waitSeq(t, watcher, 4) // published: the room's head is past bob's read
	slow.after.Store(3)
	slow.release <- struct{}{}
	<-slow.held
	if _, err := hub.Send(ctx, alice, "r", "m5", "hello"); err != nil {
		t.Fatal(err)
	}
	waitSeq(t, watcher, 5) // delivered while bob's store read is still held
	slow.release <- struct{}{}
	if err := <-joined; err != nil {
		t.Fatal(err)
	}
	if _, err := hub.Send(ctx, alice, "r", "m6", "hello"); err != nil {
		t.Fatal(err)
	}
	waitSeq(t, joiner, 6)
	if got := seqs(joiner); fmt.Sprint(got) != "[1 2 3 4 5 6]" {
		t.Fatalf("the joiner got seqs %v, want 1..6 once each", got)
	}
}

// watch connects id and joins room live, and returns what it is written.
func watch(t *testing.T, hub *core.Hub, id auth.Identity, room string) *recorder {
	t.Helper()
	rec := newRecorder()
	s, err := hub.Connect(id, rec, core.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Join(context.Background(), room, nil, false); err != nil {
		t.Fatal(err)
	}
	return rec
}

// waitSeq waits until r has written a message frame with seq.
func waitSeq(t *testing.T, r *recorder, seq uint64) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		for _, s := range seqs(r) {
			if s == seq {
				return
			}
		}
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("seq %d never written; have %v", seq, seqs(r))
		}
	}
}

// seqs lists the seqs of the message frames r has written, in order.
func seqs(r *recorder) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uint64
	for _, f := range r.frames {
		if f.Type == protocol.TypeMessage {
			out = append(out, f.Seq)
		}
	}
	return out
}

// countingStore counts the read positions it is asked to store, and its
// reads of a room's log.
type countingStore struct {
	core.Engine
	positions, calls, since atomic.Int64
}

func (s *countingStore) Since(ctx context.Context, room string, after uint64, limit int) (core.Page, error) {
	s.since.Add(1)
	return s.Engine.Since(ctx, room, after, limit)
}

// A read position within what the node has delivered costs no store
// read; one beyond the room's head is still refused.
func TestReadWithinPublishedHead(t *testing.T) {
	ctx := context.Background()
	counter := &countingStore{}
	hub, _ := newHubOver(t, core.Config{}, func(st core.Engine) core.Engine { counter.Engine = st; return counter })
	alice := auth.Identity{User: "alice"}
	rec := newRecorder()
	joinAs(t, hub, "alice", "r", rec)
	var last protocol.Message
	for i := range 3 {
		m, err := hub.Send(ctx, auth.Identity{User: "bob"}, "r", fmt.Sprint(i), "x")
		if err != nil {
			t.Fatal(err)
		}
		last = m
	}
	waitN(t, rec, protocol.TypeMessage, 3) // published here
	before := counter.since.Load()
	if _, err := hub.Read(ctx, alice, "r", last.Seq); err != nil {
		t.Fatal(err)
	}
	if n := counter.since.Load() - before; n != 0 {
		t.Fatalf("a read within the published head made %d store reads", n)
	}
	if _, err := hub.Read(ctx, alice, "r", last.Seq+1); err == nil {
		t.Fatal("a read beyond the head was taken")
	} else if code, _ := protocol.CodeOf(err); code != protocol.CodeBadRequest {
		t.Fatalf("a read beyond the head: %v, want bad_request", err)
	}
}

func (s *countingStore) SetReads(ctx context.Context, reads []core.ReadPosition) error {
	s.calls.Add(1)
	s.positions.Add(int64(len(reads)))
	return s.Engine.SetReads(ctx, reads)
}

// A flood of read positions is coalesced: the store writes at most one
// position per (room, user) per flush, receipts carry the highest
// position, and the stored position is the highest reported. A user past
// the read rate gets rate_limited.
func TestReadFloodIsCoalesced(t *testing.T) {
	ctx := context.Background()
	counter := &countingStore{}
	hub, store := newHubOver(t, core.Config{SendRate: 1e6, SendBurst: 1e6, ReadRate: 1e6, ReadBurst: 1e6,
		ReadFlush: 20 * time.Millisecond},
		func(st core.Engine) core.Engine { counter.Engine = st; return counter })
	const users, head = 20, 50
	for i := range head {
		if _, err := hub.Send(ctx, auth.Identity{User: "writer"}, "r", fmt.Sprint(i), "x"); err != nil {
			t.Fatal(err)
		}
	}
	watcher := newRecorder()
	w, err := hub.Connect(auth.Identity{User: "watcher"}, watcher, core.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Join(ctx, "r", nil, false); err != nil {
		t.Fatal(err)
	}
	// A canary chats in another room throughout the flood.
	canaryRec := newRecorder()
	joinAs(t, hub, "canary", "canary", canaryRec)
	start := time.Now()
	var wg sync.WaitGroup
	var reads atomic.Int64
	for u := range users {
		wg.Go(func() {
			id := auth.Identity{User: fmt.Sprintf("u%02d", u)}
			for round := range 20 {
				for seq := uint64(1); seq <= head; seq++ {
					if _, err := hub.Read(ctx, id, "r", min(seq+uint64(round), head)); err != nil {
						t.Error(err)
						return
					}
					reads.Add(1)
				}
			}
		})
	}
	flooded := make(chan struct{})
	go func() { wg.Wait(); close(flooded) }()
	for seq := uint64(1); ; seq++ {
		if _, err := hub.Send(ctx, auth.Identity{User: "canary"}, "canary", fmt.Sprint("c", seq), "still here"); err != nil {
			t.Fatal(err)
		}
		waitSeq(t, canaryRec, seq)
		select {
		case <-flooded:
		default:
			continue
		}
		break
	}
	elapsed := time.Since(start)
	eventuallyCore(t, "every position stored", func() bool {
		got, _ := store.Reads(ctx, "r")
		return len(got) == users && got["u00"] == head && got["u19"] == head
	})
	flushes := int64(elapsed/(20*time.Millisecond)) + 3
	if n := counter.positions.Load(); n > users*flushes || n >= reads.Load()/10 {
		t.Fatalf("%d reads wrote %d positions in %d store calls over %v; want at most %d (one per user per flush)",
			reads.Load(), n, counter.calls.Load(), elapsed, users*flushes)
	}
	t.Logf("%d reads from %d users: %d positions stored in %d calls", reads.Load(), users, counter.positions.Load(), counter.calls.Load())

	// The watcher sees each reader's final position in a receipt.
	eventuallyCore(t, "receipts at the head", func() bool {
		watcher.mu.Lock()
		defer watcher.mu.Unlock()
		at := map[string]uint64{}
		for _, f := range watcher.frames {
			if f.Type != protocol.TypeReceipt {
				continue
			}
			var r protocol.Envelope
			if err := json.Unmarshal(f.Data, &r); err != nil {
				t.Fatalf("receipt %s: %v", f.Data, err)
			}
			for _, p := range r.Unbatch() {
				at[p.User] = max(at[p.User], p.Seq)
			}
		}
		for u := range users {
			if at[fmt.Sprintf("u%02d", u)] != head {
				return false
			}
		}
		return true
	})

	limited := newHub(t, core.Config{ReadRate: 1, ReadBurst: 3})
	id := auth.Identity{User: "eager"}
	if _, err := limited.Send(ctx, id, "r", "m", "x"); err != nil {
		t.Fatal(err)
	}
	var refused error
	for range 10 {
		if _, refused = limited.Read(ctx, id, "r", 1); refused != nil {
			break
		}
	}
	if code, _ := protocol.CodeOf(refused); code != protocol.CodeRateLimited {
		t.Fatalf("10 reads at a rate of 1/s with a burst of 3: %v, want rate_limited", refused)
	}
}

func eventuallyCore(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// heldAppends holds every Append until release is closed.
type heldAppends struct {
	core.Engine
	held    chan struct{} // one receive per Append that has begun
	release chan struct{}
}

func (s *heldAppends) Append(ctx context.Context, m protocol.Message) (protocol.Message, bool, error) {
	s.held <- struct{}{}
	<-s.release
	return s.Engine.Append(ctx, m)
}

// A store that stalls with appends waiting shows in the store's latency
// reading while it stalls, not only once an append ends: the breaker
// can trip during the stall. (Without the stall watch the reading stays
// 0 until the append ends, and the wait below times out.)
func TestStoreStallShowsWhileStalled(t *testing.T) {
	st := &heldAppends{held: make(chan struct{}, 1), release: make(chan struct{})}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(st.release) }) }
	t.Cleanup(release) // a failure below must not leave the send blocked
	hub, _ := newHubOver(t, core.Config{}, func(e core.Engine) core.Engine { st.Engine = e; return st })
	if lat := hub.Stats().StoreLatency; lat != 0 {
		t.Fatalf("store latency of an idle store = %v, want 0", lat)
	}
	sent := make(chan error, 1)
	go func() {
		_, err := hub.Send(context.Background(), auth.Identity{User: "alice"}, "r", "m1", "hello")
		sent <- err
	}()
	<-st.held
	var stalled time.Duration
	eventuallyCore(t, "the stalled append to show in the store's latency", func() bool {
		stalled = hub.Stats().StoreLatency
		return stalled >= 50*time.Millisecond
	})
	release()
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	// The stall is over: what is left is the append's one sample, an
	// eighth of it in the average, then nothing once that goes stale.
	eventuallyCore(t, "the reading to fall once the append ended", func() bool {
		return hub.Stats().StoreLatency < stalled
	})
}
