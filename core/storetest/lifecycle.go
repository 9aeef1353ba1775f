package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// testReopen: heads, messages, retention bounds, idempotency keys and read
// positions survive Close and reopen; seqs continue.
func testReopen(t *testing.T, f Factory) {
	fx := newFixture(t, f, func(o *Options) { o.MaxMessages = 4 })
	sent := fx.appendN("a", "m", 6)
	fx.appendN("b", "m", 2)
	if _, err := fx.setRead("a", "ann", 5); err != nil {
		t.Fatal(err)
	}
	fx.reopen()

	p := fx.since("a", 0, 100)
	wantBounds(t, "reopened a", p, 6, 3)
	for i, m := range p.Messages {
		wantSame(t, "reopened a", m, sent[i+2])
	}
	wantBounds(t, "reopened b", fx.since("b", 0, 0), 2, 1)
	m, dup, err := fx.Store.Append(fx.ctx, msg("a", "m4"))
	if err != nil || !dup {
		t.Fatalf("re-Append after reopen: dup %v err %v; want dup", dup, err)
	}
	wantSame(t, "duplicate after reopen", m, sent[4])
	wantReads(t, fx, "a", map[string]uint64{"ann": 5})
	if m := fx.append("a", "after"); m.Seq != 7 {
		t.Fatalf("append after reopen: seq %d, want 7", m.Seq)
	}
	fx.barrier("a") // the reopened store publishes too
}

// testClosed: every method fails with core.ErrClosed after Close, and
// Close is idempotent.
func testClosed(t *testing.T, f Factory) {
	fx := newFixture(t, f, nil)
	fx.append("r", "x")
	if err := fx.Store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s, ctx := fx.Store, fx.ctx
	calls := map[string]func() error{
		"Append": func() error { _, _, err := s.Append(ctx, msg("r", "y")); return err },
		"Since":  func() error { _, err := s.Since(ctx, "r", 0, 10); return err },
		"Before": func() error { _, err := s.Before(ctx, "r", 0, 10); return err },
		"SetReads": func() error {
			return s.SetReads(ctx, []core.ReadPosition{{Room: "r", User: "ann", Seq: 1}})
		},
		"Reads": func() error { _, err := s.Reads(ctx, "r"); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, core.ErrClosed) {
			t.Errorf("%s after Close: %v, want core.ErrClosed", name, err)
		}
	}
	if err := fx.Store.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// testCloseInFlight: Close while appends are in flight. Each Append either
// succeeds or fails with core.ErrClosed, and every acked message is in
// the reopened store, with no gaps.
func testCloseInFlight(t *testing.T, f Factory) {
	fx := newFixture(t, f, nil)
	acked := make(chan protocol.Message, 64*20)
	started := make(chan struct{}, 64*20)
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			for i := range 20 {
				m, _, err := fx.Store.Append(fx.ctx, msg("r", fmt.Sprintf("g%d-%d", g, i)))
				if err != nil {
					if !errors.Is(err, core.ErrClosed) {
						t.Errorf("Append during Close: %v, want core.ErrClosed", err)
					}
					return
				}
				acked <- m
				started <- struct{}{}
			}
		})
	}
	<-started // Close once appends are flowing
	if err := fx.Store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	close(acked)
	fx.reopen()
	all := fx.readAll("r", 0)
	wantSeqs(t, "after reopen", all, 1, uint64(len(all)))
	for m := range acked {
		if m.Seq > uint64(len(all)) || !all[m.Seq-1].Equal(m) {
			t.Fatalf("acked %+v missing after reopen", m)
		}
	}
}

// testCancel: an Append whose context ends returns ctx.Err(). Whether the
// message was stored is undecided; re-sending the id settles it, and the
// room never holds it twice nor has gaps.
func testCancel(t *testing.T, f Factory) {
	fx := newFixture(t, f, nil)
	done, cancel := context.WithCancel(fx.ctx)
	cancel()
	if _, _, err := fx.Store.Append(done, msg("r", "pre")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a cancelled context: %v, want context.Canceled", err)
	}
	ctx, cancel := context.WithCancel(fx.ctx)
	defer cancel()
	results := make([]error, 64)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			_, _, results[i] = fx.Store.Append(ctx, msg("r", fmt.Sprint("c", i)))
			cancel() // the first to finish cancels the rest
		})
	}
	wg.Wait()
	ids := append([]string{"pre"}, make([]string, 0, len(results))...)
	for i, err := range results {
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("Append c%d: %v, want nil or context.Canceled", i, err)
		}
		ids = append(ids, fmt.Sprint("c", i))
	}
	resend(t, fx, ids, results)
}

// resend re-appends every id with a live context: one that was acked
// (nil in results, offset by the leading "pre") must come back a
// duplicate. Afterwards the room holds each id exactly once, gap-free.
func resend(t *testing.T, fx *fixture, ids []string, results []error) {
	t.Helper()
	for i, id := range ids {
		_, dup, err := fx.Store.Append(fx.ctx, msg("r", id))
		if err != nil {
			t.Fatalf("re-Append %s: %v", id, err)
		}
		if i > 0 && results[i-1] == nil && !dup {
			t.Fatalf("re-Append of acked %s: dup false", id)
		}
	}
	all := fx.readAll("r", 0)
	wantSeqs(t, "after resend", all, 1, uint64(len(ids)))
	seen := map[string]bool{}
	for _, m := range all {
		if seen[m.ID] {
			t.Fatalf("%s stored twice", m.ID)
		}
		seen[m.ID] = true
	}
}
