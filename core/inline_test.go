package core_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// inliner is an InlineWriter that keeps the message seqs it is given and
// how (inline or through Write). It refuses inline the seqs in refuse,
// and a Write that carries the seq in hold waits for release.
type inliner struct {
	refuse map[uint64]bool
	hold   uint64
	held   chan struct{} // closed once the Write carrying hold has begun
	resume chan struct{} // closed by the test to let that Write go on

	mu      sync.Mutex
	seqs    []uint64
	inline  map[uint64]bool
	frames  []core.Frame
	written int // messages taken through Write
}

func (w *inliner) Name() string { return "test" }

func (w *inliner) WriteInline(f core.Frame) bool {
	if f.Type != protocol.TypeMessage || w.refuse[f.Seq] {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seqs = append(w.seqs, f.Seq)
	w.inline[f.Seq] = true
	w.frames = append(w.frames, f)
	return true
}

func (w *inliner) Write(frames []core.Frame) error {
	for _, f := range frames {
		if f.Type == protocol.TypeMessage && f.Seq == w.hold {
			close(w.held)
			<-w.resume
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range frames {
		if f.Type == protocol.TypeMessage {
			w.seqs = append(w.seqs, f.Seq)
			w.frames = append(w.frames, f)
			w.written++
		}
	}
	return nil
}

func (w *inliner) Close(core.Disconnect) {}

func (w *inliner) snapshot() (seqs []uint64, inline map[uint64]bool, written int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.seqs), maps.Clone(w.inline), w.written
}

// A session whose transport is an InlineWriter hands messages to it on
// the fan-out's goroutine while no writer runs, and through its writer
// otherwise, without ever reordering them: seq 3 is refused inline and
// its Write is held while 4 and 5 are fanned out, which must then queue
// behind it rather than go inline. Once that writer has exited (at once,
// though WriterLinger is an hour), messages go inline again. The session
// observes no delivery itself: the transport says when it has delivered.
func TestInlineWriterKeepsOrder(t *testing.T) {
	obs := newObserved()
	hub := newHub(t, core.Config{WriterLinger: time.Hour, SendRate: 1e6, SendBurst: 1e6, Observer: obs})
	ctx := context.Background()
	w := &inliner{refuse: map[uint64]bool{3: true}, hold: 3, held: make(chan struct{}), resume: make(chan struct{}),
		inline: map[uint64]bool{}}
	alice, err := hub.Connect(auth.Identity{User: "alice", Name: "Alice"}, w, core.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Join(ctx, "general", nil, false); err != nil {
		t.Fatal(err)
	}
	bobRec := newRecorder()
	bob, err := hub.Connect(auth.Identity{User: "bob", Name: "Bob"}, bobRec, core.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.Join(ctx, "general", nil, false); err != nil {
		t.Fatal(err)
	}
	send := func(i int) {
		t.Helper()
		if _, err := hub.Send(ctx, auth.Identity{User: "bob", Name: "Bob"}, "general", fmt.Sprintf("m%d", i), "hi"); err != nil {
			t.Fatal(err)
		}
	}
	// bobHas reports whether bob's session has been given seq: the room
	// offers a message to every member before the next, so alice has
	// been offered every seq before it.
	bobHas := func(seq uint64) bool {
		bobRec.mu.Lock()
		defer bobRec.mu.Unlock()
		for _, f := range bobRec.frames {
			if f.Type == protocol.TypeMessage && f.Seq >= seq {
				return true
			}
		}
		return false
	}
	for i := 1; i <= 3; i++ {
		send(i)
	}
	<-w.held // alice's writer is in Write with seq 3
	send(4)
	send(5)
	eventuallyCore(t, "bob given seq 5", func() bool { return bobHas(5) })
	close(w.resume)
	for i := 6; i <= 40; i++ {
		send(i)
	}
	eventuallyCore(t, "alice given 40 messages", func() bool { seqs, _, _ := w.snapshot(); return len(seqs) >= 40 })

	seqs, inline, written := w.snapshot()
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("alice was given seqs %v, want 1 to 40 in order, once each", seqs)
		}
	}
	if inline[3] || inline[4] || inline[5] {
		t.Errorf("seqs 3-5 went inline (%v) while the writer held 3", inline)
	}
	if !inline[1] {
		t.Error("seq 1 did not go inline with no writer running")
	}
	late := 0
	for s := uint64(6); s <= 40; s++ {
		if inline[s] {
			late++
		}
	}
	if late == 0 {
		t.Error("no message went inline after the writer's batch: the writer lingers")
	}
	if written == 0 {
		t.Error("no message went through Write")
	}
	if got := obs.count("delivered alice"); got != 0 {
		t.Errorf("the session observed %d deliveries to alice itself; an InlineWriter's transport does", got)
	}
	w.mu.Lock()
	frames := slices.Clone(w.frames)
	w.mu.Unlock()
	alice.Delivered(frames)
	if got := obs.count("delivered alice"); got != len(frames) {
		t.Errorf("Delivered with %d messages: the observer saw %d", len(frames), got)
	}
}
