package core_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// A catch-up that the store prunes past while it waits on a slow client
// does not skip what was pruned in silence: the client gets a joined
// envelope with recovered:false before the first message after the gap,
// as a join from beyond the retained history does, and every seq it gets
// before and after it is in order. Without it, the client's position
// jumped over the pruned messages and nothing told it they were gone.
func TestCatchUpPrunedMeanwhileSaysSo(t *testing.T) {
	const retain, page = 50, 10
	// The replay window holds about one frame: the catch-up waits on the
	// client for every page.
	hub := newEditHub(t, core.Config{SendRate: 1e6, SendBurst: 1e6, ReplayPage: page, ReplayWindow: 1}, retain)
	ctx := context.Background()
	sender := auth.Identity{User: "sam", Name: "Sam"}
	sent := 0
	send := func(n int) {
		for range n {
			sent++
			if _, err := hub.Send(ctx, sender, "pruned", fmt.Sprint("k", sent), "x"); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(40)
	// A client that reads nothing until the test opens the gate.
	entered, gate := make(chan struct{}, 1), make(chan struct{})
	g := newRecorder()
	g.hold = func() {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-gate
	}
	var opened sync.Once
	openGate := func() { opened.Do(func() { close(gate) }) }
	t.Cleanup(openGate) // a test that stops early must not leave the writer stuck
	s, err := hub.Connect(auth.Identity{User: "rex", Name: "Rex"}, g, core.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	joined := make(chan error, 1)
	zero := uint64(0)
	go func() { joined <- s.Join(ctx, "pruned", &zero, false) }()
	// The join is under way and its first write is stuck on the client:
	// 100 more messages prune everything the catch-up has not read.
	<-entered
	send(100)
	openGate()
	if err := <-joined; err != nil {
		t.Fatal(err)
	}
	send(1) // live after the catch-up: seq 141
	var last uint64
	var told bool
	deadline := time.After(10 * time.Second)
	for last < 141 {
		g.mu.Lock()
		frames := g.frames
		g.frames = nil
		g.mu.Unlock()
		for _, f := range frames {
			switch f.Type {
			case protocol.TypeJoined:
				var e protocol.Envelope
				if err := json.Unmarshal(f.Data, &e); err != nil {
					t.Fatal(err)
				}
				if e.Recovered != nil && !*e.Recovered {
					told = true
				}
			case protocol.TypeMessage:
				if f.Seq != last+1 && !told {
					t.Fatalf("seq %d after %d, and no joined envelope said history was lost", f.Seq, last)
				}
				if f.Seq <= last {
					t.Fatalf("seq %d after %d", f.Seq, last)
				}
				last = f.Seq
			}
		}
		select {
		case <-g.more:
		case <-deadline:
			t.Fatalf("stuck at seq %d", last)
		}
	}
	if !told {
		t.Fatalf("every seq came: the store did not prune under the catch-up, so the test tested nothing")
	}
}
