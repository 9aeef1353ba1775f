package transporttest

import (
	"sync"
	"testing"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// laggingFanout is an engine whose publications reach the hub through a
// queue that the test can stop (valve), as a loaded node's fan-out lags
// behind its commits: the store then holds messages the rooms have not
// published yet.
type laggingFanout struct {
	core.Engine
	valve sync.Mutex              // held by the test: publications wait
	queue chan []protocol.Message // committed, not yet handed to the hub
	done  chan struct{}
	hub   core.Handler // set by Register, before the forwarder starts
}

func newLaggingFanout() *laggingFanout {
	return &laggingFanout{queue: make(chan []protocol.Message, 64), done: make(chan struct{})}
}

func (l *laggingFanout) Register(h core.Handler) {
	l.hub = h
	l.Engine.Register(l)
	go l.forward()
}

func (l *laggingFanout) forward() {
	for {
		select {
		case msgs := <-l.queue:
			l.valve.Lock()
			l.hub.Publish(msgs)
			l.valve.Unlock()
		case <-l.done:
			return
		}
	}
}

func (l *laggingFanout) Publish(msgs []protocol.Message)          { l.queue <- msgs }
func (l *laggingFanout) Deliver(room string, e protocol.Envelope) { l.hub.Deliver(room, e) }
func (l *laggingFanout) Control(c core.Control)                   { l.hub.Control(c) }

// A client that resumes while the node's fan-out is behind its store
// (the room's recent window ends short of what is stored) gets every
// message once, in order: the window's part from memory, the rest from
// the store, and nothing again when the held publications arrive.
func TestResumeWhileFanoutLags(t *testing.T) {
	Run(t, func(t *testing.T, dial Dialer) {
		const room = "lagging"
		lag := newLaggingFanout()
		e := NewEnv(t, Options{Hub: fast, Engine: func(s core.Engine) core.Engine { lag.Engine = s; return lag }})
		t.Cleanup(func() { close(lag.done) })
		alice := dial(t, e, e.Token(t, "alice", Claims{}), []Join{{Room: room}})
		defer alice.Close()
		fill(t, e, room, 3, "published")
		expectSeqs(t, alice, room, 1, 3) // published, so in the room's window

		lag.valve.Lock()
		fill(t, e, room, 3, "stored, not published") // 4..6
		before := series(scrape(t, e), "chat_replayed_entries_total", "from", "memory")
		bob := dial(t, e, e.Token(t, "bob", Claims{}), []Join{{Room: room, Since: ptr(1)}})
		defer bob.Close()
		lag.valve.Unlock()

		expectSeqs(t, bob, room, 2, 6)
		if n := series(scrape(t, e), "chat_replayed_entries_total", "from", "memory") - before; n < 2 {
			t.Errorf("%v entries replayed from memory, want the window's 2..3", n)
		}
		expectSeqs(t, alice, room, 4, 6)
		hubSend(t, e, room, "live")
		expectSeqs(t, bob, room, 7, 7) // the next message, not 4..6 again
	})
}
