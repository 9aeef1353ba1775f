package poll

import (
	"sync"
	"time"
)

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

// Occupy takes one of h's slots (Config.Running), as a poll at work
// does, until free is first called.
func (h *Handler) Occupy() (free func()) {
	h.gate <- struct{}{}
	return sync.OnceFunc(func() { <-h.gate })
}
