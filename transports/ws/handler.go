package ws

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/httpx"
)

// Name is the transport's name in negotiate offers.
const Name = "websocket"

// HeartbeatParam is the query parameter of /v1/ws that chooses the
// heartbeat's form; HeartbeatApp is its one value. A client that cannot
// see WebSocket control frames (a browser script) opens
// /v1/ws?heartbeat=app and gets {"type":"ping"} envelopes, which it
// answers with anything; every other client gets ping control frames,
// which its WebSocket library answers with a pong by itself.
const (
	HeartbeatParam = "heartbeat"
	HeartbeatApp   = "app"
)

// Read and write buffer sizes. Client frames are small (joins, pongs,
// sends limited to 10 a second) and the read buffer is held by every idle
// connection, so it is small: 256 bytes hold any control frame, and the
// rest of a larger frame is read straight into its message buffer. Write
// buffers are pooled, so an idle connection holds none: a connection holds
// one only while it writes. A deflating connection's is larger, so that a
// batch deflates into it whole (see streamDeflateMax).
const (
	readBufferSize         = 256
	writeBufferSize        = 4 << 10
	deflateWriteBufferSize = 16 << 10
)

// Handler serves GET /v1/ws.
type Handler struct {
	hub          *core.Hub              // Static after construction.
	auth         *httpx.Authenticator   // Static after construction.
	plain        websocket.Upgrader     // never negotiates compression; static after construction
	deflating    websocket.Upgrader     // plain, plus permessage-deflate; static after construction
	readLimit    int64                  // Static after construction.
	writeTimeout time.Duration          // Static after construction.
	offered      func(user string) bool // Static after construction.
	compress     func(user string) bool // Static after construction.
	log          *slog.Logger           // Static after construction.
	takeovers    prometheus.Counter     // connections that negotiated deflate with context takeover; static after construction
	alone        prometheus.Counter     // connections that negotiated deflate a message at a time; static after construction
	workers      *workers               // handle the readers' frames; static after construction
	readRate     rate.Limit             // bytes a second a connection may send past readBurst; static after construction
	readBurst    int                    // Static after construction.
	throttled    prometheus.Counter     // frames a reader waited to take; static after construction
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
	// Compress, if set, says whether a user's connection may use
	// permessage-deflate. It is asked at the upgrade, where it decides
	// whether the extension is negotiated with a client that offers it,
	// and again before each batch written on a connection that negotiated
	// it, so turning it off takes effect on live connections too. nil: off.
	Compress func(user string) bool
	Logger   *slog.Logger
	// ReadRate bounds the bytes a second a connection may send once it
	// has sent ReadBurst: past it, its reader waits before it takes the
	// next frame, and TCP holds the client back. A message is 64 KiB at
	// most and a user's sends are rate-limited, so a page never comes
	// near; a client sending the largest frames it may (pings, say) as
	// fast as it can took a core of the node. 0: DefaultReadRate;
	// negative: no bound.
	ReadRate float64
	// ReadBurst is what a connection may send before ReadRate applies,
	// and its bucket's size after. 0: DefaultReadBurst.
	ReadBurst int
	// Metrics, if set, registers chat_ws_deflate_connections_total and
	// chat_ws_reads_throttled_total.
	Metrics prometheus.Registerer
}

// DefaultReadRate and DefaultReadBurst are Config.ReadRate and ReadBurst
// when left 0.
const (
	DefaultReadRate  = 1 << 20
	DefaultReadBurst = 2 << 20
)

// New returns a Handler. It panics if cfg.Hub or cfg.Auth is nil.
func New(cfg Config) *Handler {
	if cfg.Hub == nil || cfg.Auth == nil {
		panic("ws: New needs a Hub and an Authenticator")
	}
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
	if cfg.ReadRate == 0 {
		cfg.ReadRate = DefaultReadRate
	}
	if cfg.ReadBurst <= 0 {
		cfg.ReadBurst = DefaultReadBurst
	}
	if cfg.ReadBurst < int(cfg.ReadLimit)+1 {
		cfg.ReadBurst = int(cfg.ReadLimit) + 1 // a whole frame fits the bucket
	}
	h := &Handler{
		hub: cfg.Hub, auth: cfg.Auth, readLimit: cfg.ReadLimit, writeTimeout: cfg.WriteTimeout,
		offered: cfg.Offered, compress: cfg.Compress, log: cfg.Logger, workers: newWorkers(),
		readRate: rate.Limit(cfg.ReadRate), readBurst: cfg.ReadBurst,
		throttled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_ws_reads_throttled_total",
			Help: "Client frames a WebSocket reader waited to take, its connection past its read rate (ws.Config.ReadRate).",
		}),
	}
	if cfg.ReadRate < 0 {
		h.readRate = rate.Inf
	}
	h.plain, h.deflating = upgraders(cfg.Origins.Allowed)
	deflated := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chat_ws_deflate_connections_total",
		Help: "WebSocket connections that negotiated permessage-deflate, by context: takeover (each message deflated against the ones before) or message (each on its own).",
	}, []string{"context"})
	h.takeovers, h.alone = deflated.WithLabelValues("takeover"), deflated.WithLabelValues("message")
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(deflated, h.throttled)
	}
	return h
}

// upgraders returns the two upgraders of a Handler: plain, and deflating,
// which negotiates permessage-deflate and has the larger write buffers.
func upgraders(checkOrigin func(*http.Request) bool) (plain, deflating websocket.Upgrader) {
	plain = websocket.Upgrader{
		ReadBufferSize:  readBufferSize,
		WriteBufferSize: writeBufferSize,
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     checkOrigin,
		Error:           upgradeError,
	}
	deflating = plain
	deflating.EnableCompression = true
	deflating.WriteBufferSize = deflateWriteBufferSize
	deflating.WriteBufferPool = &sync.Pool{}
	return plain, deflating
}

// upgradeError answers a refused upgrade with the contract's error envelope.
func upgradeError(w http.ResponseWriter, _ *http.Request, status int, reason error) {
	code := protocol.CodeBadRequest
	if status == http.StatusForbidden {
		code = protocol.CodeForbidden
	}
	httpx.WriteError(w, &protocol.Error{Code: code, Message: "websocket upgrade failed: " + reason.Error()})
}

// ServeHTTP serves GET /v1/ws: it authenticates, opens a session, upgrades
// (negotiating permessage-deflate when Compress allows it and the client
// offers it), starts the reader and returns. A request that cannot be
// served gets an HTTP error envelope and no upgrade. From then on the
// session's writer and the reader own the connection; it ends when either
// fails, the session closes, or the client goes silent for three
// heartbeats (4009).
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
	rooms, since, err := httpx.ParseJoins(r, h.hub.Config().MaxRoomsPerSession)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	fence, here := httpx.Arrived(r, h.hub)
	if !here {
		// An upgrade its client gave up before it was read: joining its
		// rooms now could undo what the client did since (a leave posted
		// on another connection, see httpx.ClientGone).
		w.WriteHeader(httpx.StatusClientGone)
		return
	}
	c := &conn{
		ready: make(chan struct{}), closed: make(chan struct{}), user: id.User, writeTimeout: h.writeTimeout,
		appPings: httpx.QueryValue(r.URL.RawQuery, HeartbeatParam) == HeartbeatApp, compress: h.compress,
	}
	sess, err := h.hub.Connect(id, c, core.SessionOptions{Heartbeat: true, Greet: true, Batched: httpx.Batched(r), Hold: true, Fence: fence})
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	up := &h.plain
	offered, takeover := deflateOffer(r)
	if h.compress != nil && offered && h.compress(id.User) {
		up, c.deflate = &h.deflating, true
	}
	// The 101 waits in the socket for the first write, which carries the
	// greeting and the replies to the joins of rooms=: one segment.
	c.uncork = httpx.Cork(r)
	ws, tc, slots, err := upgrade(up, w, r, c.deflate && takeover)
	c.ws, c.slots = ws, slots
	if tc != nil {
		c.tk = &takeoverState{conn: tc}
	}
	if err == nil && c.deflate {
		if c.tk != nil {
			h.takeovers.Inc()
		} else {
			h.alone.Inc()
		}
	}
	close(c.ready)
	if err != nil {
		c.uncork() // the refusal goes now
		sess.Close(core.DisconnectNormal)
		return
	}
	ws.SetReadLimit(h.readLimit)
	h.startReader(sess, c, rooms, since)
}
