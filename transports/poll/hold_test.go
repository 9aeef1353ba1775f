package poll_test

import (
	"testing"
	"time"

	"github.com/chatd/chatd/transports/poll"
	"github.com/chatd/chatd/transports/transporttest"
)

// TestHoldEndSpreads: a held poll stops waiting at a random point of the
// hold's last fifth, so that clients that connected together drift
// apart: never later than Hold, never sooner than four fifths of it, and
// not all at the same point.
func TestHoldEndSpreads(t *testing.T) {
	e := transporttest.NewEnv(t, transporttest.Options{Hub: fast})
	const hold = 25 * time.Second
	h, _, _ := server(t, e, poll.Config{Hold: hold})
	opened := time.Now()
	first := h.HoldEnd(opened)
	same := true
	for range 200 {
		end := h.HoldEnd(opened)
		if d := end.Sub(opened); d > hold || d < hold*4/5 {
			t.Fatalf("a poll held for %v, want %v to %v", d, hold*4/5, hold)
		}
		same = same && end.Equal(first)
	}
	if same {
		t.Fatalf("200 polls opened together all end their hold at %v", first.Sub(opened))
	}
}
