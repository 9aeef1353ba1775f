package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/client"
)

// tierNames index the tier counters; tierIndex maps a State's transport.
var tierNames = []string{client.WebSocket, client.SSE, client.Poll}

func tierIndex(t string) int32 {
	for i, n := range tierNames {
		if n == t {
			return int32(i)
		}
	}
	return -1
}

// user is one simulated page: a client in one room, a goroutine that
// reads its events (recording deliveries, latency and read receipts), and
// for senders a send loop. Its ledger proves exactly-once delivery.
type user struct {
	r    *run   // Static after construction.
	i    int    // Static after construction.
	id   string // the user id, u00001...; static
	room string // Static after construction.
	tier string // the tier it starts on; static
	srv  int    // its node: an index of cfg.servers(); static

	// Set by start before it starts the user's goroutines; static after.
	c        *client.Client
	ctx      context.Context // the clients' context: reads and sends run under it
	launched time.Time       // when Run started
	release  func()          // frees the connect slot; once
	slot     *time.Timer     // releases the slot after slotTimeout

	// Written by the consumer (and Run's goroutine), read by anyone.
	up       chan struct{} // closed at the first joined of its room
	upAt     atomic.Int64  // unixnano of the first joined; 0 before
	resubAt  atomic.Int64  // unixnano of the first joined after the storm's crash
	lastSeq  atomic.Uint64 // the ledger's last, for the drain wait
	tierNow  atomic.Int32  // index in tierNames while connected; -1 otherwise
	level    atomic.Int32  // the level its client last heard
	readsOn  atomic.Bool   // the server offers read receipts to this user
	typingOn atomic.Bool   // and typing
	ended    atomic.Bool   // Run returned
	inflight atomic.Int32  // sends awaiting their ack; the send loop bounds it

	tokMu   sync.Mutex
	tok     string // the cached dev-mode token; guarded by tokMu
	handed  bool   // tok was handed to the client; guarded by tokMu
	tokConn uint64 // the client's connects when tok was last handed out; guarded by tokMu

	// The ledger and read state: guarded by mu while the client runs
	// (its Deliver and the read timer take it), then read by the report
	// once the run's userWG is done.
	mu        sync.Mutex
	closed    bool // the consumer has returned: a read timer that fires now does nothing
	joined    bool
	joinHead  uint64 // the head of its first joined: delivery starts after it
	last      uint64 // the highest seq delivered
	received  uint64
	gapLost   uint64      // seqs skipped over
	dupSeen   uint64      // seqs delivered again (the client should make this 0)
	reset     bool        // a resume beyond retained history (recovered:false)
	readSeq   uint64      // a read waiting for its turn; 0 when none
	lastRead  time.Time   // when the last read went out
	readTimer *time.Timer // sends the pending read when it is due (readDue)
	readArmed bool        // readTimer is running
	readBusy  atomic.Bool // a read is in flight (its goroutine clears it)

	runErr error // Run's result; written by Run's goroutine before userWG is done
}

func newUser(r *run, i int, room, tier string, srv int) *user {
	u := &user{r: r, i: i, id: fmt.Sprintf("u%05d", i+1), room: room, tier: tier, srv: srv, up: make(chan struct{})}
	u.tierNow.Store(-1)
	u.readsOn.Store(true)
	u.typingOn.Store(true)
	return u
}

// token is the client's Token function. Signed tokens are made fresh. A
// dev-mode token (prefetched before the connect phase) is reused while
// each use is followed by a connect, and fetched again when the last one
// handed out was not: the client asks again right after a refusal, and a
// restarted dev-mode server has a new secret.
func (u *user) token(ctx context.Context) (string, error) {
	a := u.r.auths[u.srv]
	if a.secret != nil {
		return a.token(ctx, u.id, false)
	}
	u.tokMu.Lock()
	defer u.tokMu.Unlock()
	connects := u.c.Stats().Connects
	if u.tok != "" && (!u.handed || connects > u.tokConn) {
		u.handed, u.tokConn = true, connects
		return u.tok, nil
	}
	tok, err := a.token(ctx, u.id, false)
	if err != nil {
		return "", err
	}
	u.tok, u.handed, u.tokConn = tok, true, connects
	return tok, nil
}

// start creates the client and runs it, with the consumer, until ctx
// ends. release frees the connect slot; it is called once, at the first
// joined, when Run ends, or after a connect timeout.
func (u *user) start(ctx context.Context, release func()) {
	r := u.r
	hc, wd := r.dial.pick(u.i)
	u.c = client.New(client.Config{
		URL: r.cfg.servers()[u.srv], Token: u.token, Rooms: []string{u.room},
		Transports: r.cfg.transports(u.tier), HTTPClient: hc, WSDialer: wd,
		BackoffBase: r.cfg.BackoffBase, BackoffMax: r.cfg.BackoffMax, EventBuffer: 1,
		CountReads:   true, // the tool counts read positions; a page's map of them is its cost, not the server's
		CountChanges: true, // and presence changes: it reads only how many
		Deliver:      u.deliver,
		PollDeflate:  r.cfg.Compress, // as the page asks where the browser can inflate (DecompressionStream)
	})
	u.ctx = ctx
	u.release = sync.OnceFunc(release)
	u.slot = time.AfterFunc(slotTimeout, u.release)
	u.launched = time.Now()
	r.userWG.Add(2)
	go func() {
		defer r.userWG.Done()
		u.runErr = u.c.Run(ctx)
		u.ended.Store(true)
		u.release()
	}()
	go func() {
		defer r.userWG.Done()
		u.consume()
	}()
}

// slotTimeout is how long a client may hold a connect slot without
// connecting; it keeps trying, but lets others start.
const slotTimeout = 20 * time.Second

// consume follows the client's states until Run ends (its Events
// channel, which Deliver leaves empty, closes then). It is counted in
// the run's userWG, and so are the reads it or Deliver starts; a read
// timer that fires after it returned sends nothing.
func (u *user) consume() {
	defer func() {
		u.mu.Lock()
		u.closed = true
		if u.readTimer != nil {
			u.readTimer.Stop()
		}
		u.mu.Unlock()
	}()
	events, states := u.c.Events(), u.c.States()
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case s := <-states:
			u.onState(s)
		}
	}
}

// deliver is the client's Deliver: it records a batch of envelopes,
// which arrived together.
func (u *user) deliver(batch []protocol.Envelope) {
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	for i := range batch {
		u.onEvent(now, &batch[i])
	}
}

// onEvent records one envelope. The caller holds mu.
func (u *user) onEvent(now time.Time, e *protocol.Envelope) {
	r := u.r
	switch e.Type {
	case protocol.TypeMessage:
		r.delivered(now, e.Text, e.TS)
		if e.Room == u.room {
			u.onMessage(now, e.Seq)
		}
	case protocol.TypeJoined:
		if e.Room == u.room {
			u.onJoined(now, e)
		}
	case protocol.TypeReceipt:
		n := 1 // the plain form: one reader
		if e.Count != nil {
			n = *e.Count // a batched receipt, counted (Config.CountReads)
		}
		r.cnt.receipts.Add(uint64(n))
	case protocol.TypeTyping:
		r.cnt.typingEvents.Add(1)
	case protocol.TypePresence:
		r.cnt.presence.Add(uint64(max(1, len(e.Changes)))) // a batched one carries several
	case protocol.TypeError:
		r.cnt.errorEvents.Add(1)
		r.noteError("event " + e.Code)
	default:
		r.cnt.otherEvents.Add(1)
	}
}

// onJoined starts the ledger at the first joined, and notes resumes.
func (u *user) onJoined(now time.Time, e *protocol.Envelope) {
	var head uint64
	if e.Head != nil {
		head = *e.Head
	}
	if !u.joined {
		u.joined, u.joinHead, u.last = true, head, head
		u.lastSeq.Store(head)
		u.markUp(now)
		return
	}
	if e.Recovered != nil && !*e.Recovered {
		u.reset = true // history no longer reaches our position
	}
	if down := u.r.stormDown.Load(); down != 0 && now.UnixNano() > down {
		u.resubAt.CompareAndSwap(0, now.UnixNano())
	}
}

// onMessage checks a message of the user's room against the ledger.
func (u *user) onMessage(now time.Time, seq uint64) {
	if !u.joined { // a message before joined: the join point is just before it
		u.joined, u.joinHead, u.last = true, seq-1, seq-1
		u.markUp(now)
	}
	switch {
	case seq == u.last+1:
	case seq > u.last+1:
		u.gapLost += seq - u.last - 1
	default:
		u.dupSeen++
	}
	if seq > u.last {
		u.last = seq
		u.lastSeq.Store(seq)
	}
	u.received++
	if u.r.cfg.ReadEvery > 0 && u.readsOn.Load() {
		u.wantRead(now, seq)
	}
}

// markUp records the first subscription.
func (u *user) markUp(now time.Time) {
	u.upAt.Store(now.UnixNano())
	close(u.up)
	u.r.cnt.subscribed.Add(1)
	if u.slot != nil {
		u.slot.Stop()
		u.release()
	}
}

// onState follows the client's tier, level and features.
func (u *user) onState(s client.State) {
	idx := int32(-1)
	if s.Connected {
		idx = tierIndex(s.Transport)
	}
	u.tierNow.Store(idx)
	u.level.Store(int32(s.Level))
	u.readsOn.Store(featureOn(s.Features, "read_receipts"))
	u.typingOn.Store(featureOn(s.Features, "typing"))
}

// featureOn reads a feature from an offer; an offer that says nothing
// about features offers them all.
func featureOn(f map[string]bool, name string) bool {
	if f == nil {
		return true
	}
	on, ok := f[name]
	return on || !ok
}

// wantRead marks seq read, as a page does when a message shows: at once
// if the room's last read is ReadEvery old, else when it will be.
func (u *user) wantRead(now time.Time, seq uint64) {
	u.readSeq = seq
	if u.readArmed {
		return
	}
	wait := u.r.cfg.ReadEvery - now.Sub(u.lastRead)
	if wait <= 0 && !u.readBusy.Load() {
		u.flushRead()
		return
	}
	u.armRead(max(wait, 50*time.Millisecond))
}

func (u *user) armRead(d time.Duration) {
	if u.readTimer == nil {
		u.readTimer = time.AfterFunc(d, u.readDue)
	} else {
		u.readTimer.Reset(d)
	}
	u.readArmed = true
}

// readDue sends the pending read when its time has come, unless the
// consumer has returned.
func (u *user) readDue() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed || !u.readArmed {
		return
	}
	u.readArmed = false
	u.flushRead()
}

// flushRead sends the pending read on its own goroutine, one at a time.
// The caller holds mu, and the consumer has not returned.
func (u *user) flushRead() {
	seq := u.readSeq
	if seq == 0 {
		return
	}
	if u.readBusy.Load() {
		u.armRead(u.r.cfg.ReadEvery)
		return
	}
	u.readSeq, u.lastRead = 0, time.Now()
	u.readBusy.Store(true)
	r := u.r
	r.userWG.Add(1) // the consumer is counted, so the group is not done
	go func() {
		defer r.userWG.Done()
		defer u.readBusy.Store(false)
		ctx, cancel := context.WithTimeout(u.ctx, r.cfg.SendTimeout)
		defer cancel()
		err := u.c.ReadNoAck(ctx, u.room, seq) // as the page sends it: no ref over WebSocket
		r.count(u.ctx, err, &r.cnt.reads, &r.cnt.readErrors, "read")
	}()
}
