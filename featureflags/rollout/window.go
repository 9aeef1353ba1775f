package rollout

import "time"

// maxSamples bounds a window's samples: one is kept at most every
// window/maxSamples, so memory per plan is about maxSamples × 1.7 KB.
const maxSamples = 60

// window holds the cohort totals a plan's guards compare, sampled at
// ticks. It belongs to one watch of the flag at one percent: a new watch
// or another percent starts it again, so a judgement never mixes cohorts.
// Owned by the Manager, under its opMu.
type window struct {
	fm      *flagMeter
	percent int
	start   time.Time // when this window began watching
	samples []sample  // oldest first; samples[0] is the base of the next judgement
}

type sample struct {
	at time.Time
	c  [2]cohort
}

// observe takes the totals at now and returns them with the base to
// compare them with: the newest sample at least span old, or the oldest
// one while the window is younger than span.
func (w *window) observe(now time.Time, span time.Duration) (base, cur *[2]cohort) {
	s := sample{at: now, c: w.fm.cohorts(w.percent)}
	if len(w.samples) == 0 {
		w.samples = append(w.samples, s)
	}
	cut := now.Add(-span)
	drop := 0
	for drop+1 < len(w.samples) && !w.samples[drop+1].at.After(cut) {
		drop++
	}
	w.samples = w.samples[drop:]
	if last := w.samples[len(w.samples)-1]; now.Sub(last.at) >= span/maxSamples {
		w.samples = append(w.samples, s)
	}
	return &w.samples[0].c, &s.c
}

// full reports whether the window has watched at least span by now.
func (w *window) full(now time.Time, span time.Duration) bool {
	return now.Sub(w.start) >= span
}
