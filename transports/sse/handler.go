package sse

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	r3 "github.com/r3labs/sse/v2"

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
	WriteTimeout time.Duration // per write to the client; 10s
	// Offered, if set, says whether this transport is offered to a user
	// now (the degradation level and flags); when it is not, the request
	// gets 503 overloaded and the client negotiates again.
	Offered func(user string) bool
	Logger  *slog.Logger
}

// Handler serves GET /v1/sse.
type Handler struct {
	cfg Config     // Static after construction.
	srv *r3.Server // Static after construction.

	mu    sync.Mutex
	conns map[string]*conn // by stream id; guarded by mu.
}

// New returns a Handler.
func New(cfg Config) *Handler {
	if cfg.Retry <= 0 {
		cfg.Retry = 2 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Handler{cfg: cfg, conns: make(map[string]*conn)}
	h.srv = r3.NewWithCallback(h.onSubscribe, nil)
	h.srv.AutoReplay = false // it would keep every event and rewrite our ids
	h.srv.AutoStream = true
	h.srv.BufferSize = 256
	h.srv.Headers = map[string]string{"X-Accel-Buffering": "no"}
	return h
}

// onSubscribe fires once the library is ready to carry a stream's events;
// publishing before that would be silently discarded.
func (h *Handler) onSubscribe(streamID string, _ *r3.Subscriber) {
	h.mu.Lock()
	c := h.conns[streamID]
	h.mu.Unlock()
	if c != nil {
		c.subscribedOnce.Do(func() { close(c.subscribed) })
	}
}

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
	rooms, cur, fresh, err := httpx.ParseSubscription(r, id, h.cfg.Hub.Config().MaxRoomsPerSession)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	c := newConn(h, cur, rooms, cancel)
	sess, err := h.cfg.Hub.Connect(id, c, core.SessionOptions{Heartbeat: true, Greet: true})
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	c.stream = strconv.FormatUint(sess.ID(), 10)
	h.mu.Lock()
	h.conns[c.stream] = c
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.conns, c.stream)
		h.mu.Unlock()
	}()

	go c.joinAll(sess, rooms, cur, fresh)
	r = r.Clone(ctx)
	q := r.URL.Query()
	q.Set("stream", c.stream)
	r.URL.RawQuery = q.Encode()
	r.Header.Del("Last-Event-ID") // ours is a cursor; the library wants an integer
	h.srv.ServeHTTP(&deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: h.cfg.WriteTimeout}, r)
	close(c.ended)
	sess.Close(core.DisconnectNormal)
	<-sess.Done()
}

// joinAll joins the rooms once the stream is live. A room resumed from the
// cursor (Last-Event-ID or cursor=) is joined quietly: a joined envelope
// comes only if the resume is not exact. A room that is new, or given by
// since=, opens with a joined envelope. A failed join ends the stream with
// an error event; the client sees why.
func (c *conn) joinAll(sess *core.Session, rooms []string, cur protocol.Cursor, fresh map[string]bool) {
	select {
	case <-c.subscribed:
	case <-sess.Context().Done():
		return
	}
	for _, room := range rooms {
		var since *uint64
		pos, ok := cur[room]
		if ok {
			since = &pos
		}
		if err := sess.Join(sess.Context(), room, since, ok && !fresh[room]); err != nil {
			sess.Close(core.Disconnect{Code: protocol.CloseBadRequest, Reason: "join failed: " + err.Error()})
			return
		}
	}
}

// deadlineWriter gives every write to the client a deadline, which the
// library does not. It keeps Flush for the library's streaming.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	return w.ResponseWriter.Write(p)
}

func (w *deadlineWriter) Flush() { _ = w.rc.Flush() }

func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
