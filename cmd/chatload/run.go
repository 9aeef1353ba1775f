package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/client"
)

// counters are a run's running totals. Anyone adds; the monitor and the
// result read.
type counters struct {
	deliveries, sends, sendErrors, sendCancelled, backlog atomic.Uint64
	reads, readErrors, typing, typingErrors               atomic.Uint64
	receipts, typingEvents, presence, otherEvents         atomic.Uint64
	errorEvents, subscribed, refused                      atomic.Uint64
}

// window is one sample interval's deliveries and latencies; the monitor
// swaps in a fresh one every interval.
type window struct {
	lat        Histogram
	deliveries atomic.Uint64
	sends      atomic.Uint64
}

// run is one run of a workload with n users.
type run struct {
	cfg   Config       // Static after construction.
	n     int          // Static.
	rooms []string     // Static.
	users []*user      // Static; each user's fields say who owns them.
	auths []*authority // Static; one per node of cfg.servers(), for its users' dev logins.
	dial  *dialers     // Static.
	prog  *progress    // Static.
	start time.Time    // Static.

	lat Histogram // end-to-end latency of every delivery
	// lat split at the message's stored time (its ts): the send's way
	// in to the server's store, and from there to the delivery.
	latIn, latOut Histogram
	ack           Histogram // send to ack
	window        atomic.Pointer[window]
	cnt           counters
	phase         atomic.Pointer[string]

	stormDown atomic.Int64 // unixnano the server was killed or seen dead (Storm); 0 before

	userWG sync.WaitGroup // clients' Run, consumers, reads
	sendWG sync.WaitGroup // send loops and the sends in flight

	errMu  sync.Mutex
	errors map[string]uint64 // failures by kind; guarded by errMu
}

func newRun(cfg Config, n int, auths []*authority, d *dialers, p *progress) *run {
	r := &run{cfg: cfg, n: n, auths: auths, dial: d, prog: p, start: time.Now(), errors: map[string]uint64{}}
	r.window.Store(&window{})
	r.setPhase("setup")
	size := cfg.roomSize(n)
	for i := 0; i*size < n; i++ {
		r.rooms = append(r.rooms, fmt.Sprintf("%s-%d-%d", cfg.RoomPrefix, n, i+1))
	}
	cycle := tierCycle(cfg.Tiers)
	for i := range n {
		r.users = append(r.users, newUser(r, i, r.rooms[i/size], cycle[i%len(cycle)], i%len(auths)))
	}
	return r
}

func (r *run) setPhase(p string) { r.phase.Store(&p) }

// signs reports whether the tool signs its own tokens (--jwt-secret)
// rather than logging users in at a dev-mode server.
func (r *run) signs() bool { return r.auths[0].secret != nil }

// delivered records one message delivery, stored at ts (Unix
// milliseconds; 0: not known), and its latency.
func (r *run) delivered(now time.Time, text string, ts int64) {
	w := r.window.Load()
	r.cnt.deliveries.Add(1)
	w.deliveries.Add(1)
	if t, ok := sentAt(text); ok {
		d := now.Sub(t)
		r.lat.Record(d)
		w.lat.Record(d)
		if ts > 0 {
			stored := time.UnixMilli(ts)
			r.latIn.Record(stored.Sub(t))
			r.latOut.Record(now.Sub(stored))
		}
	}
}

// count adds an operation's outcome: ok, an error, or neither when the
// run was ending (ctx done).
func (r *run) count(ctx context.Context, err error, ok, failed *atomic.Uint64, what string) {
	switch {
	case err == nil:
		ok.Add(1)
	case ctx.Err() != nil:
		if what == "send" {
			r.cnt.sendCancelled.Add(1)
		}
	case errorKind(err) == string(protocol.CodeFeatureDisabled):
		// The server turned the feature off (a degradation level) before
		// the client heard of it: a refusal, not a failure.
		r.cnt.refused.Add(1)
		r.noteError(what + " refused (feature_disabled)")
	default:
		failed.Add(1)
		r.noteError(what + " " + errorKind(err))
	}
}

func (r *run) noteError(kind string) {
	r.errMu.Lock()
	r.errors[kind]++
	r.errMu.Unlock()
}

// errorKind names an error for the report: the server's code, a timeout,
// or a network failure.
func errorKind(err error) string {
	var se *client.ServerError
	switch {
	case errors.As(err, &se) && se.Code != "":
		return string(se.Code)
	case errors.As(err, &se):
		return fmt.Sprintf("http %d", se.Status)
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "network"
}

// prefetch gets every user's dev-mode token before the connect phase, so
// that connect times measure connecting only.
func (r *run) prefetch(ctx context.Context) error {
	if r.signs() {
		return nil
	}
	r.setPhase("login")
	var wg sync.WaitGroup
	var failed atomic.Value
	next := atomic.Int64{}
	for range min(64, r.n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(r.n) && ctx.Err() == nil; i = next.Add(1) - 1 {
				u := r.users[i]
				tok, err := r.auths[u.srv].token(ctx, u.id, false)
				if err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
				u.tokMu.Lock()
				u.tok = tok
				u.tokMu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return err
	}
	return ctx.Err()
}

// connect starts every client, ConnectParallel at a time, and waits until
// each is subscribed to its room or the connect phase times out. It
// returns the time from the first start to the last subscription.
func (r *run) connect(ctx, clientCtx context.Context) time.Duration {
	r.setPhase("connect")
	cctx, cancel := context.WithTimeout(ctx, r.cfg.ConnectTimeout)
	defer cancel()
	sem := make(chan struct{}, r.cfg.ConnectParallel)
	first := time.Now()
	tick := time.NewTicker(r.cfg.Sample)
	defer tick.Stop()
	launched := 0
launch:
	for _, u := range r.users {
		select {
		case sem <- struct{}{}:
		case <-cctx.Done():
			break launch
		}
		u.start(clientCtx, func() { <-sem })
		launched++
		select {
		case <-tick.C:
			r.prog.connecting(r, launched)
		default:
		}
	}
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for r.cnt.subscribed.Load() < uint64(launched) {
		select {
		case <-cctx.Done():
			return time.Since(first)
		case <-tick.C:
			r.prog.connecting(r, launched)
		case <-poll.C:
		}
	}
	var lastUp int64
	for _, u := range r.users {
		lastUp = max(lastUp, u.upAt.Load())
	}
	return time.Unix(0, lastUp).Sub(first)
}

// startSenders starts the send loops, their phases spread at random over
// one interval. They stop when ctx ends.
func (r *run) startSenders(ctx, sendCtx context.Context) int {
	s := r.cfg.senders(r.n)
	interval := r.cfg.interval(s)
	if s == 0 || interval <= 0 {
		return 0
	}
	// Senders are spread over the rooms: user i of every room first.
	order := make([]*user, 0, r.n)
	size := r.cfg.roomSize(r.n)
	for k := range size {
		for j := 0; j*size+k < r.n; j++ {
			order = append(order, r.users[j*size+k])
		}
	}
	for _, u := range order[:s] {
		r.sendWG.Add(1)
		go u.sendLoop(ctx, sendCtx, interval, time.Duration(rand.Int64N(int64(interval))))
	}
	return s
}

// hold runs the measured phase: senders (if any) for Duration.
func (r *run) hold(ctx, sendCtx context.Context) {
	r.setPhase("measure")
	mctx, cancel := context.WithTimeout(ctx, r.cfg.Duration)
	defer cancel()
	r.startSenders(mctx, sendCtx)
	<-mctx.Done()
	r.stopSenders()
}

// stopSenders waits for the send loops, which stop with their context,
// and the sends still in flight (each bounded by SendTimeout).
func (r *run) stopSenders() {
	r.setPhase("acks")
	r.sendWG.Wait()
}

// heads asks for each room's head: the last seq every subscriber must
// receive. On several nodes it asks through a live client of the room on
// each node, and all must agree (after the acks, every node reads the
// same shared history); disagreeing reads are retried once, then reported
// in split, and the highest is the head. A room whose head cannot be read
// is left out and reported in missing.
func (r *run) heads(ctx context.Context) (heads map[string]uint64, missing, split []string) {
	heads = map[string]uint64{}
	for _, room := range r.rooms {
		var readers []*user // one live client of the room per node
		seen := map[int]bool{}
		for _, u := range r.users {
			if u.room == room && u.c != nil && !u.ended.Load() && !seen[u.srv] {
				seen[u.srv] = true
				readers = append(readers, u)
			}
		}
		if len(readers) == 0 {
			continue
		}
		var got []uint64
		var err error
		for attempt := 0; attempt < 2; attempt++ {
			if got, err = roomHeads(ctx, room, readers); err != nil || slices.Min(got) == slices.Max(got) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		switch {
		case err != nil:
			missing = append(missing, fmt.Sprintf("%s: %v", room, err))
		default:
			heads[room] = slices.Max(got)
			if slices.Min(got) != slices.Max(got) {
				parts := make([]string, len(got))
				for k, h := range got {
					parts[k] = fmt.Sprintf("%d on %s", h, r.cfg.servers()[readers[k].srv])
				}
				split = append(split, fmt.Sprintf("%s: head %s", room, strings.Join(parts, ", ")))
			}
		}
	}
	return heads, missing, split
}

// roomHeads reads room's head through each reader, three attempts each.
func roomHeads(ctx context.Context, room string, readers []*user) ([]uint64, error) {
	out := make([]uint64, len(readers))
	for k, u := range readers {
		var err error
		for attempt := 0; attempt < 3; attempt++ {
			hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			var p client.HistoryPage
			p, err = u.c.History(hctx, room, 0, 1)
			cancel()
			if err == nil {
				out[k] = p.Head
				break
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// drain waits, up to Drain, until every live subscriber has received its
// room's head.
func (r *run) drain(ctx context.Context, heads map[string]uint64) time.Duration {
	r.setPhase("drain")
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, r.cfg.Drain)
	defer cancel()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		behind := 0
		for _, u := range r.users {
			if u.upAt.Load() != 0 && !u.ended.Load() && u.lastSeq.Load() < heads[u.room] {
				behind++
			}
		}
		if behind == 0 {
			return time.Since(start)
		}
		select {
		case <-dctx.Done():
			return time.Since(start)
		case <-poll.C:
		}
	}
}

// stop ends every client and waits for all the run's goroutines.
func (r *run) stop(stopClients context.CancelFunc) {
	r.setPhase("stop")
	stopClients()
	r.userWG.Wait()
	for _, u := range r.users {
		if u.slot != nil {
			u.slot.Stop()
		}
	}
	r.dial.closeIdle()
}

// Recovery is when the server's level returned to 0 after the load.
type Recovery struct {
	LoadEndS float64 `json:"load_end_s"` // when the drain ended, from the run's start
	BackAtS  float64 `json:"back_at_s"`  // when the level was first read as 0; -1: not within the wait
	Level    int     `json:"level"`      // the last level read (-1 unknown)
	WaitedS  float64 `json:"waited_s"`
}

// recover waits, up to Recover, clients connected and idle, until the
// server's level reads 0 (every node's, on several), reading it every
// 250 ms from /metrics.
func (r *run) recover(ctx context.Context, hc *http.Client) *Recovery {
	r.setPhase("recover")
	start := time.Now()
	rc := &Recovery{LoadEndS: start.Sub(r.start).Seconds(), BackAtS: -1, Level: -1}
	rctx, cancel := context.WithTimeout(ctx, r.cfg.Recover)
	defer cancel()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
wait:
	for {
		if rd := scrapeAll(rctx, hc, r.cfg.servers()); rd.up {
			rc.Level = rd.level
			if rd.level == 0 {
				rc.BackAtS = time.Since(r.start).Seconds()
				break
			}
		}
		select {
		case <-rctx.Done():
			break wait
		case <-t.C:
		}
	}
	rc.WaitedS = time.Since(start).Seconds()
	return rc
}
