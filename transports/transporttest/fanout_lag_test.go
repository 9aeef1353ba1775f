package transporttest

import (
	"testing"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/brokertest"
)

// A client that resumes while the node's fan-out is behind its store
// (the room's recent window ends short of what is stored) gets every
// message once, in order: the window's part from memory, the rest from
// the store, and nothing again when the held publications arrive.
func TestResumeWhileFanoutLags(t *testing.T) {
	Run(t, func(t *testing.T, dial Dialer) {
		const room = "lagging"
		lag := &brokertest.Lagging{}
		e := NewEnv(t, Options{Hub: fast, Engine: func(s core.Engine) core.Engine { lag.Engine = s; return lag }})
		alice := dial(t, e, e.Token(t, "alice", Claims{}), []Join{{Room: room}})
		defer alice.Close()
		fill(t, e, room, 3, "published")
		expectSeqs(t, alice, room, 1, 3) // published, so in the room's window

		lag.Hold()
		fill(t, e, room, 3, "stored, not published") // 4..6
		before := series(scrape(t, e), "chat_replayed_entries_total", "from", "memory")
		bob := dial(t, e, e.Token(t, "bob", Claims{}), []Join{{Room: room, Since: ptr(1)}})
		defer bob.Close()
		lag.Release()

		expectSeqs(t, bob, room, 2, 6)
		if n := series(scrape(t, e), "chat_replayed_entries_total", "from", "memory") - before; n < 2 {
			t.Errorf("%v entries replayed from memory, want the window's 2..3", n)
		}
		expectSeqs(t, alice, room, 4, 6)
		hubSend(t, e, room, "live")
		expectSeqs(t, bob, room, 7, 7) // the next message, not 4..6 again
	})
}
