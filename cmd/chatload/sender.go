package main

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// maxInFlight bounds one sender's sends awaiting their ack. A sender is
// open loop (it sends on its schedule whatever the latency), so a slow
// server piles up sends; past this many, a tick is skipped and counted as
// backlog instead, which keeps the tool's goroutines bounded.
const maxInFlight = 4

// sendLoop sends one message every interval, starting after phase, until
// ctx ends. Each send runs on its own goroutine under sendCtx, so that the
// sends in flight when ctx ends still get their ack.
func (u *user) sendLoop(ctx, sendCtx context.Context, interval, phase time.Duration) {
	r := u.r
	defer r.sendWG.Done()
	next := time.Now().Add(phase)
	t := time.NewTimer(phase)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if u.inflight.Load() < maxInFlight {
			u.inflight.Add(1)
			r.sendWG.Add(1) // this loop is counted, so the group is not done
			go func(n int) {
				defer r.sendWG.Done()
				defer u.inflight.Add(-1)
				u.sendOne(sendCtx, n)
			}(n)
		} else {
			r.cnt.backlog.Add(1)
		}
		next = next.Add(interval)
		t.Reset(time.Until(next))
	}
}

// sendOne sends message n, after a typing signal for a share of them as
// a page does, and records the ack latency.
func (u *user) sendOne(ctx context.Context, n int) {
	r := u.r
	if share := r.cfg.TypingShare; share > 0 && u.typingOn.Load() && rand.Float64() < share {
		tctx, cancel := context.WithTimeout(ctx, r.cfg.SendTimeout)
		err := u.c.Typing(tctx, u.room)
		cancel()
		r.count(ctx, err, &r.cnt.typing, &r.cnt.typingErrors, "typing")
	}
	sent := time.Now()
	sctx, cancel := context.WithTimeout(ctx, r.cfg.SendTimeout)
	defer cancel()
	_, err := u.c.Send(sctx, u.room, messageText(sent, u.id, n, r.cfg.MsgSize))
	if err == nil {
		r.ack.Record(time.Since(sent))
		r.window.Load().sends.Add(1)
	}
	r.count(ctx, err, &r.cnt.sends, &r.cnt.sendErrors, "send")
}

// messageText is "t=<unix nanoseconds> <user> #<n> " padded with dots to
// size bytes: the receiver reads the send time back for the latency.
func messageText(sent time.Time, user string, n, size int) string {
	var b strings.Builder
	b.Grow(max(size, 48))
	b.WriteString("t=")
	b.WriteString(strconv.FormatInt(sent.UnixNano(), 10))
	b.WriteByte(' ')
	b.WriteString(user)
	b.WriteString(" #")
	b.WriteString(strconv.Itoa(n))
	b.WriteByte(' ')
	for b.Len() < size {
		b.WriteByte('.')
	}
	return b.String()
}

// sentAt reads the send time back from a message's text.
func sentAt(text string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(text, "t=")
	if !ok {
		return time.Time{}, false
	}
	if i := strings.IndexByte(rest, ' '); i >= 0 {
		rest = rest[:i]
	}
	ns, err := strconv.ParseInt(rest, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}
