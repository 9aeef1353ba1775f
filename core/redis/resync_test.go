package redis

import (
	"testing"

	"github.com/chatd/chatd/core/redis/redistest"
)

// cut is a subscriber whose connections run through a proxy that the
// tests cut (Redis goes away for it alone) and a publisher that goes on
// appending meanwhile.
type cut struct {
	px       *redistest.Proxy
	sub, pub *Engine
	rec      *recorder       // sub's handler
	back     <-chan struct{} // sub's reconnects
}

func newCut(t *testing.T, prefix string) *cut {
	srv := redistest.Start(t, redistest.Options{Durable: true})
	c := &cut{px: redistest.NewProxy(t, srv.Addr), rec: newRecorder()}
	c.sub = open(t, srv, Config{Node: "sub", URL: c.px.URL(), Prefix: prefix})
	c.pub = open(t, srv, Config{Node: "pub", Prefix: prefix})
	c.sub.Register(c.rec)
	c.back = reconnects(c.sub)
	return c
}

// down cuts the subscriber off and waits until its reader has seen it;
// up lets it reconnect.
func (c *cut) down(t *testing.T) (up func()) {
	t.Helper()
	held, release := holdReconnect(t, c.sub)
	c.px.Cut()
	receive(t, "the subscriber to lose its link", held)
	return func() { c.px.Restore(); release() }
}

// TestResyncQuietRoom: in a subscribed room where nothing was delivered
// yet, a message appended while the link was down reaches the handler
// once the link is back (the room's head, read when its subscription
// came into force, is where the resync starts).
func TestResyncQuietRoom(t *testing.T) {
	c := newCut(t, "quiet")
	c.sub.Subscribe("q")
	fence(t, c.sub, c.rec, "q")
	up := c.down(t)
	appendOK(t, c.pub, "q", "while-down", 1)
	up()
	receive(t, "the subscriber to reconnect", c.back)
	appendOK(t, c.pub, "q", "after", 2)
	c.rec.wait(t, "q", 2)
}

// TestResyncEarlyLive: a message published to the new link before its
// first ping is answered (before the resync starts) must not make the
// resync skip what was appended while the link was down.
func TestResyncEarlyLive(t *testing.T) {
	c := newCut(t, "early")
	c.sub.Subscribe("r")
	appendOK(t, c.sub, "r", "one", 1)
	c.rec.wait(t, "r", 1)
	up := c.down(t)
	appendOK(t, c.pub, "r", "two", 2) // while the link is down
	hold := c.px.HoldNext("subscribe")
	up()
	receive(t, "the new link's SUBSCRIBE", hold.Sent)
	receive(t, "the new link's subscriptions in force", hold.Answered)
	appendOK(t, c.pub, "r", "three", 3) // reaches the new link before its ping goes out
	hold.Release()
	receive(t, "the subscriber to reconnect", c.back)
	appendOK(t, c.pub, "r", "four", 4)
	c.rec.wait(t, "r", 4)
}
