package poll

import (
	"context"
	rtmetrics "runtime/metrics"
	"sync/atomic"
	"time"
)

// DefaultMaxPace is the pace's cap when none is configured (the default
// of chatd's --poll-max-pace).
const DefaultMaxPace = time.Second

// paceTick is how often a Pacer reads the scheduler.
const paceTick = 100 * time.Millisecond

// paceLate is how long a goroutine may wait to run before the pacer
// counts it late: past about a tenth of the waits in a tick, the node is
// behind.
const paceLate = 30 * time.Millisecond

// Pacer spaces the answers to each busy poll client while the node is
// behind (see Config.Pace). A poll client asks again as soon as it is
// answered, so on a node at its core the polls alone keep it there: it
// answers as fast as it can, every request it has read waits in the run
// queue behind thousands of others (a send's ack among them), and a
// stall of either side (a collection, a burst) piles up a backlog that
// the loop, with no room left, is slow to clear. Spacing each client's
// answers by a pace leaves the node room: the same messages go out in
// fewer, larger answers, and requests are served as they come.
//
// The pace follows the Go scheduler's latency: every tick (100 ms) it
// grows, by a quarter and at least 25 ms, up to the maximum, while more
// than a tenth of the goroutines that ran waited 30 ms or more to run;
// it shrinks by a tenth while fewer than one in fifty did, and is 0
// below 10 ms. A node that keeps up has a pace of 0 and answers at once.
type Pacer struct {
	max    time.Duration               // Static after construction.
	sample func() (late, total uint64) // Static after construction; called from Run's goroutine only.
	pace   atomic.Int64                // nanoseconds
	behind atomic.Bool                 // the last tick was late
}

// Behind reports whether, in the last tick, more than a tenth of the
// goroutines that ran waited 30 ms or more to run: the node is behind
// now, whatever the pace.
func (p *Pacer) Behind() bool { return p.behind.Load() }

// NewPacer returns a Pacer whose pace is at most max, reading the
// process's scheduling latencies (runtime/metrics).
func NewPacer(max time.Duration) *Pacer {
	return &Pacer{max: max, sample: schedLatencies()}
}

// Pace returns the least time between two answers to one client now.
func (p *Pacer) Pace() time.Duration { return time.Duration(p.pace.Load()) }

// Run adjusts the pace every tick until ctx ends.
func (p *Pacer) Run(ctx context.Context) {
	t := time.NewTicker(paceTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.step(p.sample())
		}
	}
}

// step adjusts the pace after a tick in which late of total goroutines
// that ran waited paceLate or more to.
func (p *Pacer) step(late, total uint64) {
	pace := p.Pace()
	p.behind.Store(total > 0 && late*10 > total)
	switch {
	case total > 0 && late*10 > total:
		pace = min(max(pace*5/4, pace+25*time.Millisecond), p.max)
	case late*50 < total || total == 0:
		if pace = pace * 9 / 10; pace < 10*time.Millisecond {
			pace = 0
		}
	}
	p.pace.Store(int64(pace))
}

// schedLatencies returns a reader of the scheduling latencies recorded
// since its last call: how many waited paceLate or more, of how many.
func schedLatencies() func() (late, total uint64) {
	s := []rtmetrics.Sample{{Name: "/sched/latencies:seconds"}}
	var prev []uint64
	read := func() (late, total uint64) {
		rtmetrics.Read(s)
		if s[0].Value.Kind() != rtmetrics.KindFloat64Histogram {
			return 0, 0
		}
		h := s[0].Value.Float64Histogram()
		if len(prev) != len(h.Counts) {
			prev = make([]uint64, len(h.Counts))
		}
		for i, c := range h.Counts {
			d := c - prev[i]
			prev[i] = c
			total += d
			if h.Buckets[i] >= paceLate.Seconds() { // the bucket's lower bound
				late += d
			}
		}
		return late, total
	}
	read() // from now on
	return read
}
