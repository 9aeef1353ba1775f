package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// testPublishAfterStore: every new message is published exactly once,
// after it is durable (Since already sees it), in per-room seq order;
// duplicates are not published.
func testPublishAfterStore(t *testing.T, f Factory) {
	fx := newFixture(t, f, nil)
	store := fx.Store
	fx.pub.setVerify(func(m protocol.Message) error {
		p, err := store.Since(context.Background(), m.Room, m.Seq-1, 1)
		if err != nil || len(p.Messages) != 1 || !p.Messages[0].Equal(m) {
			return fmt.Errorf("published %s/%d (%s) before Since saw it: %+v, %v", m.Room, m.Seq, m.ID, p.Messages, err)
		}
		return nil
	})
	rooms := []string{"a", "b", "c"}
	fresh := sendMixed(t, fx, rooms)
	for _, room := range rooms {
		fx.barrier(room)
	}
	got, errs := fx.pub.snapshot()
	for _, e := range errs {
		t.Error(e)
	}
	byRoom := map[string][]protocol.Message{}
	for _, m := range got {
		byRoom[m.Room] = append(byRoom[m.Room], m)
	}
	for _, room := range rooms {
		ms := byRoom[room]
		wantSeqs(t, "published in "+room, ms, 1, uint64(len(ms)))
		for _, m := range ms[:len(ms)-1] { // all but the barrier
			if !fresh[m.Room+"/"+m.ID].Equal(m) {
				t.Fatalf("published %+v, which no Append returned as new", m)
			}
		}
		if n := len(ms) - 1; n != 40 {
			t.Fatalf("room %s: %d published, want 40", room, n)
		}
	}
}

// sendMixed appends 40 new messages to each room from several goroutines,
// each sent twice, and returns the ones Append reported new, by room/id.
func sendMixed(t *testing.T, fx *fixture, rooms []string) map[string]protocol.Message {
	var mu sync.Mutex
	fresh := map[string]protocol.Message{}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 10 {
				for _, room := range rooms {
					for range 2 {
						m, dup, err := fx.Store.Append(fx.ctx, msg(room, fmt.Sprintf("g%d-%d", g, i)))
						if err != nil {
							t.Errorf("Append: %v", err)
							return
						}
						if !dup {
							mu.Lock()
							fresh[room+"/"+m.ID] = m
							mu.Unlock()
						}
					}
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return fresh
}

// testReadPositions: SetReads keeps the maximum and returns it; Reads
// returns every user's position in a room.
func testReadPositions(t *testing.T, f Factory) {
	fx := newFixture(t, f, nil)
	fx.appendN("r", "m", 3)
	for _, c := range []struct {
		user      string
		seq, want uint64
	}{{"ann", 5, 5}, {"ann", 3, 5}, {"ann", 7, 7}, {"bob", 2, 2}, {"bob", 2, 2}} {
		got, err := fx.setRead("r", c.user, c.seq)
		if err != nil || got != c.want {
			t.Fatalf("SetRead(%s, %d) = %d, %v; want %d", c.user, c.seq, got, err, c.want)
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range uint64(25) {
				seq := i*8 + uint64(g) + 1
				if got, err := fx.setRead("r", "cat", seq); err != nil || got < seq {
					t.Errorf("SetRead(cat, %d) = %d, %v", seq, got, err)
				}
			}
		})
	}
	wg.Wait()
	wantReads(t, fx, "r", map[string]uint64{"ann": 7, "bob": 2, "cat": 200})
	if _, err := fx.setRead("quiet", "ann", 1); err != nil {
		t.Fatalf("SetRead in a room with no messages: %v", err)
	}
	wantReads(t, fx, "quiet", map[string]uint64{"ann": 1})

	batch := []core.ReadPosition{{Room: "r", User: "ann", Seq: 1}, {Room: "r", User: "dan", Seq: 3},
		{Room: "quiet", User: "bob", Seq: 1}}
	if err := fx.Store.SetReads(fx.ctx, batch); err != nil {
		t.Fatalf("SetReads: %v", err)
	}
	if got := []uint64{batch[0].Seq, batch[1].Seq, batch[2].Seq}; fmt.Sprint(got) != "[7 3 1]" {
		t.Fatalf("SetReads stored %v, want [7 3 1] (a position never goes down)", got)
	}
	wantReads(t, fx, "r", map[string]uint64{"ann": 7, "bob": 2, "cat": 200, "dan": 3})
	if err := fx.Store.SetReads(fx.ctx, nil); err != nil {
		t.Fatalf("SetReads of nothing: %v", err)
	}
}

// setRead stores one read position and returns the stored one.
func (fx *fixture) setRead(room, user string, seq uint64) (uint64, error) {
	rp := []core.ReadPosition{{Room: room, User: user, Seq: seq}}
	err := fx.Store.SetReads(fx.ctx, rp)
	return rp[0].Seq, err
}

// wantReads fails unless room's read positions are exactly want.
func wantReads(t *testing.T, fx *fixture, room string, want map[string]uint64) {
	t.Helper()
	got, err := fx.Store.Reads(fx.ctx, room)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Reads(%s) = %v, %v; want %v", room, got, err, want)
	}
}
