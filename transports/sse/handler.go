package sse

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/httpx"
)

// Name is the transport's name in negotiate offers.
const Name = "sse"

// Config configures a Handler. The zero value is valid apart from Hub and Auth.
type Config struct {
	Hub          *core.Hub
	Auth         *httpx.Authenticator
	Retry        time.Duration // the retry: hint; 2s
	WriteTimeout time.Duration // for a batch to reach the client, else 4008; 10s
	// Offered, if set, says whether this transport is offered to a user
	// now (the degradation level and flags); when it is not, the request
	// gets 503 overloaded and the client negotiates again.
	Offered func(user string) bool
	// Compress, if set, says whether to compress a user's stream now. A
	// stream is gzipped when the client accepts gzip and Compress says
	// yes as it opens; while Compress says no, the batches of a gzipped
	// stream go uncompressed inside it. nil: never compress.
	Compress func(user string) bool
	Logger   *slog.Logger
}

// Handler serves GET /v1/sse.
type Handler struct {
	cfg   Config // Static after construction.
	retry string // cfg.Retry in milliseconds, as the retry: field says it. Static.
}

// New returns a Handler. It panics if cfg has no Hub or Auth.
func New(cfg Config) *Handler {
	if cfg.Hub == nil || cfg.Auth == nil {
		panic("sse: New without a Hub or Auth")
	}
	if cfg.Retry <= 0 {
		cfg.Retry = 2 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Handler{cfg: cfg, retry: strconv.FormatInt(cfg.Retry.Milliseconds(), 10)}
}

// ServeHTTP serves one event stream. It refuses with an error envelope and
// its HTTP status what it cannot serve (credentials, an offer, the
// subscription, the hub's limits); otherwise it answers 200 and the
// session's writer writes the events. The stream ends when the client
// goes away (the session closes normally) or when the session ends (its
// disconnect event is the last one).
//
// An HTTP/1 stream takes its connection over: ServeHTTP joins the rooms
// and returns, and a goroutine of the stream's reads the connection to
// learn when the client goes. Otherwise (HTTP/2) ServeHTTP joins the
// rooms, then waits for the session's end.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, err := h.cfg.Auth.IdentifyStream(r)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	if h.cfg.Offered != nil && !h.cfg.Offered(id.User) {
		httpx.WriteError(w, httpx.TransportOff(Name))
		return
	}
	rooms, cur, fresh, err := httpx.ParseUserSubscription(r, id, h.cfg.Hub.Config().MaxRoomsPerSession)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	fence, here := httpx.Arrived(r, h.cfg.Hub)
	if !here {
		// A stream its client stopped before it was read: joining its
		// rooms now could undo what the client did since (a leave posted
		// after it stopped the stream, see poll's open).
		w.WriteHeader(httpx.StatusClientGone)
		return
	}
	c := newConn(h, id.User, cur, rooms)
	sess, err := h.cfg.Hub.Connect(id, c, core.SessionOptions{Heartbeat: true, Greet: true, Batched: httpx.Batched(r), Fence: fence})
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	gz := h.cfg.Compress != nil && acceptsGzip(r) && h.cfg.Compress(id.User)
	wr := openWire(w, r, gz, h.cfg.Compress != nil)
	c.start(wr, gz)
	if raw, ok := wr.(rawWire); ok {
		go c.watch(raw.nc, sess)
		joinAll(sess, rooms, cur, fresh)
		return
	}
	stop := context.AfterFunc(r.Context(), func() {
		c.gone.Store(true)
		sess.Close(core.DisconnectNormal)
	})
	defer stop()
	joinAll(sess, rooms, cur, fresh)
	<-sess.Done()
}

// joinAll joins the rooms. A room resumed from the cursor (Last-Event-ID
// or cursor=) is joined quietly: a joined envelope comes only if the
// resume is not exact. A room that is new, or given by since=, opens with
// a joined envelope. A failed join ends the stream with a disconnect
// event that says why (core.Session.EndJoinFailed). It returns early if
// the session closes.
func joinAll(sess *core.Session, rooms []string, cur protocol.Cursor, fresh map[string]bool) {
	ctx := sess.Context()
	for _, room := range rooms {
		var since *uint64
		pos, ok := cur[room]
		if ok {
			since = &pos
		}
		if err := sess.Join(ctx, room, since, ok && !fresh[room]); err != nil {
			sess.EndJoinFailed(err)
			return
		}
	}
}
