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
// reads its target back changed (new text, or none) and, after a delete,
// the target's earlier edits too (redacted), so the window keeps only
// what came after the last entry that names the target. A join uses it only when it reaches
// the head the store reported for the room when the join looked, so the
// window never ends short of what is stored.
//
// Bounds: Config.RecentFrames entries and Config.RecentBytes per room,
// Config.RecentBudget on the node, counting each entry's encoded bytes
// and its Frame; a room that would go past the node's budget keeps no
// window until it fits again.

// recentEntry is one entry of a room's window: its frame, and for an
// edit or a delete the seq of the message it changes.
type recentEntry struct {
	f      Frame
	target uint64
}

// size is what e counts against the bounds.
func (e *recentEntry) size() int { return len(e.f.Data) + int(unsafe.Sizeof(*e)) }

// remember adds m's frame f to the window. Called with r.mu held, after
// r.head took m.Seq.
func (r *room) remember(m protocol.Message, f Frame) {
	cfg := &r.hub.cfg
	if cfg.RecentFrames <= 0 {
		return
	}
	var target uint64 // for an edit or a delete, the message it changes
	if m.Kind == protocol.TypeEdit || m.Kind == protocol.TypeDelete {
		target = m.Target
		r.cutThrough(r.lastNaming(target))
	}
	if n := len(r.recent); n > 0 {
		switch last := r.recent[n-1].f.Seq; {
		case m.Seq <= last:
			return // already here
		case m.Seq != last+1:
			r.forgetRecent() // a gap: what came between is not here
		}
	}
	f.published, f.shared = time.Time{}, nil // a replay is not a live delivery; derived forms are not kept
	e := recentEntry{f: f, target: target}
	size := e.size()
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
	r.recent = append(r.recent, e)
	r.recentBytes += size
}

// recentAfter returns copies of the window's frames after seq after, if
// the window holds every entry from after+1 to the room's published head
// (none if after is that head), and reports whether that head is at
// least storeHead, so that nothing stored lies beyond them. With covered
// false the window does not reach back to after+1, and frames is nil.
// Called with r.mu held.
func (r *room) recentAfter(after, storeHead uint64) (frames []Frame, covered, complete bool) {
	n := len(r.recent)
	if n == 0 {
		return nil, false, false
	}
	lo, hi := r.recent[0].f.Seq, r.recent[n-1].f.Seq
	if after+1 < lo || after > hi || hi != r.head {
		return nil, false, false
	}
	tail := r.recent[after+1-lo:]
	frames = make([]Frame, len(tail))
	for i := range tail {
		frames[i] = tail[i].f
	}
	return frames, true, hi >= storeHead
}

// lastNaming returns the seq of the window's last entry that is target or
// an edit or delete of it; target itself if none is. Called with r.mu
// held.
func (r *room) lastNaming(target uint64) uint64 {
	for i := len(r.recent) - 1; i >= 0 && r.recent[i].f.Seq > target; i-- {
		if r.recent[i].target == target {
			return r.recent[i].f.Seq
		}
	}
	return target
}

// cutThrough drops the window's entries up to seq. Called with r.mu held.
func (r *room) cutThrough(seq uint64) {
	i := 0
	for i < len(r.recent) && r.recent[i].f.Seq <= seq {
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
		freed += r.recent[i].size()
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
