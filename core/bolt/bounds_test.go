package bolt

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

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
//     after (the cache is set before anyone is answered);
//   - each reader sees every room's head and first only move forward;
//   - at the end every room's cached answer is the store's own.
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
		for range 2 { // a miss that fills the cache, then a hit
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
