package ws

import (
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/httpx"
)

// Name is the transport's name in negotiate offers.
const Name = "websocket"

// Handler serves GET /v1/ws.
type Handler struct {
	hub          *core.Hub            // Static after construction.
	auth         *httpx.Authenticator // Static after construction.
	upgrader     websocket.Upgrader   // Static after construction.
	readLimit    int64                // Static after construction.
	writeTimeout time.Duration        // Static after construction.
	offered      func(user string) bool
	log          *slog.Logger
}

// Config configures a Handler. The zero value is valid apart from Hub and Auth.
type Config struct {
	Hub          *core.Hub
	Auth         *httpx.Authenticator
	Origins      *httpx.Origins // nil: same-origin only
	ReadLimit    int64          // bytes per client frame; 64 KiB
	WriteTimeout time.Duration  // per batch written; 10s
	// Offered, if set, says whether this transport is offered to a user
	// now (the degradation level and flags); when it is not, the request
	// gets 503 overloaded and the client negotiates again.
	Offered func(user string) bool
	Logger  *slog.Logger
}

// New returns a Handler.
func New(cfg Config) *Handler {
	if cfg.ReadLimit <= 0 {
		cfg.ReadLimit = httpx.MaxBody
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.Origins == nil {
		cfg.Origins = httpx.NewOrigins("")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Handler{
		hub: cfg.Hub, auth: cfg.Auth, readLimit: cfg.ReadLimit, writeTimeout: cfg.WriteTimeout,
		offered: cfg.Offered, log: cfg.Logger,
		upgrader: websocket.Upgrader{
			ReadBufferSize:  1024,
			WriteBufferSize: 4096,
			WriteBufferPool: &sync.Pool{},
			CheckOrigin:     cfg.Origins.Allowed,
			Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
				code := protocol.CodeBadRequest
				if status == http.StatusForbidden {
					code = protocol.CodeForbidden
				}
				httpx.WriteError(w, &protocol.Error{Code: code, Message: "websocket upgrade failed: " + reason.Error()})
			},
		},
	}
}

// ServeHTTP authenticates, opens a session, upgrades, starts the reader and
// returns. The session's writer and the reader own the connection from then on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, err := h.auth.IdentifyStream(r)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	if h.offered != nil && !h.offered(id.User) {
		httpx.WriteError(w, httpx.TransportOff(Name))
		return
	}
	c := &conn{ready: make(chan struct{}), writeTimeout: h.writeTimeout}
	sess, err := h.hub.Connect(id, c, core.SessionOptions{Heartbeat: true, Greet: true})
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	ws, err := h.upgrader.Upgrade(w, r, nil)
	c.ws = ws
	close(c.ready)
	if err != nil {
		sess.Close(core.DisconnectNormal)
		return
	}
	ws.SetReadLimit(h.readLimit)
	go h.readLoop(sess, ws)
}

// readLoop reads client frames until the connection fails or the session
// closes. Every frame, pong included, pushes the read deadline out by three
// heartbeats.
func (h *Handler) readLoop(sess *core.Session, ws *websocket.Conn) {
	silence := 3 * h.hub.Config().Heartbeat
	extend := func() { _ = ws.SetReadDeadline(time.Now().Add(silence)) }
	extend()
	ws.SetPongHandler(func(string) error { extend(); return nil })
	ctx := sess.Context()
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			sess.Close(readDisconnect(err))
			return
		}
		extend()
		sess.HandleFrame(ctx, data)
	}
}

// readDisconnect classifies a read error.
func readDisconnect(err error) core.Disconnect {
	var ne interface{ Timeout() bool }
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		return core.DisconnectTooLarge
	case errors.As(err, &ne) && ne.Timeout():
		return core.DisconnectHeartbeat
	default:
		return core.DisconnectNormal
	}
}
