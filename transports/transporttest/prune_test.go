package transporttest

import (
	"context"
	"sync"
	"testing"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// heldSince is an engine whose first replay read of room (Since with a
// limit) waits until the test lets it go: a catch-up held at a known
// point while the room moves on.
type heldSince struct {
	core.Engine
	room    string
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (h *heldSince) Since(ctx context.Context, room string, after uint64, limit int) (core.Page, error) {
	if room == h.room && limit > 0 {
		held := false
		h.once.Do(func() { held = true })
		if held {
			close(h.entered)
			select {
			case <-h.release:
			case <-ctx.Done():
				return core.Page{}, ctx.Err()
			}
		}
	}
	return h.Engine.Since(ctx, room, after, limit)
}

// A replay that retention overtakes says so on every transport: the
// client resumes a room from seq 0, and before its catch-up reads the
// first page the room gets 100 more messages, which prune everything it
// was owed up to seq 90 (the room keeps 50). The client gets a joined
// envelope with recovered:false before seq 91, then 91 to the head in
// order, then the room live; never a jump nothing explains.
func TestReplayOvertakenByRetention(t *testing.T) {
	Run(t, func(t *testing.T, dial Dialer) {
		const room, retain = "overtaken", 50
		held := &heldSince{room: room, entered: make(chan struct{}), release: make(chan struct{})}
		e := NewEnv(t, Options{Hub: fast, MaxMessages: retain, Engine: func(s core.Engine) core.Engine {
			held.Engine = s
			return held
		}})
		fill(t, e, room, 40, "before")
		tok := e.Token(t, "olga", Claims{})
		dialed := make(chan Client, 1)
		go func() { dialed <- dial(t, e, tok, []Join{{Room: room, Since: ptr(0)}}) }()
		ctx := Ctx(t)
		select {
		case <-held.entered:
		case <-ctx.Done():
			t.Fatal("the catch-up never read the store")
		}
		fill(t, e, room, 100, "after")
		close(held.release)
		var c Client
		select {
		case c = <-dialed:
		case <-ctx.Done():
			t.Fatal("dial did not return")
		}
		defer c.Close()
		var last uint64
		var told bool
		for last < 141 {
			if last == 140 {
				if _, err := c.Send(ctx, room, "live", "live"); err != nil {
					t.Fatal(err)
				}
			}
			env, err := c.Next(ctx)
			if err != nil {
				t.Fatalf("after seq %d (told: %v): %v", last, told, err)
			}
			switch env.Type {
			case protocol.TypeJoined:
				if env.Recovered != nil && !*env.Recovered {
					told = true
				}
			case protocol.TypeMessage:
				switch {
				case env.Seq <= last:
					t.Fatalf("seq %d after %d", env.Seq, last)
				case env.Seq != last+1 && !told:
					t.Fatalf("seq %d after %d, and no joined envelope said history was lost", env.Seq, last)
				case env.Seq != last+1 && env.Seq != 91:
					t.Fatalf("seq %d after %d: the gap is not the pruned one (up to 90)", env.Seq, last)
				}
				last = env.Seq
			}
		}
		if !told {
			t.Fatal("no joined envelope with recovered:false")
		}
	})
}
