package core

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// SessionOptions are per-connection knobs chosen by the transport. Its
// flags come first: packed together they keep a Session within 384
// bytes, an allocator size class (the next is 416).
type SessionOptions struct {
	// Heartbeat makes the writer send a ping envelope every
	// Config.Heartbeat. Streaming transports want it; poll does not.
	Heartbeat bool

	// Greet makes the session start with Config.Greeting's envelope.
	Greet bool

	// Batched says the client reads batched receipt and presence
	// envelopes (protocol.BatchParam). Without it the session gets each
	// read position and presence change in the plain form.
	Batched bool

	// Hold keeps the writer from starting until Release: frames queue,
	// and the first write takes them all. A transport that joins rooms
	// for the client as it opens (a WebSocket's rooms=) sends the
	// greeting and the joined replies in one write so. The hold also ends
	// when the session closes, when anything waits for room in the queue
	// (a long catch-up, a Flush), and when the queue reaches a quarter of
	// its bounds (live traffic while many rooms are joined), so it never
	// blocks the session and never makes it slow.
	Hold bool

	// PresenceTTL, when set, keeps the user online for this long after the
	// session ends: a poll client is online while a poll is open and for
	// PresenceTTL after its last one. Zero: online while open.
	//
	// It also marks the session as one request of a client that comes
	// back (a poll): the hub counts the client, not the request, in
	// chat_sessions, chat_connects_total and chat_disconnects_total, and
	// to the Observer. The client is connected while one of its polls is
	// open and for PresenceTTL (twice the poll interval) after the last.
	PresenceTTL time.Duration

	// Client names the client a PresenceTTL session belongs to, among the
	// user's clients: a key the client sends with every poll. Empty: all
	// of the user's polls count as one client.
	Client string

	// Fence, when set (Hub.JoinFence), was taken when the request that
	// opens the session arrived. The joins made for that request (Join
	// and JoinRequested) then leave out of the user's room list a room
	// the user left after it, as a join already running at the leave
	// would; join frames take their own fence as they begin. A transport
	// takes it before it checks that the request's client is still
	// there (httpx.Arrived does both, in that order): a client that stops a request and then
	// posts a leave on another connection has either closed before the
	// check, and the request joins nothing, or left after the fence.
	Fence JoinFence
}

// A JoinFence marks a point in the node's sequence of explicit leaves
// (Hub.JoinFence). The zero value is no fence: joins take their own.
type JoinFence struct {
	leaves uint64
	set    bool
}

// JoinFence returns a fence at the leaves the node has seen so far, for
// SessionOptions.Fence.
func (h *Hub) JoinFence() JoinFence { return JoinFence{leaves: h.listed.stamp(), set: true} }

// leaseUntil is when a lease taken now by this session ends; zero for
// sessions whose presence is their lifetime.
func (s *Session) leaseUntil() time.Time {
	if s.opts.PresenceTTL <= 0 {
		return time.Time{}
	}
	s.hub.startJanitor()
	return s.hub.cfg.Now().Add(s.opts.PresenceTTL)
}

// Session is one client connection, whatever its transport. It has one
// writer goroutine; everyone else enqueues into its bounded queue.
type Session struct {
	hub       *Hub                // Static after construction.
	id        uint64              // Static after construction.
	user      string              // Static after construction; refresh keeps it.
	transport Transport           // Static after construction.
	opts      SessionOptions      // Static after construction.
	delivery  prometheus.Observer // this transport's delivery histogram; static after construction.

	ctx    context.Context // cancelled by Close; bounds blocking work
	cancel context.CancelFunc
	space  chan struct{} // cap 1: the writer drained the queue
	wake   chan struct{} // cap 1: kicks a parked writer
	done   chan struct{} // closed when the writer has exited

	closeOnce sync.Once

	mu     sync.Mutex
	queued int32         // bytes in queue (Config.QueueBytes is at most 1 GiB); guarded by mu. Next to mu, in what was padding.
	ident  auth.Identity // Guarded by mu.
	queue  []Frame       // Guarded by mu.
	// When the batch's write delay began, in milliseconds since the
	// process started (wrapping), and how long it was to be; delayLen 0:
	// none. Delivered leaves it out of the latency the controller reads.
	// In 32 bits so that a Session stays in its size class. Guarded by mu.
	delayFrom, delayLen uint32
	closing             *Disconnect // Guarded by mu.
	rooms               []*room     // joined rooms, a few as a rule (a map was about 250 bytes a session); guarded by mu.
	expiry              *time.Timer // Guarded by mu.
	writing             bool        // a writer goroutine is running; guarded by mu.
	parked              bool        // the writer waits for a kick; guarded by mu.
	held                bool        // the writer may not start yet (SessionOptions.Hold); guarded by mu.
	holding             bool        // parked, with frames that wait for a frame that goes at once (Config.EventDelay); guarded by mu.
	pausing             bool        // the writer waits its write delay, which a quarter-full queue or a close ends; guarded by mu.
	delayed             bool        // the batch in the queue has had its write delay, or is having it; guarded by mu.
	waited              bool        // the batch in the queue has waited for a frame that goes at once (Config.EventDelay), or is waiting; guarded by mu.
	inline              bool        // transport is an InlineWriter; static after construction.
	timer               *time.Timer // the running writer's waits, made at its first; set and reset under mu; nil while no writer runs, and once it is closing.
	spare               []Frame     // a drained queue to reuse; owned by the writer.
}

func newSession(h *Hub, id uint64, ident auth.Identity, t Transport, opts SessionOptions) *Session {
	ctx, cancel := context.WithCancel(context.Background())
	_, inline := t.(InlineWriter)
	return &Session{
		hub: h, id: id, user: ident.User, transport: t, inline: inline, opts: opts,
		delivery: h.metrics.delivery.WithLabelValues(t.Name()),
		ctx:      ctx, cancel: cancel,
		space: make(chan struct{}, 1), wake: make(chan struct{}, 1), done: make(chan struct{}),
		ident: ident, held: opts.Hold,
	}
}

// Release ends SessionOptions.Hold: the writer starts if frames wait. It
// reports whether a writer has started, now or before (false: nothing was
// queued, so no write is coming until something is).
func (s *Session) Release() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = false
	if len(s.queue) > 0 {
		s.kick(false)
	}
	return s.writing
}

// start arms the token expiry, queues the greeting, starts the heartbeats
// and counts the session. Called by Connect with h.mu held.
func (s *Session) start() {
	s.mu.Lock()
	s.armExpiry(s.ident)
	s.mu.Unlock()
	if s.opts.Greet && s.hub.cfg.Greeting != nil {
		if data, ok := s.hub.cfg.Greeting(s.user); ok {
			s.offer(Frame{Type: protocol.TypeControl, Data: data})
		}
	}
	if s.opts.Heartbeat {
		s.hub.startHeartbeats()
	}
	s.hub.opened(s)
}

// User returns the session's user id.
func (s *Session) User() string { return s.user }

// TransportName returns the name of the session's transport.
func (s *Session) TransportName() string { return s.transport.Name() }

// Notify enqueues a server envelope, such as a control envelope. One that
// does not fit closes the session as slow: the client will reconnect and
// learn the news from negotiate.
func (s *Session) Notify(e protocol.Envelope) { s.reply(e) }

// ID returns the session's node-local id, for logs.
func (s *Session) ID() uint64 { return s.id }

// Identity returns the session's current identity.
func (s *Session) Identity() auth.Identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ident
}

// Done is closed once the session has closed its transport after its
// final frames.
func (s *Session) Done() <-chan struct{} { return s.done }

// Close ends the session with d: it leaves every room, unregisters, and
// lets the writer send the final frames and close the transport. It is
// safe to call from any goroutine, more than once; the first d wins.
func (s *Session) Close(d Disconnect) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = &d
		rooms := s.rooms
		s.rooms = nil
		if s.expiry != nil {
			s.expiry.Stop()
		}
		s.mu.Unlock()
		s.cancel()
		for _, r := range rooms {
			s.unsubscribe(r)
		}
		s.hub.forget(s)
		s.hub.closed(s, d)
		switch d { // by value: other closes share these codes (1011 for an internal error)
		case DisconnectSlow:
			s.hub.counters.slow.Add(1)
			s.hub.counters.fail(s.transport.Name())
		case DisconnectWriteErr:
			s.hub.counters.writeFailed.Add(1)
			s.hub.counters.fail(s.transport.Name())
		}
		s.mu.Lock()
		s.kick(false)
		s.mu.Unlock()
	})
}

func (s *Session) signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// armExpiry closes the session when id expires: with 4012 when its token
// does, with 4013 when the ticket that opened the stream does. Called with
// s.mu held.
func (s *Session) armExpiry(id auth.Identity) {
	if id.Expires.IsZero() {
		return
	}
	d := id.Expires.Sub(s.hub.cfg.Now())
	if s.expiry != nil {
		s.expiry.Stop()
	}
	why := DisconnectExpired
	if id.TicketBound {
		why = DisconnectTicketExpired
	}
	s.expiry = time.AfterFunc(d, func() { s.Close(why) })
}

// offer enqueues f without blocking. It reports false when the queue is
// full; the caller decides whether that is a drop or a slow consumer. A
// closing session accepts and discards, counting the drop.
func (s *Session) offer(f Frame) bool {
	return s.offerWithin(f, s.hub.cfg.QueueBytes)
}

// offerWithin is offer with a lower byte bound for the queue: a replay
// keeps at most ReplayWindow bytes queued. An empty queue takes any frame.
func (s *Session) offerWithin(f Frame, maxBytes int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing != nil {
		if f.flushed == nil {
			s.hub.drop(dropClosing)
		}
		return true
	}
	if s.inline && !s.writing && len(s.queue) == 0 && f.flushed == nil && !f.rides() && s.transport.(InlineWriter).WriteInline(f) {
		return true
	}
	if len(s.queue) >= s.hub.cfg.QueueFrames || (len(s.queue) > 0 && int(s.queued)+len(f.Data) > maxBytes) {
		return false
	}
	if s.queue == nil {
		s.queue = queueArray()
	}
	s.queue = append(s.queue, f)
	s.queued += int32(len(f.Data)) // under maxBytes (at most 1 GiB) before it, and a frame is far under 1 GiB
	s.kick(f.rides())
	return true
}

// queueArrays holds the queue arrays of writers that exited, for the
// next writer to start, of any session: an idle session keeps none (see
// writeLoop), and without them each writer that starts again grows two
// from nothing. In chat at 10,000 WebSocket users writers exit and start
// again thousands of times a second, and that growth was a sixth of the
// node's allocation. It is a bounded free list rather than a sync.Pool,
// which keeps whatever it is given through the next collection: after
// 10,000 sessions joined at once, an idle node held their 20,000 arrays,
// half a KiB a connection.
var queueArrays = make(chan []Frame, maxFreeQueues)

// Bounds on the free list: at most maxFreeQueues arrays (1,024: under
// half a megabyte at the new size, 7 MB at the most), each of at most
// maxPooledQueue frames (7 KB); larger arrays, grown by a replay or a
// burst, are left to the collector. A new array starts at newQueueCap
// frames, what a session's queue holds most of the time, and grows as
// append grows it.
const (
	maxFreeQueues  = 1024
	maxPooledQueue = 64
	newQueueCap    = 4
)

// queueArray returns an empty queue array, from the free list or new.
func queueArray() []Frame {
	select {
	case q := <-queueArrays:
		return q
	default:
		return make([]Frame, 0, newQueueCap)
	}
}

// recycleQueue gives q, whose frames are no longer needed, to the free
// list, unless it is too large or the list is full.
func recycleQueue(q []Frame) {
	if cap(q) == 0 || cap(q) > maxPooledQueue {
		return
	}
	q = q[:cap(q)]
	clear(q)
	select {
	case queueArrays <- q[:0]:
	default:
	}
}

// put enqueues f, waiting for room in the queue.
func (s *Session) put(ctx context.Context, f Frame) error {
	return s.waitUntil(ctx, func() bool { return s.offer(f) })
}

// putReplay enqueues a replayed frame, waiting until the queue holds less
// than ReplayWindow bytes: a long replay is paced by the client, and its
// memory is a window, not the backlog.
func (s *Session) putReplay(ctx context.Context, f Frame) error {
	return s.waitUntil(ctx, func() bool { return s.offerWithin(f, s.hub.cfg.ReplayWindow) })
}

// waitLow waits until the queue is at most half full.
func (s *Session) waitLow(ctx context.Context) error {
	return s.waitUntil(ctx, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.queue) <= s.hub.cfg.QueueFrames/2 && int(s.queued) <= s.hub.cfg.QueueBytes/2
	})
}

// waitUntil calls ok each time the writer drains the queue, until it
// returns true, ctx ends or the session closes.
func (s *Session) waitUntil(ctx context.Context, ok func() bool) error {
	for !ok() {
		s.Release() // a held writer would never make room
		select {
		case <-s.space:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.ctx.Done():
			return ErrClosed
		}
	}
	return nil
}

// reply enqueues a reply to the client. A reply that does not fit means
// the client is not reading: the session is closed as slow.
func (s *Session) reply(e protocol.Envelope) {
	if e.Type == protocol.TypeError {
		s.hub.errorReply(s.user, e.Code, viaSession)
	}
	if !s.offer(envelopeFrame(e)) {
		s.Close(DisconnectSlow)
	}
}

var pingFrame = Frame{Type: protocol.TypePing, Data: protocol.Encode(protocol.Envelope{Type: protocol.TypePing}), ephemeral: true}

// relieving reports whether the node relieves load (Config.Relieving).
// Its writers then batch hard and take no slot among the writers at work
// (Config.WritersRunning): too few wake to crowd the run queue, and the
// slot's second wake-up was a tenth of the node's core at level 1.
func (h *Hub) relieving() bool { return h.cfg.Relieving != nil && h.cfg.Relieving() }

// writeDelay is how long a writer that has frames waits before it takes
// them, so that more go in one write: a tenth of the recent delivery
// latency, at most Config.MaxWriteDelay, and none while that latency is
// under 10 ms. When the node is behind, write system calls are most of
// its CPU (on loopback each also pays for the receiving side's TCP), and
// a session that gets a room's messages and receipts one at a time makes
// one call for each; waiting lets one call carry several. The wait is a
// tenth of what frames already wait, so it cannot be what makes them
// late; and at level 0 it vanishes once the node has caught up.
//
// While the node relieves load (Config.Relieving), the wait is a quarter
// of the latency, between half of Config.RelievedWriteDelay and all of
// it, however low the latency: the node is behind by its breakers'
// readings (or an operator's word), and a chat member who gets ten
// messages a second then gets them in one or two writes rather than ten.
// (With the latency leaving the wait out, a node at level 1 that waited
// only while 10 ms behind went in and out of batching, and spent more of
// its core on the same load.) The floor was a fifth until
// 6 December: at half, level 1 costs the node about a twentieth of its
// core less in chat at 10,000 users, the margin with which it drains
// the backlog built before it stepped down (docs/PERFORMANCE-ROUNDS.md). A
// queue a quarter full, or a close, ends the wait (see kick).
//
// The latency read is how far behind the node is: it leaves out the
// waits this rule chose (see delivered), which would otherwise feed it.
func (h *Hub) writeDelay() time.Duration {
	limit := h.cfg.MaxWriteDelay
	if limit <= 0 {
		return 0
	}
	lat := h.counters.delivery.read(time.Now())
	if r := h.cfg.RelievedWriteDelay; r > 0 && h.relieving() {
		return min(max(lat/4, r/2), r)
	}
	if lat < 10*time.Millisecond {
		return 0
	}
	return min(lat/10, limit)
}

// kick starts the writer unless one is running; if it is parked, wakes
// it, or resets the timer it is parked on for the wait it would begin as
// soon as it woke (delayWriter, holdWriter). Called with s.mu held.
func (s *Session) kick(rides bool) {
	switch {
	case s.held && s.closing == nil && !s.filling():
		// Release starts it.
	case !s.writing:
		s.held = false // a queue filling up, or a close, does not wait for Release
		s.writing = true
		go s.writeLoop()
	case s.parked && (!(rides && s.holding) || s.filling()):
		// A holding writer takes riding frames when it wakes (see
		// writeLoop), unless they fill its queue meanwhile.
		switch {
		case rides && s.holdWriter():
			// Still parked, now holding.
		case !rides && s.delayWriter():
			s.parked = false
		default:
			s.parked = false
			s.signal(s.wake)
		}
	case s.pausing && (s.closing != nil || s.filling()):
		// The write delay is for batching, not for a queue that would
		// fill before it ends (at level 1 it may be a second) or a
		// session that is closing.
		s.pausing = false
		s.signal(s.wake)
	}
}

// delayWriter begins, for a parked writer, the write delay it would wait
// as soon as it woke: it resets the timer the writer is parked on, so
// that the writer wakes once, when the delay is over, rather than twice
// (for the kick, then for the delay). Under load that is one goroutine
// wake-up and one park fewer for every batch written. It reports whether
// it did. A riding frame's offer does not call it, since a lingering
// writer holds those (holdWriter) rather than delay them; Release and
// Flush may, for a queue of riding frames, which the writer would then
// delay too. Called with s.mu held.
func (s *Session) delayWriter() bool {
	if s.delayed || s.closing != nil || s.inline || s.timer == nil || s.filling() {
		return false
	}
	d := s.hub.writeDelay()
	if d <= 0 {
		return false
	}
	s.startDelay(d)
	s.timer.Reset(d)
	return true
}

// startDelay marks the batch in the queue as waiting its write delay d,
// from now: the writer pauses, and delivered later leaves what the
// delay lasted out of the latency the controller reads. Called with
// s.mu held.
func (s *Session) startDelay(d time.Duration) {
	s.pausing, s.delayed = true, true
	s.delayFrom, s.delayLen = nowMillis(), millis(d)
}

// holdWriter makes a lingering writer hold the riding frame just queued
// (typing, a receipt, presence), as it would as soon as it woke (see
// writeLoop): it resets the timer the writer is parked on to
// Config.EventDelay and marks it holding, so that the writer wakes only
// when the hold ends, or when a frame that goes at once (which may begin
// the write delay instead, see delayWriter), a close, a Release or a
// Flush, or a queue a quarter full, ends it first. In chat at 10k, riding
// frames woke 16,000 lingering writers a second, each only to park
// again. It reports whether it did. Called with s.mu held.
func (s *Session) holdWriter() bool {
	if s.waited || s.closing != nil || s.timer == nil || s.hub.cfg.EventDelay <= 0 || s.filling() || !allRide(s.queue) {
		return false
	}
	s.waited, s.holding = true, true
	s.timer.Reset(s.hub.cfg.EventDelay)
	return true
}

// filling reports whether the queue is a quarter full, by frames or
// bytes: a writer does not wait its write delay then. Called with s.mu
// held.
func (s *Session) filling() bool {
	return len(s.queue) >= s.hub.cfg.QueueFrames/4 || int(s.queued) >= s.hub.cfg.QueueBytes/4
}

// writeLoop is the session's single writer. It drains the queue without
// blocking, writes the batch once, and repeats; with the queue empty it
// parks for Config.WriterLinger, and exits if nothing came, or at once
// when what it wrote last was heartbeats only (see onlyPings).
func (s *Session) writeLoop() {
	lingered := false
	beat := false // the last batch was heartbeats only: the session is idle
	for {
		s.mu.Lock()
		s.parked, s.pausing = false, false // awake: a kick now has nothing to wake or begin
		closing := s.closing
		if !s.waited && closing == nil && s.hub.cfg.EventDelay > 0 && allRide(s.queue) {
			// Only typing, receipts or presence: wait for a frame that
			// must go at once to take them along (its kick wakes the
			// writer, or begins its write delay), or for
			// Config.EventDelay.
			s.waited, s.parked, s.holding = true, true, true
			timer := s.arm(s.hub.cfg.EventDelay)
			s.mu.Unlock()
			s.park(timer)
			continue
		}
		if len(s.queue) == 0 && closing == nil {
			if lingered || beat || s.inline {
				// An idle session keeps no queue arrays: they hold the
				// largest batch it has seen (112 bytes a frame, twice);
				// small ones go to a free list for the next writer to start.
				// An InlineWriter's writer exits at once: while it runs,
				// frames cannot go inline.
				s.writing, s.parked = false, false
				s.disarm()
				recycleQueue(s.queue)
				recycleQueue(s.spare)
				s.queue, s.spare = nil, nil
				s.mu.Unlock()
				return
			}
			s.parked, s.holding = true, false
			timer := s.arm(s.hub.cfg.WriterLinger)
			s.mu.Unlock()
			lingered = s.park(timer)
			continue
		}
		lingered = false
		if !s.delayed && closing == nil && !s.inline && !s.filling() { // an InlineWriter's Write makes no system call to save
			if d := s.hub.writeDelay(); d > 0 {
				s.startDelay(d)
				timer := s.arm(d)
				s.mu.Unlock()
				s.park(timer) // a stale kick may end a later wait early: harmless
				continue
			}
		}
		slot := false
		sw, _ := s.transport.(SlotWriter)
		if closing == nil && !s.inline && s.hub.slots != nil && !s.hub.relieving() && (sw == nil || sw.WantsSlot()) {
			// Wait, parked, for a place among the writers at work
			// (Config.WritersRunning), and take the queue once there: what
			// came meanwhile goes in the same write. While it waits the
			// writer is neither parked nor pausing: kicks only queue.
			s.mu.Unlock()
			slot = s.hub.slots.acquire(s.ctx.Done()) // not if the session closes meanwhile
			s.mu.Lock()
			closing = s.closing
		}
		s.delayed, s.waited = false, false
		delayFrom, delayLen := s.delayFrom, s.delayLen
		if delayLen > 0 {
			// A kick (a queue filling up, a close, a stale wake) may have
			// ended the delay early: only what it lasted was chosen.
			delayLen = min(delayLen, nowMillis()-delayFrom)
		}
		s.delayLen = 0
		// Swap in the spare array; the two alternate, so offerers never
		// append into the array being written.
		batch := s.queue
		if s.spare == nil && closing == nil {
			s.spare = queueArray() // a closing session queues nothing more
		}
		s.queue, s.queued, s.spare = s.spare[:0], 0, nil
		if closing != nil {
			s.disarm() // no writer runs again
		}
		s.mu.Unlock()
		s.signal(s.space)

		if closing != nil {
			if slot {
				s.hub.slots.Release()
			}
			s.finish(batch, *closing)
			close(s.done) // writing stays set: no writer ever starts again
			return
		}
		var barriers []chan struct{}
		batch, barriers = splitBarriers(batch)
		beat = len(barriers) == 0 && onlyPings(batch)
		if len(batch) > 0 {
			var err error
			if sw != nil && slot {
				err = sw.WriteInSlot(batch, s.hub.slots) // it gives the slot back
			} else {
				if slot {
					s.hub.slots.Release()
				}
				err = s.transport.Write(batch)
			}
			slot = false
			if err != nil {
				s.hub.cfg.Logger.Debug("write failed", "session", s.id, "err", err)
				switch {
				case errors.Is(err, ErrDone):
					s.Close(DisconnectDone)
				case errors.Is(err, ErrSlow):
					s.Close(DisconnectSlow)
				default:
					s.Close(DisconnectWriteErr)
				}
			} else if !s.inline {
				s.delivered(batch, delayFrom, delayLen) // an InlineWriter's client gets them later: its transport says when
			}
		}
		if slot { // a batch of barriers only
			s.hub.slots.Release()
		}
		for _, c := range barriers {
			close(c)
		}
		clear(batch)
		s.spare = batch
	}
}

// allRide reports whether q holds frames and every one may wait for a
// frame that goes at once (Frame.rides).
func allRide(q []Frame) bool {
	for i := range q {
		if !q[i].rides() {
			return false
		}
	}
	return len(q) > 0
}

// arm sets the writer's timer, made at its first wait, to fire after d,
// and returns it for park. It is set under s.mu so that a kick that
// begins the write delay (delayWriter) resets it after the writer has
// armed it, never before. Called with s.mu held.
func (s *Session) arm(d time.Duration) *time.Timer {
	if s.timer == nil {
		s.timer = time.NewTimer(d)
	} else {
		s.timer.Reset(d)
	}
	return s.timer
}

// disarm stops and drops the writer's timer as the writer exits: an idle
// session keeps none. Called with s.mu held.
func (s *Session) disarm() {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
}

// onlyPings reports whether batch holds heartbeats and nothing else: a
// writer that wrote only those serves an idle session and exits at once
// rather than linger, so that an idle node keeps no parked writers (one
// per session woken in the last Config.WriterLinger, a goroutine and a
// timer each) between heartbeats.
func onlyPings(batch []Frame) bool {
	for i := range batch {
		if batch[i].Type != protocol.TypePing {
			return false
		}
	}
	return len(batch) > 0
}

// park waits for a kick or for timer, armed, to fire; it reports
// whether the timer fired. A kick that came just before is still in
// s.wake. The timer may have been reset meanwhile, by a kick that began
// a hold or a write delay for the writer (the queue is not empty then).
func (s *Session) park(timer *time.Timer) bool {
	select {
	case <-s.wake:
		return false
	case <-timer.C:
		return true
	}
}

// Delivered records, for the live messages among frames, the time from
// fan-out to now, and tells the Observer. The writer calls it once the
// transport's Write has taken a batch; a transport that is an
// InlineWriter calls it itself once it has written frames to its client
// (a poll's answer), since taking them is not delivering them there.
func (s *Session) Delivered(frames []Frame) { s.delivered(frames, 0, 0) }

// delivered is Delivered for a batch that had a write delay of delayLen
// milliseconds from delayFrom (nowMillis; none if delayLen is 0). The
// histogram and the Observer get each frame's whole wait, what its client
// saw. The average the controller and the write delay read
// (Stats.DeliveryLatency) leaves out the part of the wait that was the
// delay: the node chose it, so it says nothing about how far behind the
// node is. Counted in, it fed itself: at level 1, where the delay is at
// least half of Config.RelievedWriteDelay, one writer's wait raised the
// average, which made more writers wait, and readings over the 250 ms
// that trips the breaker came often enough, under load however light,
// that a half-open breaker's five probe readings rarely all passed. A
// writer woken late after its delay (a node short of CPU) counts the
// lateness in; one woken early counts only what the delay lasted.
func (s *Session) delivered(frames []Frame, delayFrom, delayLen uint32) {
	var now time.Time
	var began, ended time.Duration // how long ago the delay began and ended
	obs := s.hub.cfg.Observer
	for i := range frames {
		if frames[i].published.IsZero() {
			continue
		}
		if now.IsZero() {
			now = time.Now()
			if delayLen > 0 {
				began = time.Duration(nowMillis()-delayFrom) * time.Millisecond // wraps as they do
				ended = max(began-time.Duration(delayLen)*time.Millisecond, 0)
			}
		}
		d := now.Sub(frames[i].published)
		s.delivery.Observe(d.Seconds())
		s.hub.counters.delivery.add(d - chosenWait(d, began, ended))
		if obs != nil {
			obs.Delivered(s.user, d)
		}
	}
}

// chosenWait is the part of a frame's wait that was a write delay: the
// frame waited its age, up to now; the delay began began ago and ended
// ended ago (began 0: there was none). A frame that came during the
// delay waited only its rest.
func chosenWait(age, began, ended time.Duration) time.Duration {
	if began <= 0 {
		return 0
	}
	return max(min(age, began)-ended, 0)
}

// epoch is when the process started, for nowMillis.
var epoch = time.Now()

// nowMillis is the time since the process started, in milliseconds,
// wrapping every 49 days: differences of recent times stay right.
func nowMillis() uint32 { return millis(time.Since(epoch)) }

// millis is d in whole milliseconds, wrapping (d under 49 days does not).
func millis(d time.Duration) uint32 { return uint32(d / time.Millisecond) }

// Flush waits until everything queued before it has been handed to the
// transport's Write. Poll uses it to answer with what a join queued.
func (s *Session) Flush(ctx context.Context) error {
	s.Release() // a held writer would never reach the barrier
	c := make(chan struct{})
	if err := s.put(ctx, Frame{flushed: c, ephemeral: true}); err != nil {
		return err
	}
	select {
	case <-c:
		return nil
	case <-s.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// splitBarriers removes Flush barriers from batch, in place.
func splitBarriers(batch []Frame) ([]Frame, []chan struct{}) {
	var barriers []chan struct{}
	out := batch[:0]
	for _, f := range batch {
		if f.flushed != nil {
			barriers = append(barriers, f.flushed)
			continue
		}
		out = append(out, f)
	}
	return out, barriers
}

// dropAll counts the frames of batch as dropped with reason.
func (s *Session) dropAll(batch []Frame, reason string) {
	for range batch {
		s.hub.drop(reason)
	}
}

// finish writes what is left (unless the client is too slow to take it),
// a disconnect envelope saying how to come back, and closes the transport.
func (s *Session) finish(batch []Frame, d Disconnect) {
	batch, _ = splitBarriers(batch) // their waiters see done close
	// By value, as in Close: an internal error's 1011 still says why.
	switch d {
	case DisconnectSlow:
		s.dropAll(batch, dropClosedSlow)
		batch = batch[:0]
	case DisconnectWriteErr:
		s.dropAll(batch, dropClosedWrite)
		batch = batch[:0]
	}
	if d != DisconnectWriteErr {
		batch = append(batch, envelopeFrame(protocol.Envelope{
			Type: protocol.TypeDisconnect, CloseCode: d.Code, Reason: d.Reason,
			ReconnectMS: int(d.Reconnect / time.Millisecond),
		}))
		_ = s.transport.Write(batch)
	}
	s.transport.Close(d)
}
