package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// waitTimeout bounds every wait on a publication. It is a failure
// deadline, not a synchronisation: tests wait on events.
const waitTimeout = 20 * time.Second

// recorder collects what an engine publishes. Engines call publish from
// their own goroutines.
type recorder struct {
	mu       sync.Mutex
	msgs     []protocol.Message             // guarded by mu
	released map[string][]protocol.File     // by room; guarded by mu
	errs     []string                       // guarded by mu
	changed  chan struct{}                  // guarded by mu; closed on each publish
	verify   func(m protocol.Message) error // guarded by mu
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

// setVerify installs a check that runs on each message as it is published.
func (r *recorder) setVerify(fn func(protocol.Message) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.verify = fn
}

func (r *recorder) publish(ms []protocol.Message) {
	r.mu.Lock()
	verify := r.verify
	r.mu.Unlock()
	var errs []string
	if verify != nil {
		for _, m := range ms {
			if err := verify(m); err != nil {
				errs = append(errs, err.Error())
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, ms...)
	r.errs = append(r.errs, errs...)
	close(r.changed)
	r.changed = make(chan struct{})
}

// snapshot returns what was published so far and any verify failures.
func (r *recorder) snapshot() ([]protocol.Message, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]protocol.Message(nil), r.msgs...), append([]string(nil), r.errs...)
}

// waitFor waits until done holds for the published messages.
func (r *recorder) waitFor(t *testing.T, what string, done func([]protocol.Message) bool) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		r.mu.Lock()
		ok, changed := done(r.msgs), r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("timed out waiting for publication: %s", what)
		}
	}
}

// barrier appends a marker to room and waits until it is published. As
// publications are in per-room seq order, everything appended to room
// before the barrier has been published when it returns.
func (fx *fixture) barrier(room string) protocol.Message {
	fx.t.Helper()
	fx.barriers++
	m := fx.append(room, fmt.Sprintf("barrier-%d", fx.barriers))
	fx.pub.waitFor(fx.t, "barrier in "+room, func(ms []protocol.Message) bool {
		for _, p := range ms {
			if p.Room == room && p.ID == m.ID {
				return true
			}
		}
		return false
	})
	return m
}

// seqs returns the seqs of ms.
func seqs(ms []protocol.Message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

// wantSeqs fails unless ms have exactly the seqs from..to, in order.
func wantSeqs(t *testing.T, what string, ms []protocol.Message, from, to uint64) {
	t.Helper()
	var want []uint64
	for s := from; s <= to; s++ {
		want = append(want, s)
	}
	got := seqs(ms)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: seqs %v, want %v", what, got, want)
	}
}

// wantBounds fails unless p has the given head and first.
func wantBounds(t *testing.T, what string, p core.Page, head, first uint64) {
	t.Helper()
	if p.Head != head || p.First != first {
		t.Fatalf("%s: head %d first %d, want head %d first %d", what, p.Head, p.First, head, first)
	}
}

// wantSame fails unless got is want as stored.
func wantSame(t *testing.T, what string, got, want protocol.Message) {
	t.Helper()
	if !got.Equal(want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}
