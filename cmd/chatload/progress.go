package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// plainEvery spaces the progress lines when stderr is not a terminal.
const plainEvery = 5 * time.Second

// progress shows how a run is going on one line: refreshed in place on a
// terminal, printed every plainEvery otherwise. A nil *progress or writer
// shows nothing.
type progress struct {
	w   io.Writer // Static after construction.
	tty bool      // Static after construction.

	mu     sync.Mutex
	last   time.Time // when the last plain line went out; guarded by mu
	onLine bool      // a tty line is showing; guarded by mu
}

func newProgress(w io.Writer, tty bool) *progress { return &progress{w: w, tty: tty} }

// show replaces the line.
func (p *progress) show(line string) {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
		p.onLine = true
		return
	}
	if now := time.Now(); now.Sub(p.last) >= plainEvery {
		p.last = now
		fmt.Fprintln(p.w, line)
	}
}

// say prints a line that stays, ending the refreshing line first.
func (p *progress) say(format string, args ...any) {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.onLine {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.onLine = false
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

// connecting shows the connect phase.
func (p *progress) connecting(r *run, launched int) {
	p.show(fmt.Sprintf("[%s %du] %5.1fs connect: started %d, subscribed %d/%d", r.cfg.Workload, r.n,
		time.Since(r.start).Seconds(), launched, r.cnt.subscribed.Load(), r.n))
}

// sample shows one timeline sample.
func (p *progress) sample(r *run, s Sample) {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s %du] %5.1fs %-7s", r.cfg.Workload, r.n, s.T, *r.phase.Load())
	fmt.Fprintf(&b, " ws %d sse %d poll %d", s.Tiers["websocket"], s.Tiers["sse"], s.Tiers["poll"])
	fmt.Fprintf(&b, " | sent %d deliv %s/s p50 %.0fms p99 %.0fms", r.cnt.sends.Load(), si(s.DeliveriesPerSec), s.P50MS, s.P99MS)
	fmt.Fprintf(&b, " | err %d", s.Errors)
	if s.Level >= 0 {
		fmt.Fprintf(&b, " | lvl %d", s.Level)
	}
	if s.ServerRSS > 0 {
		fmt.Fprintf(&b, " | srv %s", bytesIEC(s.ServerRSS))
	}
	fmt.Fprintf(&b, " | me %s", bytesIEC(s.LoadRSS))
	p.show(b.String())
}

// si formats a rate with a k or M suffix.
func si(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// bytesIEC formats a byte count in MiB or GiB.
func bytesIEC(b uint64) string {
	if b >= 1<<30 {
		return fmt.Sprintf("%.2fGiB", float64(b)/(1<<30))
	}
	return fmt.Sprintf("%.0fMiB", float64(b)/(1<<20))
}
