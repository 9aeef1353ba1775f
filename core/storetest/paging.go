package storetest

import (
	"testing"
	"time"
)

// testEmptyRoom: a room never written has head 0 and first 1.
func testEmptyRoom(t *testing.T, f Factory) {
	fx := newFixture(t, f, nil)
	fx.append("other", "x")
	p := fx.since("none", 0, 10)
	wantBounds(t, "Since", p, 0, 1)
	wantSeqs(t, "Since", p.Messages, 1, 0)
	if !p.Recovered(0) || p.Recovered(1) {
		t.Fatalf("empty room: Recovered(0) %v Recovered(1) %v, want true, false", p.Recovered(0), p.Recovered(1))
	}
	b := fx.before("none", 0, 10)
	wantBounds(t, "Before", b, 0, 1)
	wantSeqs(t, "Before", b.Messages, 1, 0)
	reads, err := fx.Store.Reads(fx.ctx, "none")
	if err != nil || len(reads) != 0 {
		t.Fatalf("Reads of empty room = %v, %v; want none", reads, err)
	}
}

// testSincePaging: Since walks forward in pages, bounded by the head;
// limit 0 returns the bounds only.
func testSincePaging(t *testing.T, f Factory) {
	fx := newFixture(t, f, nil)
	sent := fx.appendN("r", "m", 10)
	for _, c := range []struct {
		after    uint64
		limit    int
		from, to uint64
	}{{0, 3, 1, 3}, {3, 3, 4, 6}, {6, 100, 7, 10}, {9, 5, 10, 10}, {10, 5, 1, 0}, {25, 5, 1, 0}, {4, 0, 1, 0}} {
		p := fx.since("r", c.after, c.limit)
		wantSeqs(t, "Since", p.Messages, c.from, c.to)
		wantBounds(t, "Since", p, 10, 1)
	}
	p := fx.since("r", 0, 1)
	for after := range uint64(11) {
		if !p.Recovered(after) {
			t.Fatalf("Recovered(%d) = false with nothing pruned", after)
		}
	}
	if p.Recovered(11) {
		t.Fatal("Recovered(11) = true beyond the head")
	}
	for i, m := range fx.readAll("r", 0) {
		wantSame(t, "paged message", m, sent[i])
	}
}

// testBeforePaging: Before walks backwards from the head in pages that
// are each oldest first.
func testBeforePaging(t *testing.T, f Factory) {
	fx := newFixture(t, f, nil)
	fx.appendN("r", "m", 10)
	for _, c := range []struct {
		before   uint64
		limit    int
		from, to uint64
	}{{0, 3, 8, 10}, {8, 3, 5, 7}, {5, 3, 2, 4}, {2, 3, 1, 1}, {1, 3, 1, 0},
		{11, 2, 9, 10}, {500, 2, 9, 10}, {0, 100, 1, 10}, {6, 0, 1, 0}} {
		p := fx.before("r", c.before, c.limit)
		wantSeqs(t, "Before", p.Messages, c.from, c.to)
		wantBounds(t, "Before", p, 10, 1)
	}
}

// testRetentionCount: past MaxMessages the oldest are pruned, First moves,
// a resume from a pruned seq is not recovered, and seqs are not reused.
func testRetentionCount(t *testing.T, f Factory) {
	fx := newFixture(t, f, func(o *Options) { o.MaxMessages = 5 })
	fx.appendN("r", "m", 12)
	fx.appendN("small", "m", 3)
	p := fx.since("r", 0, 100)
	wantSeqs(t, "after pruning", p.Messages, 8, 12)
	wantBounds(t, "after pruning", p, 12, 8)
	for after, want := range map[uint64]bool{0: false, 6: false, 7: true, 10: true, 12: true} {
		if p.Recovered(after) != want {
			t.Fatalf("Recovered(%d) = %v, want %v", after, !want, want)
		}
	}
	wantSeqs(t, "Before", fx.before("r", 0, 100).Messages, 8, 12)
	wantSeqs(t, "Before 9", fx.before("r", 9, 100).Messages, 8, 8)
	wantSeqs(t, "Before 8", fx.before("r", 8, 100).Messages, 1, 0)
	wantSeqs(t, "Since 3", fx.since("r", 3, 100).Messages, 8, 12)

	m, dup, err := fx.Store.Append(fx.ctx, msg("r", "m9"))
	if err != nil || !dup || m.Seq != 10 {
		t.Fatalf("re-Append retained m9: seq %d dup %v err %v; want 10, dup", m.Seq, dup, err)
	}
	if m := fx.append("r", "next"); m.Seq != 13 {
		t.Fatalf("append after pruning: seq %d, want 13", m.Seq)
	}
	wantBounds(t, "after 13", fx.since("r", 0, 0), 13, 9)
	wantBounds(t, "other room", fx.since("small", 0, 0), 3, 1)
}

// testRetentionAge: messages older than MaxAge by the injected clock are
// pruned; seqs keep counting.
func testRetentionAge(t *testing.T, f Factory) {
	fx := newFixture(t, f, func(o *Options) { o.MaxAge = time.Hour })
	fx.appendN("r", "old", 3)
	fx.appendN("s", "old", 2)
	fx.clock.Advance(30 * time.Minute)
	fx.appendN("r", "mid", 2)
	fx.clock.Advance(45 * time.Minute)
	fx.sweep()

	p := fx.since("r", 0, 100)
	wantSeqs(t, "after sweep", p.Messages, 4, 5)
	wantBounds(t, "after sweep", p, 5, 4)
	if p.Recovered(0) || p.Recovered(2) || !p.Recovered(3) {
		t.Fatalf("Recovered(0,2,3) = %v %v %v, want false false true", p.Recovered(0), p.Recovered(2), p.Recovered(3))
	}
	wantBounds(t, "room s", fx.since("s", 0, 0), 2, 3)
	if m := fx.append("r", "new"); m.Seq != 6 {
		t.Fatalf("append after sweep: seq %d, want 6", m.Seq)
	}

	fx.clock.Advance(2 * time.Hour)
	fx.sweep()
	p = fx.since("r", 0, 100)
	wantSeqs(t, "all expired", p.Messages, 1, 0)
	wantBounds(t, "all expired", p, 6, 7)
	if !p.Recovered(6) || p.Recovered(5) {
		t.Fatal("all expired: want Recovered(6) and not Recovered(5)")
	}
	wantBounds(t, "Before, all expired", fx.before("r", 0, 10), 6, 7)
	if m := fx.append("r", "newer"); m.Seq != 7 {
		t.Fatalf("append after full expiry: seq %d, want 7", m.Seq)
	}
}
