package redis

import (
	"fmt"
	"testing"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/brokertest"
	"github.com/chatd/chatd/core/redis/redistest"
	"github.com/chatd/chatd/core/storetest"
)

// TestConformance runs the store suite on one durable server, each
// subtest under its own prefix (derived from its Dir, so that a reopen
// finds its data).
func TestConformance(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Durable: true})
	storetest.Run(t, func(t *testing.T, o storetest.Options) storetest.Engine {
		e := open(t, srv, Config{Prefix: prefixOf(o.Dir), MaxMessages: o.MaxMessages, MaxAge: o.MaxAge, Now: o.Now})
		return storetest.Engine{Store: e, Sweep: e.Sweep}
	})
}

// TestBroker runs the broker suite with three nodes on one server, over
// its Unix socket.
func TestBroker(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Durable: true})
	brokertest.Run(t, 3, func(t *testing.T, dir string) core.Engine {
		return open(t, srv, Config{URL: srv.SockURL(), Prefix: prefixOf(dir)})
	})
}

// TestIdempotencyWindow: a pruned message's id is forgotten with it, so
// the idempotency window is the retention window, as in core/bolt.
func TestIdempotencyWindow(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Durable: true})
	e := open(t, srv, Config{MaxMessages: 3})
	for i := range 5 {
		appendOK(t, e, "r", fmt.Sprint("m", i), uint64(i+1))
	}
	if n, err := srv.Do("HLEN", e.keys.room("r").ids); err != nil || n != ":3" {
		t.Fatalf("HLEN of the ids hash = %q, %v; want 3 entries for 3 retained messages", n, err)
	}
	appendOK(t, e, "r", "m0", 6) // pruned, so new again
	if m, dup, err := e.Append(t.Context(), testMsg("r", "m4")); err != nil || !dup || m.Seq != 5 {
		t.Fatalf("re-Append of retained m4: seq %d dup %v err %v; want 5, dup", m.Seq, dup, err)
	}
}
