package core

import (
	"time"
	"unsafe"

	"github.com/chatd/chatd/core/protocol"
)

// A room keeps its newest published log entries, encoded as they were
// fanned out, so that a session resuming from a recent position (a short
// poll at level 3, a client back after a restart or a tier move) is
// replayed from memory: no store read, no decode, no encode per session.
// At level 3 the store reads and the encoding of replayed messages had
// been a third of a busy node's CPU.
//
// The window holds entries with contiguous seqs ending at the room's
// published head. Anything that could make it differ from the store
// empties it or cuts it: a gap in what this node was given (a lost
// publish on a cluster), and an edit or a delete, after which the store
// reads its target back changed (new text, or none), so the window keeps
// only what came after the target. A join uses it only when it reaches
// the head the store reported for the room when the join looked, so the
// window never ends short of what is stored.
//
// Bounds: Config.RecentFrames entries and Config.RecentBytes per room,
// Config.RecentBudget on the node, counting each entry's encoded bytes
// and its Frame; a room that would go past the node's budget keeps no
// window until it fits again.

// entrySize is what an entry of f counts against the bounds.
func entrySize(f *Frame) int { return len(f.Data) + int(unsafe.Sizeof(*f)) }

// remember adds m's frame f to the window. Called with r.mu held, after
// r.head took m.Seq.
func (r *room) remember(m protocol.Message, f Frame) {
	cfg := &r.hub.cfg
	if cfg.RecentFrames <= 0 {
		return
	}
	if m.Kind == protocol.TypeEdit || m.Kind == protocol.TypeDelete {
		r.cutThrough(m.Target)
	}
	if n := len(r.recent); n > 0 {
		switch last := r.recent[n-1].Seq; {
		case m.Seq <= last:
			return // already here
		case m.Seq != last+1:
			r.forgetRecent() // a gap: what came between is not here
		}
	}
	size := entrySize(&f)
	for len(r.recent) > 0 && (len(r.recent) >= cfg.RecentFrames || r.recentBytes+size > cfg.RecentBytes) {
		r.dropOldest(1)
	}
	if size > cfg.RecentBytes || r.hub.recentBytes.Add(int64(size)) > int64(cfg.RecentBudget) {
		if size <= cfg.RecentBytes {
			r.hub.recentBytes.Add(-int64(size))
		}
		r.forgetRecent() // the window must stay contiguous, so it starts again later
		return
	}
	f.published, f.shared = time.Time{}, nil // a replay is not a live delivery; derived forms are not kept
	r.recent = append(r.recent, f)
	r.recentBytes += size
}

// recentAfter returns copies of the window's frames after seq after, if
// the window holds every entry from after+1 to the room's published head
// and that head is at least storeHead. Called with r.mu held.
func (r *room) recentAfter(after, storeHead uint64) ([]Frame, bool) {
	n := len(r.recent)
	if n == 0 {
		return nil, false
	}
	lo, hi := r.recent[0].Seq, r.recent[n-1].Seq
	if after+1 < lo || after > hi || hi != r.head || hi < storeHead {
		return nil, false
	}
	return append([]Frame(nil), r.recent[after+1-lo:]...), true
}

// cutThrough drops the window's entries up to seq. Called with r.mu held.
func (r *room) cutThrough(seq uint64) {
	i := 0
	for i < len(r.recent) && r.recent[i].Seq <= seq {
		i++
	}
	r.dropOldest(i)
}

// dropOldest drops the window's first k entries. Called with r.mu held.
func (r *room) dropOldest(k int) {
	if k <= 0 {
		return
	}
	freed := 0
	for i := range k {
		freed += entrySize(&r.recent[i])
	}
	clear(r.recent[:k])
	r.recent = r.recent[k:]
	if len(r.recent) == 0 {
		r.recent = nil
	}
	r.recentBytes -= freed
	r.hub.recentBytes.Add(-int64(freed))
}

// forgetRecent empties the window. Called with r.mu held.
func (r *room) forgetRecent() {
	r.dropOldest(len(r.recent))
}
