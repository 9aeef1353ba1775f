package storetest

import (
	"testing"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// The recorder is the handler the suite registers with an engine: it
// records what is published and the files the engine releases.
var (
	_ core.Handler      = (*recorder)(nil)
	_ core.FileReleaser = (*recorder)(nil)
)

func (r *recorder) Publish(ms []protocol.Message)   { r.publish(ms) }
func (*recorder) Deliver(string, protocol.Envelope) {}
func (*recorder) Control(core.Control)              {}

// ReleaseFiles records files released in room.
func (r *recorder) ReleaseFiles(room string, files []protocol.File) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.released == nil {
		r.released = map[string][]protocol.File{}
	}
	r.released[room] = append(r.released[room], files...)
	close(r.changed)
	r.changed = make(chan struct{})
}

// releasedIn returns the ids of the files released in room so far.
func (r *recorder) releasedIn(room string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return protocol.FileIDs(r.released[room])
}

// waitReleased waits until the files with ids have been released in
// room, and fails if anything else was.
func (r *recorder) waitReleased(t *testing.T, room string, ids ...string) {
	t.Helper()
	r.waitFor(t, "files released in "+room, func([]protocol.Message) bool {
		return len(r.released[room]) >= len(ids)
	})
	if got := r.releasedIn(room); !sameIDs(got, ids) {
		t.Fatalf("released in %s: %v, want %v", room, got, ids)
	}
}

func sameIDs(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
