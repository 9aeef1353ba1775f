package bolt

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/storetest"
)

// TestConformanceBoundsCache runs the store suite with a bounds cache of
// two rooms, which evicts on nearly every commit, and with none.
func TestConformanceBoundsCache(t *testing.T) {
	for _, size := range []int{2, -1} {
		t.Run(fmt.Sprint("size=", size), func(t *testing.T) {
			storetest.Run(t, func(t *testing.T, o storetest.Options) storetest.Engine {
				s, err := Open(Config{Path: filepath.Join(o.Dir, "chat.db"), MaxMessages: o.MaxMessages,
					MaxAge: o.MaxAge, Now: o.Now, BoundsCache: size})
				if err != nil {
					t.Fatal(err)
				}
				return storetest.Engine{Store: s, Sweep: s.Sweep}
			})
		})
	}
}

// TestBoundsCacheConcurrent: with writers appending to more rooms than
// the cache holds (so that it evicts all along) and readers asking for
// bounds at the same time,
//   - a writer's acked seq is never beyond the head Since reports right
//     after (a room being committed is not in the cache, and is set again
//     before anyone is answered);
//   - each reader sees every room's head and first only move forward;
//   - at the end every room's answer, from the cache or not, is the
//     store's own.
//
// It races by nature: a broken fence fails it in about half the runs.
// TestBoundsCacheRules checks the same rules one step at a time.
func TestBoundsCacheConcurrent(t *testing.T) {
	const rooms, perWriter, writers, readers = 6, 60, 4, 4
	s := open(t, Config{MaxMessages: 7, BoundsCache: 3})
	ctx := t.Context()
	room := func(i int) string { return fmt.Sprint("r", i%rooms) }
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				m, _, err := s.Append(ctx, testMsg(room(w+i), fmt.Sprint("w", w, "-", i)))
				if err != nil {
					t.Error(err)
					return
				}
				p, err := s.Since(ctx, m.Room, m.Seq, 0)
				if err != nil || p.Head < m.Seq {
					t.Errorf("%s: acked #%d, then Since says head %d (err %v)", m.Room, m.Seq, p.Head, err)
					return
				}
			}
		})
	}
	var rg sync.WaitGroup
	for r := range readers {
		rg.Go(func() {
			seen := map[string][2]uint64{}
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				name := room(r + i)
				p, err := s.Since(ctx, name, ^uint64(0), 0)
				if err != nil {
					t.Error(err)
					return
				}
				if b := seen[name]; p.Head < b[0] || p.First < b[1] {
					t.Errorf("%s: head %d first %d after head %d first %d", name, p.Head, p.First, b[0], b[1])
					return
				}
				seen[name] = [2]uint64{p.Head, p.First}
			}
		})
	}
	wg.Wait()
	close(done)
	rg.Wait()
	if n := s.bounds.len(); n > 3 {
		t.Errorf("%d rooms cached, want at most 3", n)
	}
	total := uint64(0)
	for i := range rooms {
		name := room(i)
		want, err := s.Before(ctx, name, 0, 0) // always a read transaction
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // a miss, which fills the cache if it has room, then maybe a hit
			got, err := s.Since(ctx, name, want.Head, 0)
			if err != nil || got.Head != want.Head || got.First != want.First {
				t.Fatalf("%s: Since says head %d first %d, the store %d and %d (err %v)", name, got.Head, got.First, want.Head, want.First, err)
			}
		}
		if want.Head-want.First+1 != 7 {
			t.Errorf("%s: retains %d..%d, want 7 messages", name, want.First, want.Head)
		}
		total += want.Head
	}
	if total != writers*perWriter {
		t.Errorf("heads add up to %d, want %d appends", total, writers*perWriter)
	}
}

// TestBoundsCacheRules walks the cache's rules one step at a time.
func TestBoundsCacheRules(t *testing.T) {
	c := newBoundsCache(2)
	want := func(room string, b bounds, ok bool) {
		t.Helper()
		if got, hit := c.get(room); hit != ok || (ok && got != b) {
			t.Fatalf("%s: %v %v, want %v %v", room, got, hit, b, ok)
		}
	}
	c.offer("a", bounds{1, 1}, 5)
	want("a", bounds{1, 1}, true)

	// A commit that moves a: dropped before it commits, and only a
	// snapshot that sees it may put it back.
	moved := map[string]*room{"a": {head: 2, first: 1}}
	c.writing(moved, 7)
	want("a", bounds{}, false)
	c.offer("a", bounds{1, 1}, 6)
	want("a", bounds{}, false)
	c.offer("a", bounds{2, 1}, 7)
	want("a", bounds{2, 1}, true)
	moved["a"].head = 3 // as if the same room moved again in the next commit
	c.writing(moved, 8)
	c.committed(moved)
	want("a", bounds{3, 1}, true)

	// Full: readers add nothing; a commit's room takes another's place,
	// and the one evicted cannot come back from an older snapshot.
	c.offer("b", bounds{4, 2}, 8)
	c.offer("x", bounds{9, 9}, 8)
	want("x", bounds{}, false)
	d := map[string]*room{"d": {head: 5, first: 1}}
	c.writing(d, 9)
	c.committed(d)
	want("d", bounds{5, 1}, true)
	if n := c.len(); n != 2 {
		t.Fatalf("%d rooms cached, want 2", n)
	}
	evicted := "a"
	if _, ok := c.get("a"); ok {
		evicted = "b"
	}
	c.offer(evicted, bounds{1, 1}, 8)
	want(evicted, bounds{}, false)

	// Complete: a room not held is empty, unless a commit is writing it;
	// a failed commit ends it.
	c = newBoundsCache(4)
	c.complete = true
	want("z", emptyBounds, true)
	z := map[string]*room{"z": {head: 1, first: 1}}
	c.writing(z, 3)
	want("z", bounds{}, false)
	want("q", emptyBounds, true)
	c.committed(z)
	want("z", bounds{1, 1}, true)
	y := map[string]*room{"y": {head: 1, first: 1}}
	c.writing(y, 4)
	c.failed(y)
	want("y", bounds{}, false)
	want("q", bounds{}, false)

	// An eviction ends it too: the room evicted had bounds of its own.
	c = newBoundsCache(1)
	c.complete = true
	a := map[string]*room{"a": {head: 1, first: 1}}
	c.writing(a, 5)
	c.committed(a)
	b := map[string]*room{"b": {head: 2, first: 1}}
	c.writing(b, 6)
	c.committed(b)
	want("b", bounds{2, 1}, true)
	want("a", bounds{}, false)
	want("q", bounds{}, false)
}

// TestBoundsCacheFailedCommit: a write transaction that fails at its
// last step leaves the cache with the committed bounds, not its own.
func TestBoundsCacheFailedCommit(t *testing.T) {
	s := open(t, Config{Logger: slog.New(slog.DiscardHandler)})
	ctx := t.Context()
	head := func() uint64 {
		t.Helper()
		p, err := s.Since(ctx, "r", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		return p.Head
	}
	if _, _, err := s.Append(ctx, testMsg("r", "m1")); err != nil {
		t.Fatal(err)
	}
	if h := head(); h != 1 {
		t.Fatalf("head %d, want 1", h)
	}
	s.failCommit = func() error { return errors.New("injected") } // the next Append's send orders it before the writer reads it
	if _, _, err := s.Append(ctx, testMsg("r", "m2")); err == nil {
		t.Fatal("Append with a failing commit succeeded")
	}
	for range 2 { // a miss, then the hit it filled
		if h := head(); h != 1 {
			t.Fatalf("after a failed commit, head %d, want 1", h)
		}
	}
	s.failCommit = nil
	m, _, err := s.Append(ctx, testMsg("r", "m3"))
	if err != nil || m.Seq != 2 {
		t.Fatalf("Append after the failure: seq %d, %v; want 2", m.Seq, err)
	}
	if h := head(); h != 2 {
		t.Fatalf("head %d, want 2", h)
	}
}

// TestBoundsCacheComplete: a reopened store knows every room's bounds,
// including those of rooms with no message (only read positions, or
// none at all), without a read transaction; when they do not all fit, or
// after a failed commit, a room it does not hold is read from the store.
func TestBoundsCacheComplete(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	ctx := t.Context()
	now := time.Unix(1e9, 0)
	clock := func() time.Time { return now } // moved only between writes
	s, err := Open(Config{Path: path, MaxMessages: 2, MaxAge: time.Hour, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	// r5: one message, swept by age, so no message left but a head of 1.
	if _, _, err := s.Append(ctx, testMsg("r5", "old")); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Hour)
	if err := s.Sweep(); err != nil {
		t.Fatal(err)
	}
	for i, room := range []string{"r1", "r1", "r1", "r2"} {
		if _, _, err := s.Append(ctx, testMsg(room, fmt.Sprint("m", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetReads(ctx, []core.ReadPosition{{Room: "r3", User: "u", Seq: 5}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[string]bounds{"r1": {3, 2}, "r2": {1, 1}, "r5": {1, 2}, "r3": emptyBounds, "never": emptyBounds, "~alice": emptyBounds}
	check := func(s *Store, reads int) {
		t.Helper()
		before := s.db.Stats().TxN
		for room, b := range want {
			p, err := s.Since(ctx, room, b.head, 50)
			if err != nil || p.Head != b.head || p.First != b.first || len(p.Messages) != 0 {
				t.Fatalf("%s: head %d first %d, %d messages, %v; want %v", room, p.Head, p.First, len(p.Messages), err, b)
			}
		}
		if n := s.db.Stats().TxN - before; n != reads {
			t.Fatalf("%d read transactions for %d rooms, want %d", n, len(want), reads)
		}
	}
	for _, tc := range []struct {
		size, reads int
	}{
		{0, 0},             // all in memory
		{1, len(want) - 1}, // r1 fits (rooms load in key order); the rest is read
		{-1, len(want)},    // no cache
	} {
		s, err := Open(Config{Path: path, MaxMessages: 2, MaxAge: time.Hour, Now: clock, BoundsCache: tc.size})
		if err != nil {
			t.Fatal(err)
		}
		check(s, tc.reads)
		if tc.size == 0 {
			s.failCommit = func() error { return errors.New("injected") }
			if _, _, err := s.Append(ctx, testMsg("r4", "x")); err == nil {
				t.Fatal("Append with a failing commit succeeded")
			}
			s.failCommit = nil
			before := s.db.Stats().TxN
			if p, err := s.Since(ctx, "never", 0, 0); err != nil || p.Head != 0 || p.First != 1 {
				t.Fatalf("never: %+v, %v", p, err)
			}
			if s.db.Stats().TxN == before {
				t.Fatal("after a failed commit, a room not held was answered without a read transaction")
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// len returns how many rooms are cached.
func (c *boundsCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
