package poll

import (
	"time"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// KeptPosition is what a kept session carries on with and, if it was
// kept from a poll that resumed from a cursor alone, the query strings a
// poll finds it by.
type KeptPosition struct {
	ID               auth.Identity
	Rooms            []string
	Cur              protocol.Cursor
	Raw              bool
	RawRooms, RawCur string
}

// KeptPositions returns the positions of the sessions h keeps.
func (h *Handler) KeptPositions() []KeptPosition {
	h.keep.mu.Lock()
	defer h.keep.mu.Unlock()
	var out []KeptPosition
	for _, kept := range h.keep.byUser {
		for _, c := range kept {
			p := c.pos
			out = append(out, KeptPosition{ID: p.id, Rooms: p.rooms, Cur: p.cur, Raw: p.raw, RawRooms: p.rawRooms, RawCur: p.rawCur})
		}
	}
	return out
}

// Kept returns the number of sessions h keeps for its clients' next polls.
func (h *Handler) Kept() int {
	h.keep.mu.Lock()
	defer h.keep.mu.Unlock()
	n := 0
	for _, kept := range h.keep.byUser {
		n += len(kept)
	}
	return n
}

// Polls returns how many polls opened a session of their own, and how
// many carried on with a kept one.
func (h *Handler) Polls() (opened, resumed uint64) { return h.opened.Load(), h.resumed.Load() }

// HoldEnd is when a poll opened at opened stops waiting for news.
func (h *Handler) HoldEnd(opened time.Time) time.Time { return h.holdEnd(opened) }

// NewPacerWith returns a Pacer of at most max whose readings come from
// sample.
func NewPacerWith(max time.Duration, sample func() (late, total uint64)) *Pacer {
	return &Pacer{max: max, sample: sample}
}

// Step is one tick of p with these readings.
func (p *Pacer) Step(late, total uint64) { p.step(late, total) }

// SchedLatencies is the reader NewPacer uses.
func SchedLatencies() func() (late, total uint64) { return schedLatencies() }

// KeptWithNews returns the number of kept sessions with news for the
// client's next poll.
func (h *Handler) KeptWithNews() int {
	h.keep.mu.Lock()
	defer h.keep.mu.Unlock()
	n := 0
	for _, kept := range h.keep.byUser {
		for _, c := range kept {
			c.mu.Lock()
			if c.due() {
				n++
			}
			c.mu.Unlock()
		}
	}
	return n
}

// Waiting returns the number of polls waiting for news or for their pace.
func (h *Handler) Waiting() int64 { return h.waiting.Load() }
