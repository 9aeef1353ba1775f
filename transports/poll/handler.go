package poll

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/httpx"
)

// Name is the transport's name in negotiate offers.
const Name = "poll"

// Config configures a Handler. The zero value is valid apart from Hub and Auth.
type Config struct {
	Hub       *core.Hub
	Auth      *httpx.Authenticator
	Hold      time.Duration // longest wait for news; 25s
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
	// the memory; its answer closes the connection. A client idle for
	// Park thus pays one new connection for its next poll, and a busy
	// one never does. 2s; negative: never park.
	Park time.Duration
	// Short, if set and true, makes the poll answer at once
	// (degradation level 3).
	Short func() bool
	// Control, if set, gives the control envelope every answer carries in
	// its "control" field, so that poll clients learn of level changes.
	Control func(user string) (protocol.Envelope, bool)
	// Compress, if set, says whether to gzip a user's answers now. An
	// answer is gzipped when Compress says yes, the request accepts gzip
	// and the answer is at least CompressMin bytes. nil: never compress.
	Compress func(user string) bool
	// CompressMin is the smallest answer worth gzipping: below it the
	// gzip framing and headers eat the gain. 1 KiB.
	CompressMin int
	Logger      *slog.Logger
}

// Handler serves GET /v1/poll. It keeps no state between requests.
type Handler struct {
	cfg Config // Static after construction.
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
		cfg.Linger = 20 * time.Millisecond
	case cfg.Linger < 0:
		cfg.Linger = 0
	}
	switch {
	case cfg.Park == 0:
		cfg.Park = 2 * time.Second
	case cfg.Park < 0:
		cfg.Park = 0
	}
	if cfg.CompressMin <= 0 {
		cfg.CompressMin = 1 << 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Handler{cfg: cfg}
}

// ServeHTTP serves one poll. It refuses with an error envelope and its
// HTTP status what it cannot serve (credentials, the subscription, the
// hub's limits). Otherwise it opens a session for this request only,
// joins the rooms from the cursor, and answers 200 with what the joins
// queued; a poll that resumes from a cursor with nothing to say waits
// until news arrives (plus the rest of Linger), Hold passes, the session
// ends or the client goes away. It waits in the request's goroutine for
// up to Park; then it parks the poll (see Config.Park) and returns at
// once, and the session answers when the poll ends. Otherwise the
// session closes when ServeHTTP returns.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, err := h.cfg.Auth.IdentifyStream(r)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	rooms, cur, fresh, err := subscription(r, id, h.cfg.Hub.Config().MaxRoomsPerSession)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	opened := time.Now()
	c := newConn(h.cfg.MaxEvents)
	sess, err := h.cfg.Hub.Connect(id, c, core.SessionOptions{PresenceTTL: 2 * h.cfg.Interval, Client: httpx.ClientKey(r)})
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	parked := false
	defer func() {
		if !parked {
			sess.Close(core.DisconnectNormal)
		}
	}()
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Hold)
	defer cancel()
	if err := joinAll(ctx, sess, rooms, cur, fresh); refused(err) && !c.full() {
		h.refuse(w, sess, err)
		return
	}
	var frames []core.Frame
	if cur == nil || len(fresh) > 0 || (h.cfg.Short != nil && h.cfg.Short()) || h.behind(id.User, r) || c.pending() {
		// Answer at once with everything the joins queued.
		_ = sess.Flush(ctx)
		frames = c.seal()
	} else {
		news, park := wait(ctx, sess, c, h.cfg.Park)
		if park {
			switch h.park(w, r, sess, c, cur, rooms, h.cfg.Hold-time.Since(opened)) {
			case parkedOff:
				parked = true
				return
			case answered:
				return
			}
			news, _ = wait(ctx, sess, c, 0)
		}
		frames = h.linger(ctx, sess, c, news, opened)
	}
	defer c.release()
	next := httpx.Advance(cur, rooms, frames)
	h.writeAnswer(w, r, id.User, frames, next.Encode())
}

// wait waits, without flushing, for the first news, the end of ctx or the
// session, or park (0: no parking). A held poll with nothing to say thus
// starts no writer and holds no buffer. It reports whether news came, and
// whether it is time to park.
func wait(ctx context.Context, sess *core.Session, c *conn, park time.Duration) (news, parkNow bool) {
	var parkC <-chan time.Time
	if park > 0 {
		t := time.NewTimer(park)
		defer t.Stop()
		parkC = t.C
	}
	select {
	case <-c.notify:
		return true, false
	case <-parkC:
		return false, true
	case <-ctx.Done():
	case <-sess.Context().Done():
	}
	return false, false
}

// linger seals the answer of a held poll. With news, a poll that opened
// less than Linger ago waits for the rest of it and flushes, so that
// everything queued by then goes into this answer; otherwise it answers
// with the batch the writer handed over, and whatever else is queued
// comes with the next poll.
func (h *Handler) linger(ctx context.Context, sess *core.Session, c *conn, news bool, opened time.Time) []core.Frame {
	if rest := h.cfg.Linger - time.Since(opened); news && rest > 0 {
		t := time.NewTimer(rest)
		select {
		case <-t.C:
		case <-ctx.Done():
		case <-sess.Context().Done():
		}
		t.Stop()
		_ = sess.Flush(ctx)
	}
	return c.seal()
}

// behind reports whether the client said which level it knows (level=)
// and the level has moved since: then the poll answers at once, with the
// new control. It reads the level after the session is registered, so a
// level change is either seen here or reaches the session as a control
// event.
func (h *Handler) behind(user string, r *http.Request) bool {
	if h.cfg.Control == nil {
		return false
	}
	known := queryValue(r.URL.RawQuery, "level")
	if known == "" {
		return false
	}
	e, ok := h.cfg.Control(user)
	return ok && e.Level != nil && known != strconv.Itoa(*e.Level)
}

// queryValue returns the first value of key in a raw query, unescaped,
// without parsing the rest of it (a poll's query holds a long cursor).
func queryValue(raw, key string) string {
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(kv, "=")
		if k != key {
			continue
		}
		if u, err := url.QueryUnescape(v); err == nil {
			return u
		}
		return ""
	}
	return ""
}

// refused reports whether a join error refuses the poll. A join cut
// short by the hold, by the client going away or by the session closing
// (a full answer, a shutdown) is not refused: the poll answers with what
// the joins queued so far, and the cursor covers exactly that.
func refused(err error) bool {
	return err != nil && !errors.Is(err, context.DeadlineExceeded) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, core.ErrClosed)
}

// refuse answers err as an error envelope; an internal error's cause goes
// to the log.
func (h *Handler) refuse(w http.ResponseWriter, sess *core.Session, err error) {
	if code, _ := protocol.CodeOf(err); code == protocol.CodeInternal {
		h.cfg.Logger.Error("poll failed", "session", sess.ID(), "user", sess.User(), "err", err)
	}
	httpx.WriteError(w, err)
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
