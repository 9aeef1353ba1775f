package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/core/protocol"
)

// testSeqPerRoom: seqs run 1, 2, 3… per room, independently.
func testSeqPerRoom(t *testing.T, f Factory) {
	fx := newFixture(t, f, nil)
	for i, want := range []struct {
		room string
		seq  uint64
	}{{"a", 1}, {"a", 2}, {"b", 1}, {"a", 3}, {"b", 2}} {
		if m := fx.append(want.room, fmt.Sprint("m", i)); m.Seq != want.seq {
			t.Fatalf("append %d to %s: seq %d, want %d", i, want.room, m.Seq, want.seq)
		}
	}
	pa, pb := fx.since("a", 0, 10), fx.since("b", 0, 10)
	wantSeqs(t, "room a", pa.Messages, 1, 3)
	wantSeqs(t, "room b", pb.Messages, 1, 2)
	wantBounds(t, "room a", pa, 3, 1)
	wantBounds(t, "room b", pb, 2, 1)
	if pa.Messages[2].ID != "m3" || pb.Messages[1].ID != "m4" {
		t.Fatalf("wrong messages: a3 = %q, b2 = %q", pa.Messages[2].ID, pb.Messages[1].ID)
	}
}

// testSeqConcurrent: many concurrent appenders to one room get unique,
// gap-free seqs, and a second room keeps its own numbering meanwhile.
func testSeqConcurrent(t *testing.T, f Factory) {
	const writers, each = 8, 200
	fx := newFixture(t, f, nil)
	results := make([][]protocol.Message, writers+2)
	var wg sync.WaitGroup
	for w := range results {
		room, n := "busy", each
		if w >= writers {
			room, n = "side", 50
		}
		wg.Go(func() {
			for i := range n {
				m, dup, err := fx.Store.Append(fx.ctx, msg(room, fmt.Sprintf("w%d-%d", w, i)))
				if err != nil || dup {
					t.Errorf("Append: dup %v err %v", dup, err)
					return
				}
				results[w] = append(results[w], m)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	checkConcurrent(t, fx, "busy", results[:writers], writers*each)
	checkConcurrent(t, fx, "side", results[writers:], 100)
}

// checkConcurrent checks that results hold n unique seqs that match the
// stored messages, which are exactly 1..n.
func checkConcurrent(t *testing.T, fx *fixture, room string, results [][]protocol.Message, n int) {
	t.Helper()
	bySeq := map[uint64]protocol.Message{}
	for _, rs := range results {
		for i, m := range rs {
			if prev, ok := bySeq[m.Seq]; ok {
				t.Fatalf("%s: seq %d given to %q and %q", room, m.Seq, prev.ID, m.ID)
			}
			if i > 0 && m.Seq <= rs[i-1].Seq {
				t.Fatalf("%s: one writer's seqs went back: %d after %d", room, m.Seq, rs[i-1].Seq)
			}
			bySeq[m.Seq] = m
		}
	}
	all := fx.readAll(room, 0)
	wantSeqs(t, room, all, 1, uint64(n))
	for _, m := range all {
		wantSame(t, fmt.Sprintf("%s seq %d", room, m.Seq), m, bySeq[m.Seq])
	}
}

// testStampsAndReturns: Append stamps TS from the clock, ignores the
// caller's Seq and TS, and returns the message as stored.
func testStampsAndReturns(t *testing.T, f Factory) {
	fx := newFixture(t, f, nil)
	in := msg("r", "x")
	in.Seq, in.TS = 77, 1
	m, dup, err := fx.Store.Append(fx.ctx, in)
	if err != nil || dup {
		t.Fatalf("Append: dup %v err %v", dup, err)
	}
	want := in
	want.Seq, want.TS = 1, Epoch.UnixMilli()
	wantSame(t, "returned", m, want)
	wantSame(t, "stored", fx.since("r", 0, 1).Messages[0], want)

	fx.clock.Advance(1500 * time.Millisecond)
	if m2 := fx.append("r", "y"); m2.TS != Epoch.UnixMilli()+1500 {
		t.Fatalf("second TS %d, want %d", m2.TS, Epoch.UnixMilli()+1500)
	}
}

// testIdempotent: re-sending (room, id) returns the first message, with
// its seq and ts, and stores nothing.
func testIdempotent(t *testing.T, f Factory) {
	fx := newFixture(t, f, nil)
	first := fx.append("r", "x")
	fx.append("r", "y")
	fx.clock.Advance(time.Minute)
	again := msg("r", "x")
	again.Text, again.From = "different", "someone else"
	got, dup, err := fx.Store.Append(fx.ctx, again)
	if err != nil || !dup {
		t.Fatalf("re-Append: dup %v err %v; want dup", dup, err)
	}
	wantSame(t, "duplicate", got, first)
	p := fx.since("r", 0, 10)
	wantSeqs(t, "after duplicate", p.Messages, 1, 2)
	wantBounds(t, "after duplicate", p, 2, 1)
	if m := fx.append("r", "z"); m.Seq != 3 {
		t.Fatalf("append after duplicate: seq %d, want 3", m.Seq)
	}
}

// testIdempotentRace: concurrent sends of one id store it once; every
// caller gets the same seq and ts and exactly one is not a duplicate.
func testIdempotentRace(t *testing.T, f Factory) {
	const ids, racers = 4, 12
	fx := newFixture(t, f, nil)
	type res struct {
		m   protocol.Message
		dup bool
	}
	got := make([][]res, ids)
	for i := range got {
		got[i] = make([]res, racers)
	}
	var wg sync.WaitGroup
	for i := range ids {
		for j := range racers {
			wg.Go(func() {
				m, dup, err := fx.Store.Append(fx.ctx, msg("r", fmt.Sprint("id", i)))
				if err != nil {
					t.Errorf("Append: %v", err)
				}
				got[i][j] = res{m, dup}
			})
		}
	}
	wg.Wait()
	for i, rs := range got {
		fresh := 0
		for _, r := range rs {
			if !r.dup {
				fresh++
			}
			wantSame(t, fmt.Sprint("id", i), r.m, rs[0].m)
		}
		if fresh != 1 {
			t.Fatalf("id%d: %d callers got dup=false, want 1", i, fresh)
		}
	}
	wantSeqs(t, "stored", fx.readAll("r", 0), 1, ids)
}

// testSameIDOtherRoom: idempotency is per room.
func testSameIDOtherRoom(t *testing.T, f Factory) {
	fx := newFixture(t, f, nil)
	fx.append("a", "pre")
	a := fx.append("a", "x")
	b := fx.append("b", "x")
	if a.Seq != 2 || b.Seq != 1 || b.Room != "b" {
		t.Fatalf("same id in two rooms: a seq %d, b seq %d room %q; want 2, 1, b", a.Seq, b.Seq, b.Room)
	}
	wantSeqs(t, "room b", fx.readAll("b", 0), 1, 1)
}
