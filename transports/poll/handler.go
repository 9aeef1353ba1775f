package poll

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/httpx"
)

// Name is the transport's name in negotiate offers.
const Name = "poll"

// Config configures a Handler. The zero value is valid apart from Hub and Auth.
type Config struct {
	Hub  *core.Hub
	Auth *httpx.Authenticator
	// Hold is the longest wait for news; 25s. Each held poll ends its
	// wait at a random point of Hold's last fifth (20-25 s by default),
	// so that clients that connected together (a restart's reconnects, a
	// load test) drift apart instead of re-polling together every Hold.
	Hold      time.Duration
	Interval  time.Duration // the short-poll interval clients are told; 5s
	MaxEvents int           // events per answer before it is cut; 500
	// Linger is the least time a held poll with news stays open, counted
	// from when it opened: news that finds it younger waits for the rest
	// of Linger, so that a busy room goes out in answers of Linger's worth
	// of messages instead of one poll per message (at 1000 messages a
	// second to 1000 pollers, 20ms cuts the CPU per delivery by a third
	// to a half), while news after a quiet spell goes out at once. A full
	// answer does not wait, nor does a poll that answers at once (no
	// cursor, since=, level 3, a level change). 20ms; negative: none.
	Linger time.Duration
	// Park is how long a held poll waits for news in its request's
	// goroutine. Past it the poll is parked: the handler takes the
	// connection over from net/http (HTTP/1 only) and returns, and the
	// poll waits out its hold as a session and a timer, at a fraction of
	// the memory. Its answer hands the connection to Lane, if set and the
	// request allows (httpx.Lane.Adoptable), and closes it otherwise: a
	// client idle for Park then pays one new connection for its next
	// poll, and a busy one never does. 250ms: a poll held longer is in a
	// room quieter than about four messages a second, where a new
	// connection per answer costs little (and none with a Lane: in a
	// broadcast to 5,000 poll clients that started quiet, the first
	// message's round of reconnections had set the p99 of the first
	// seconds), and while it waits in net/http it holds about 25 KB
	// (buffers, request, two goroutines) where a parked one holds under
	// 3. At 2 s, the re-polls of 9,800 idle clients kept up to a thousand
	// of them in net/http at once. Negative: never park.
	Park time.Duration
	// Quiet is how long a session must have gone without news for its
	// held poll to park. A poll whose session answered with news more
	// recently waits in net/http until Quiet has passed since: its next
	// news is likely near, and a parked answer costs more than a held
	// one (a hijack, a reader goroutine, and without a Lane a new
	// connection, which the client then opens again). Under load, when
	// news takes longer than Park to reach a busy room's polls, parking
	// had turned a large share of their answers into new connections.
	// 2s; negative: park after Park whatever came before.
	Quiet time.Duration
	// Keep is how long the session of an answered poll waits for the
	// client's next poll, which carries on with it if it resumes from the
	// answer's cursor (see keeper): no new session, no joins, no store
	// reads, and what came in between is answered at once. A session that
	// no poll takes ends after Keep, and the user's presence lease (twice
	// Interval) runs from then, so Keep is at most Interval. Not kept:
	// answers at level 3 (Short), whose clients wait Interval before
	// polling again, and answers to a client that has gone. Interval (at
	// most Interval); negative: none. It was 2s: on a node at its core a
	// busy room's next polls came later than that, and each found its
	// session gone and opened another with a catch-up, which cost the
	// node more and made the next polls later still (a tenth of the
	// answers to 5000 polling clients).
	Keep time.Duration
	// Pace, if set, is the least time between two answers to one client
	// now (a Pacer's Pace): a poll that carries on with a kept session
	// answers no sooner than Pace after the answer before, news or not,
	// so that while the node is behind each busy client costs one answer
	// per Pace, with everything that came meanwhile. It waits less if the
	// answer fills or the session ends, and never once the pace is 0.
	// nil: no pacing.
	Pace func() time.Duration
	// Short, if set and true, makes the poll answer at once
	// (degradation level 3).
	Short func() bool
	// ControlWire, if set, gives the control envelope every answer
	// carries in its "control" field, so that poll clients learn of level
	// changes: the user's envelope already encoded, and a tag naming its
	// content (equal tags, equal bytes; never 0), as
	// degrade.Policy.ControlWire gives them without building an offer.
	// An answer to a poll that names the tag of the control now
	// (control_tag=) leaves the control out.
	ControlWire func(user string) (data []byte, tag uint64)
	// Level, if set, is the level ControlWire's envelopes carry now. A
	// poll that says which level it knows (level=) and is behind it is
	// answered at once, with the new control. nil: polls are not checked.
	Level func() int
	// Compress, if set, says whether to gzip a user's answers now. An
	// answer is gzipped when Compress says yes, the request accepts gzip
	// and the answer is at least CompressMin bytes. nil: never compress.
	Compress func(user string) bool
	// CompressMin is the smallest answer worth gzipping: below it the
	// gzip framing and headers eat the gain. 384 bytes: an answer of one
	// chat message (about 250 bytes) gzips to about 210 and gains nothing
	// once Content-Encoding and Vary are added to its head (about 190
	// bytes); one of two (about 460) gains 1.37× on the wire, three
	// 1.72×, four 2.06×, eight 3.2×.
	CompressMin int
	// Lane, if set, takes over the connection of a poll whose session is
	// kept for the client's next poll, once its answer is written, and
	// that of a parked poll once its answer is (see Park): the client's
	// next polls on that connection cost the node less (see httpx.Lane).
	// nil: every poll goes through net/http.
	Lane *httpx.Lane
	// Running bounds the polls that do their work at once: the rest wait
	// for a slot, parked, and the goroutines that wait to run are not
	// thousands of polls. A poll client asks again as soon as it is
	// answered, so on a node behind its polls every request it has read
	// waits to run, and so did everything else that became ready among
	// them: a send waited behind a round of the polls for each of its
	// steps (its request, the commit, its answer), and sends' acks took
	// a median of 161-200 ms in a broadcast to 5,000 poll clients where
	// they take 17-20 ms with a bound. A poll gives its slot back while
	// it waits (for news, the pace, a new session's joins) and before
	// its answer goes to the connection. 0: one per CPU the process may
	// use: NumCPU, which follows the CPU affinity, at most GOMAXPROCS,
	// which follows a container's CPU limit (chatd raises GOMAXPROCS to
	// two on one CPU, see cmd/chatd, so a one-CPU container gets two
	// slots); negative: no bound.
	Running int
}

// DefaultLinger is Config.Linger when it is left zero.
const DefaultLinger = 20 * time.Millisecond

// DefaultPark is Config.Park when it is left zero.
const DefaultPark = 250 * time.Millisecond

// DefaultQuiet is Config.Quiet when it is left zero.
const DefaultQuiet = 2 * time.Second

// Handler serves GET /v1/poll. Which messages a client gets does not
// depend on state kept between requests: the sessions it keeps for the
// clients' next polls make those polls cheaper, and carry what arrived
// as it arrived, where a poll without one catches up from the store and
// gets a message edited or deleted meanwhile in its current state.
type Handler struct {
	cfg  Config        // Static after construction.
	keep *keeper       // Static after construction.
	gate chan struct{} // a slot for each poll that works now; nil: no bound. Static after construction.

	opened, resumed atomic.Uint64 // polls that opened a session, and that carried on with a kept one
	byQuery         atomic.Uint64 // of the resumed, those found by their query's strings (keeper.takeQuery)
	byNote          atomic.Uint64 // of the resumed, those their connection's note expected (repeat)
	parks           atomic.Uint64 // polls parked
	overflows       atomic.Uint64 // parked polls whose clients sent more than maxPending meanwhile
	waiting         atomic.Int64  // polls waiting for news or for their pace
	// deflated answers (deflate=): those that started a stream, and those
	// that went on with one
	deflatedNew, deflatedOn atomic.Uint64
}

// New returns a Handler. It panics if cfg has no Hub or Auth.
func New(cfg Config) *Handler {
	if cfg.Hub == nil || cfg.Auth == nil {
		panic("poll: New without a Hub or Auth")
	}
	if cfg.Hold <= 0 {
		cfg.Hold = 25 * time.Second
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = 500
	}
	switch {
	case cfg.Linger == 0:
		cfg.Linger = DefaultLinger
	case cfg.Linger < 0:
		cfg.Linger = 0
	}
	switch {
	case cfg.Park == 0:
		cfg.Park = DefaultPark
	case cfg.Park < 0:
		cfg.Park = 0
	}
	switch {
	case cfg.Quiet == 0:
		cfg.Quiet = DefaultQuiet
	case cfg.Quiet < 0:
		cfg.Quiet = 0
	}
	switch {
	case cfg.Keep == 0:
		cfg.Keep = cfg.Interval
	case cfg.Keep < 0:
		cfg.Keep = 0
	default:
		cfg.Keep = min(cfg.Keep, cfg.Interval)
	}
	if cfg.CompressMin <= 0 {
		cfg.CompressMin = 384
	}
	if cfg.Running == 0 {
		cfg.Running = max(1, min(runtime.NumCPU(), runtime.GOMAXPROCS(0)))
	}
	h := &Handler{cfg: cfg, keep: &keeper{keep: cfg.Keep}}
	if cfg.Running > 0 {
		h.gate = make(chan struct{}, cfg.Running)
	}
	return h
}

// ServeHTTP serves one poll. It refuses with an error envelope and its
// HTTP status what it cannot serve (credentials, the subscription, the
// hub's limits). Otherwise it carries on with the session kept from the
// client's last answer, if this poll resumes from that answer's cursor
// (see keeper), or opens a session and joins the rooms from the cursor;
// it answers 200 with what the session has queued. A poll that resumes
// from a cursor with nothing to say waits until news arrives (plus the
// rest of Linger), Hold passes, the session ends or the client goes
// away. It waits in the request's goroutine for up to Park; then it
// parks the poll (see Config.Park) and returns at once, and the session
// answers when the poll ends. Once answered, the session is kept for
// the client's next poll for up to Keep, or closed.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// A lane's request ends its context only with the request or the
	// lane's close, never when its client goes (the lane watches no
	// connection for that): there the wait for a slot watches nothing.
	note := httpx.LaneNote(r)
	sl := slot{gate: h.gate, lane: note != nil}
	if !sl.take(r.Context()) {
		w.WriteHeader(httpx.StatusClientGone) // gone while it waited for a slot
		return
	}
	defer sl.give()
	maxRooms := h.cfg.Hub.Config().MaxRoomsPerSession
	var (
		proof   httpx.Proof
		client  string
		rooms   []string
		cur     protocol.Cursor
		fresh   map[string]bool
		c       *conn
		resumed bool
		query   string
		err     error
	)
	// A client's next poll on a lane's connection is, most often, its
	// last one with the cursor of its answer: the connection's note
	// knows its session, its identity and what it says.
	n, byNote := h.repeat(r, note, maxRooms)
	if byNote {
		c, proof = n.c, n.proof
		client, rooms, cur, query, resumed = c.pos.client, c.pos.rooms, c.pos.cur, c.pos.query, true
		h.resumed.Add(1)
		h.byNote.Add(1)
	} else {
		if proof, err = h.cfg.Auth.ProveRepeated(r); err != nil {
			httpx.WriteError(w, err)
			return
		}
		client = httpx.ClientKey(r)
		// A client's next poll sends back the rooms and the cursor of
		// its last answer: the session kept for them knows what they
		// parse to.
		var cursor string
		var quick bool
		query, cursor, quick = httpx.ResumeQuery(r, maxRooms)
		if quick {
			if c = h.keep.takeQuery(proof.ID, client, query, cursor); c != nil {
				rooms, cur, query, resumed = c.pos.rooms, c.pos.cur, c.pos.query, true
				h.resumed.Add(1)
				h.byQuery.Add(1)
			}
		}
		if c == nil {
			if rooms, cur, fresh, err = httpx.ParseUserSubscription(r, proof.ID, maxRooms); err != nil {
				httpx.WriteError(w, err)
				return
			}
			query = strings.Clone(query) // kept with the session, without the request line
		}
	}
	id := proof.ID
	opened := time.Now()
	deadline := opened.Add(h.cfg.Hold)
	if c == nil {
		c, resumed, err = h.open(r, &sl, deadline, id, client, httpx.Batched(r), rooms, cur, fresh)
	}
	if errors.Is(err, errClientGone) {
		w.WriteHeader(httpx.StatusClientGone)
		return
	}
	if c == nil {
		httpx.WriteError(w, err)
		return
	}
	if refused(err) && !c.ended() {
		// An internal error's cause is logged by the hub beneath
		// httpx.Report (httpx.CauseLogger), as any REST answer's.
		httpx.WriteError(w, err)
		c.sess.Close(core.DisconnectNormal)
		return
	}
	// A session may be kept for the next poll when every room is joined
	// and this poll resumes from a cursor, as a client's polls do once
	// they run: the first poll of a client (since=, or none) is answered
	// at once, and its session, not yet in step, is not kept.
	keepable := err == nil && cur != nil && len(fresh) == 0
	short := h.cfg.Short != nil && h.cfg.Short()
	pos := position{id: id, client: client, rooms: rooms, cur: cur, query: query}
	if !resumed {
		// What the joins queued (the catch-up from the cursor) is handed
		// over before the poll decides whether it has news: otherwise a
		// catch-up still on its way to the writer made the poll hold, and
		// it answered with the part that arrived first. (open gave the
		// slot back for the joins.)
		_ = c.sess.Flush(r.Context())
	}
	sl.take(r.Context())
	var frames *[]core.Frame
	switch {
	case short || (!resumed && (cur == nil || len(fresh) > 0)) || h.behind(id.User, r) || (!resumed && c.pending()):
		// Answer at once with everything queued (a new session has
		// handed it over already).
		if resumed {
			sl.give()
			_ = c.sess.Flush(r.Context())
			frames = sealInTurn(r.Context(), &sl, c, proof.Until())
		} else {
			frames = c.seal()
		}
	case resumed && c.pending():
		// What came since the last answer, on a kept session: at once, as
		// a replay would be, or once the pace allows. The slot goes back
		// only for a wait: given back and taken again at once, it cost a
		// second turn behind every poll that came meanwhile.
		until := h.paced(c)
		if trust := proof.Until(); !trust.IsZero() && trust.Before(until) {
			until = trust // nothing gathered past the credential's expiry
		}
		if !until.IsZero() && time.Now().Before(until) {
			sl.give()
			h.waiting.Add(1)
			c.gather(r.Context(), until, deadline)
			h.waiting.Add(-1)
			frames = sealInTurn(r.Context(), &sl, c, proof.Until())
		} else {
			frames = c.seal()
		}
	default:
		sl.give()
		h.waiting.Add(1)
		parked := h.hold(w, r, c, pos, keepable, opened, proof.Until())
		h.waiting.Add(-1)
		if parked {
			return // the answer keeps or closes the session
		}
		// Sealed once the poll has its slot back, not when it stopped
		// holding (see sealInTurn).
		frames = sealInTurn(r.Context(), &sl, c, proof.Until())
	}
	defer releaseFrames(frames)
	next := httpx.AdvanceInto(c.spare, cur, rooms, framesOf(frames))
	zmode := deflateOf(r)
	advanced := zmode != deflateOff && moved(cur, next) // only a deflated stream asks
	c.spare = nil
	if byNote {
		// cur is the kept position's, which this answer's replaces: the
		// next answer's cursor goes into it rather than a new map (a
		// map an answer was 2% of the node under a broadcast to 5,000
		// poll clients). Set before the session is kept again, so that
		// the poll that takes it next finds it.
		c.spare = cur
	}
	enc := next.Encode()
	// Built before the session is kept, which hands its deflated stream
	// (c.z) to the next poll; kept before the answer goes out: the
	// client's next poll may come as soon as it has read it.
	a := h.answerFor(r, id.User, framesOf(frames), enc, zmode, &c.z, advanced)
	keep := keepable && !short && r.Context().Err() == nil &&
		h.keep.put(c, position{id: id, client: client, rooms: rooms, cur: next, query: query, cursor: enc})
	if note == nil { // not on a lane (httpx.LaneNote)
		sl.give() // net/http may write a large answer to the socket, which waits for the client
	}
	h.writeBuilt(w, a)
	sl.give() // a lane writes the answer once the handler returns
	c.sess.Delivered(framesOf(frames))
	if !keep {
		c.sess.Close(core.DisconnectNormal)
		return
	}
	if note != nil {
		h.leaveNote(r, note, n, byNote, c, proof, enc)
	}
	if h.cfg.Lane != nil {
		h.cfg.Lane.Take(w, r) // the client polls again soon, on this connection
	}
}

// pollNote is what a poll on a lane's connection leaves in its note
// (httpx.LaneNote) once its session is kept: the client's next poll on
// the connection, if it says next, carries on with c by proof without
// reading its query or its credential (repeat). On a node at its core
// under a broadcast to 5,000 poll clients, proving the credential,
// reading the query and finding the kept session were a fifth of the
// node's CPU.
type pollNote struct {
	c      *conn
	proof  httpx.Proof
	cursor string       // the answer's cursor, which c is kept at
	next   httpx.Repeat // the poll again, with cursor
}

// repeat reads and empties the note of r's connection (nil: not on a
// lane). It returns the note, for its next use, and whether r is the
// poll the note expects and its session is still kept at the note's
// cursor: then the note's conn is taken out of the keeper (keeper.
// takeConn), and the note's proof still holds and is r's. Anything else
// goes the way every poll goes (ServeHTTP).
func (h *Handler) repeat(r *http.Request, note *any, maxRooms int) (*pollNote, bool) {
	if note == nil {
		return nil, false
	}
	n, _ := (*note).(*pollNote)
	*note = nil
	if n == nil {
		return nil, false
	}
	c := n.c
	n.c = nil // not kept alive by the connection from now on
	if len(r.URL.RawQuery) > httpx.MaxStreamQuery(maxRooms+1) || !n.next.Matches(r) {
		return n, false
	}
	if _, ok := h.cfg.Auth.Reuse(r, n.proof); !ok {
		return n, false
	}
	if n.c = h.keep.takeConn(c, n.proof.ID, n.cursor); n.c == nil {
		return n, false
	}
	return n, true
}

// leaveNote leaves in note, r's connection's, what the client's next
// poll on it says if it carries on from this answer (cursor, with c kept
// there): n, the note r found, or a new one.
func (h *Handler) leaveNote(r *http.Request, note *any, n *pollNote, byNote bool, c *conn, proof httpx.Proof, cursor string) {
	var next httpx.Repeat
	var ok bool
	if byNote {
		next, ok = n.next.Next(cursor) // r was the note's request: the same but for the cursor
	} else {
		next, ok = httpx.ExpectRepeat(r, "cursor", cursor)
	}
	if !ok {
		return
	}
	if n == nil {
		n = new(pollNote)
	}
	*n = pollNote{c: c, proof: proof, cursor: cursor, next: next}
	*note = n
}

// Deflated returns how many answers went deflated (deflate=): those
// that started a stream, and those that went on with one.
func (h *Handler) Deflated() (started, wentOn uint64) {
	return h.deflatedNew.Load(), h.deflatedOn.Load()
}

// Opened returns how many polls opened a session of their own.
func (h *Handler) Opened() uint64 { return h.opened.Load() }

// Resumed returns how many polls carried on with a session kept from
// their client's last answer, by how the session was found: by the
// note on the poll's connection, by the poll's query as it is, and by
// what the query means once parsed.
func (h *Handler) Resumed() (byNote, byQuery, byPosition uint64) {
	resumed := h.resumed.Load()
	byNote, byQuery = h.byNote.Load(), h.byQuery.Load()
	return byNote, byQuery, resumed - min(resumed, byNote+byQuery)
}

// Parks returns how many polls h has parked (Config.Park): taken from
// net/http to wait for news without a goroutine.
func (h *Handler) Parks() uint64 { return h.parks.Load() }

// Overflows returns how many parked polls' clients sent more than a
// request's worth while parked: their connections are not kept for
// their next polls.
func (h *Handler) Overflows() uint64 { return h.overflows.Load() }

// slot is a poll's place among those that work at once (Config.Running):
// taken while it works, given back while it waits and before it writes
// its answer to the connection (which waits for a slow client).
type slot struct {
	gate chan struct{} // nil: no bound
	lane bool          // a lane's request: its context ends only with it (see take)
	in   bool
}

// take waits for a slot, unless the client goes away first (ctx): then
// it reports false and the poll goes on, if it does, without one.
func (s *slot) take(ctx context.Context) bool {
	// No yield after a wait: the poll that gave the slot made this one
	// the next to run, and that is as it should be. Sent to the back of
	// the run queue instead (runtime.Gosched), it waited there holding
	// the slot, and on a node behind its WebSocket writers as well, the
	// polls got one slot's turn a run queue (a chat of 12,000 users, a
	// tenth polling: p99 28-59 s against 2.8-3.7 s without a bound).
	if s.gate == nil || s.in {
		return true
	}
	if s.lane {
		// Its context ends only with the request or the lane's close:
		// the poll waits its turn either way, then finds its context
		// ended, at the cost of one channel where a select on two took
		// half as much again of the node as the rest of the slot's wait
		// (a broadcast to 5,000 poll clients: the slot was 6.7% of the
		// node, its select 5.2%), and made each request's done channel.
		s.gate <- struct{}{}
		s.in = true
		return true
	}
	select {
	case s.gate <- struct{}{}:
		s.in = true
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *slot) give() {
	if s.in {
		<-s.gate
		s.in = false
	}
}

// sealInTurn takes the slot back for a poll that gave it up to wait,
// then seals c's answer: the answer carries what came while the poll
// waited for its turn. Sealed before the wait, a held poll's answer
// went without that, and the client's next poll waited a turn of its
// own for it: on a node at its core under a broadcast to 5,000 poll
// clients a turn is 80-130 ms, and those messages made the run's p99.
// An answer whose turn comes after trust (when the poll's credential
// expires, a ticket's or a token's; zero: never) carries nothing: it
// answers with no events and its cursor where it was, what the session
// has stays there, and the client, refused on its next poll, catches up
// from that cursor with a new credential. So nothing stored after the
// expiry goes with a poll, whatever its wait for the slot, and the
// wait costs no timer.
func sealInTurn(ctx context.Context, sl *slot, c *conn, trust time.Time) *[]core.Frame {
	sl.take(ctx)
	if !trust.IsZero() && !time.Now().Before(trust) {
		return nil
	}
	return c.seal()
}

// errClientGone is open's answer to a poll whose client has gone.
var errClientGone = errors.New("poll: the client has gone")

// hold waits for the news of a poll that resumes from a cursor (pos),
// opened at opened, with nothing to say yet: until the first news (plus
// the rest of Linger), Hold passes, the session ends or the client goes
// away; then the poll answers with what its session has (ServeHTTP
// seals it). After Park, or once its session has had no news for Quiet
// if that is later, it parks the poll instead, unless parking cannot be
// done, and reports true: the parked poll answers by itself.
//
// It holds no longer than trust (zero: no bound), when the poll's
// credential stops being taken on trust: a poll a ticket opened does not
// carry news past the ticket's expiry.
func (h *Handler) hold(w http.ResponseWriter, r *http.Request, c *conn, pos position, keepable bool, opened, trust time.Time) (parked bool) {
	deadline := h.holdEnd(opened)
	if !trust.IsZero() && trust.Before(deadline) {
		deadline = trust
	}
	news := false
	if parkAt := c.parkAt(opened.Add(h.cfg.Park), h.cfg.Quiet); h.cfg.Park > 0 && parkAt.Before(deadline) {
		news = c.wait(r.Context(), parkAt)
		if !news && r.Context().Err() == nil && c.sess.Context().Err() == nil &&
			h.park(w, r, c, pos, keepable, time.Until(deadline)) {
			return true
		}
	}
	if !news {
		news = c.wait(r.Context(), deadline)
	}
	h.linger(r.Context(), c, news, opened, deadline)
	return false
}

// holdEnd is when a poll opened at opened stops waiting for news: Hold
// after it, less a random part of Hold's last fifth.
func (h *Handler) holdEnd(opened time.Time) time.Time {
	return opened.Add(h.cfg.Hold - rand.N(h.cfg.Hold/5+1))
}

// open returns the session for poll r by id: the one kept from the
// client's last answer if the poll resumes from its cursor (resumed),
// else a new one, joined to rooms from cur by deadline. It returns a nil
// conn with the error when the hub refuses the session, or with
// errClientGone when r's client has gone (httpx.ClientGone) and a new
// session would have joined its rooms for nobody; with a conn, err is
// the joins' error, if any (see refused).
//
// The check, with the join fence taken before it, keeps a poll that its
// client stopped from undoing what the client did next: a client
// leaving a room stops its poll, then posts the leave on another
// connection, and a node that reads the stopped poll after the leave
// would join the room again and list it in the user's rooms. A close
// seen by the check gets errClientGone; a leave served after the fence
// wins over the joins (httpx.ClientGone says where the check cannot see
// the close).
func (h *Handler) open(r *http.Request, sl *slot, deadline time.Time, id auth.Identity, client string, batched bool, rooms []string, cur protocol.Cursor, fresh map[string]bool) (c *conn, resumed bool, err error) {
	if cur != nil && len(fresh) == 0 {
		if c := h.keep.take(id, client, rooms, cur); c != nil {
			h.resumed.Add(1)
			return c, true, nil
		}
	}
	// A new session's joins read the store, a network away with Redis:
	// the slot goes back, and ServeHTTP takes it again once the joins'
	// catch-up is handed over.
	sl.give()
	fence, here := httpx.Arrived(r, h.cfg.Hub)
	if !here {
		return nil, false, errClientGone
	}
	ctx := r.Context()
	h.opened.Add(1)
	c = newConn(h)
	opts := core.SessionOptions{PresenceTTL: 2 * h.cfg.Interval, Client: client, Batched: batched, Fence: fence}
	sess, err := h.cfg.Hub.Connect(id, c, opts)
	if code, _ := protocol.CodeOf(err); code == protocol.CodeTooManyConnections && h.keep.evictUser(id.User) {
		// The user's kept sessions filled the cap: this poll comes first.
		sess, err = h.cfg.Hub.Connect(id, c, opts)
	}
	if err != nil {
		return nil, false, err
	}
	c.sess = sess
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	return c, false, joinAll(ctx, sess, rooms, cur, fresh)
}

// linger ends the wait of a held poll. With news, a poll that opened
// less than Linger ago waits for the rest of it, and one on a kept
// session until Config.Pace allows if that is later (within the hold),
// and flushes, so that everything queued by then goes into its answer;
// otherwise the answer has the batch the writer handed over, and
// whatever else is queued comes with the next poll.
func (h *Handler) linger(ctx context.Context, c *conn, news bool, opened, deadline time.Time) {
	if !news {
		return
	}
	until := opened.Add(h.cfg.Linger)
	if p := h.paced(c); p.After(until) {
		until = p
	}
	c.gather(ctx, until, deadline)
}

// paced is the earliest time c's session may answer again under
// Config.Pace: Pace after its last answer, if it was kept for this poll
// (the zero time otherwise, or with no pace).
func (h *Handler) paced(c *conn) time.Time {
	if h.cfg.Pace == nil || c.keptAt.IsZero() {
		return time.Time{}
	}
	if pace := h.cfg.Pace(); pace > 0 {
		return c.keptAt.Add(pace)
	}
	return time.Time{}
}

// behind reports whether the client said which level it knows (level=)
// and the level has moved since: then the poll answers at once, with the
// new control. It reads the level after the session is registered, so a
// level change is either seen here or reaches the session as a control
// event.
func (h *Handler) behind(user string, r *http.Request) bool {
	if h.cfg.Level == nil {
		return false
	}
	known := httpx.QueryValue(r.URL.RawQuery, "level")
	return known != "" && known != strconv.Itoa(h.cfg.Level())
}

// refused reports whether a join error refuses the poll. A join cut
// short by the hold, by the client going away or by the session closing
// (a full answer, a shutdown) is not refused: the poll answers with what
// the joins queued so far, and the cursor covers exactly that.
func refused(err error) bool {
	return err != nil && !errors.Is(err, context.DeadlineExceeded) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, core.ErrClosed)
}

// joinAll joins every room: from its cursor position quietly, from a
// since= position or live with a joined envelope.
func joinAll(ctx context.Context, sess *core.Session, rooms []string, cur protocol.Cursor, fresh map[string]bool) error {
	for _, room := range rooms {
		pos, ok := cur[room]
		var since *uint64
		if ok {
			since = &pos
		}
		if err := sess.Join(ctx, room, since, ok && !fresh[room]); err != nil {
			return err
		}
	}
	return nil
}
