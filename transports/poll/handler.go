package poll

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
const Name = "poll"

// Config configures a Handler. The zero value is valid apart from Hub and Auth.
type Config struct {
	Hub       *core.Hub
	Auth      *httpx.Authenticator
	Hold      time.Duration // longest wait for news; 25s
	Interval  time.Duration // the short-poll interval clients are told; 5s
	MaxEvents int           // events per answer before it is cut; 500
	// Short, if set and true, makes the poll answer at once
	// (degradation level 3).
	Short func() bool
	// Control, if set, gives the control envelope every answer carries in
	// its "control" field, so that poll clients learn of level changes.
	Control func(user string) (protocol.Envelope, bool)
	Logger  *slog.Logger
}

// Handler serves GET /v1/poll.
type Handler struct {
	cfg Config // Static after construction.
}

// New returns a Handler.
func New(cfg Config) *Handler {
	if cfg.Hold <= 0 {
		cfg.Hold = 25 * time.Second
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = 500
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Handler{cfg: cfg}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, err := h.cfg.Auth.IdentifyStream(r)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	rooms, cur, fresh, err := httpx.ParseSubscription(r, id, h.cfg.Hub.Config().MaxRoomsPerSession)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	c := newConn(h.cfg.MaxEvents)
	sess, err := h.cfg.Hub.Connect(id, c, core.SessionOptions{PresenceTTL: 2 * h.cfg.Interval})
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	defer sess.Close(core.DisconnectNormal)
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Hold)
	defer cancel()
	if err := joinAll(ctx, sess, rooms, cur, fresh); err != nil && !c.full() {
		httpx.WriteError(w, err)
		return
	}
	var control []byte
	behind := false
	if h.cfg.Control != nil {
		if e, ok := h.cfg.Control(id.User); ok {
			control = protocol.Encode(e)
			// A client that says which level it knows (level=) and is
			// behind gets its answer, and the new control, at once. This is
			// read after the session is registered, so a level change is
			// either seen here or reaches the session as a control event.
			if known := r.URL.Query().Get("level"); known != "" && e.Level != nil && known != strconv.Itoa(*e.Level) {
				behind = true
			}
		}
	}
	short := cur == nil || behind || len(fresh) > 0 || (h.cfg.Short != nil && h.cfg.Short())
	// Everything the joins queued (the replay) goes into this answer.
	_ = sess.Flush(ctx)
	if !short && !c.pending() {
		select {
		case <-c.notify:
		case <-ctx.Done():
		case <-sess.Context().Done():
		}
	}
	frames := c.seal()
	next := httpx.Advance(cur, rooms, frames)
	writeAnswer(w, frames, next.Encode(), control)
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

// writeAnswer writes {"events":[…],"cursor":"…","control":{…}} from the
// encoded frames.
func writeAnswer(w http.ResponseWriter, frames []core.Frame, cursor string, control []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	size := 48 + len(cursor) + len(control)
	for _, f := range frames {
		size += len(f.Data) + 1
	}
	buf := make([]byte, 0, size)
	buf = append(buf, `{"events":[`...)
	for i, f := range frames {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, f.Data...)
	}
	buf = append(buf, `],"cursor":"`...)
	buf = append(buf, cursor...) // base64url: nothing to escape
	buf = append(buf, '"')
	if control != nil {
		buf = append(buf, `,"control":`...)
		buf = append(buf, control...)
	}
	buf = append(buf, '}')
	_, _ = w.Write(buf)
}
