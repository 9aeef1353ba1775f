package client

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/core/protocol"
)

// Transport names, as the server offers them in negotiate and control.
const (
	WebSocket = "websocket"
	SSE       = "sse"
	Poll      = "poll"
)

// defaultTiers is the preference order when Config.Transports is empty.
var defaultTiers = []string{WebSocket, SSE, Poll}

// Config configures a Client. The zero value is valid apart from URL and
// Token; each field's comment gives its default.
type Config struct {
	// URL is the server's HTTP base, such as http://127.0.0.1:8080. A path
	// prefix is kept: http://host/chat serves /chat/v1/ws.
	URL string

	// Token returns the bearer JWT. It is called before every connect
	// that negotiates (the first, and any after a resume on the offer in
	// hand was refused; see the package doc), and again after the server
	// says the token expired or is not valid. It may be called from Run's
	// goroutine and from a Send at the same time.
	Token func(ctx context.Context) (string, error)

	// Rooms are joined at start, live (from now on). Join and Leave change
	// the set at runtime. Invalid names are ignored; Join reports them.
	Rooms []string

	// UserEvents makes the client follow the user's own stream: Events
	// then also carries "room" envelopes (a room appeared in or left the
	// user's list: reason dm, invite, joined or left), each once, resumed
	// exactly across reconnects and tier moves like a room's messages
	// (their position is Positions()["~"]); and SSE and poll stay
	// connected with no room joined. Off, the client drops them.
	UserEvents bool

	// Transports is the preference order, highest first, drawn from
	// WebSocket, SSE and Poll. Nil means all three in that order. The
	// client uses those the server offers, in this order.
	Transports []string

	// ConnectTimeout bounds each tier's connect (dial and the first
	// server envelope) and each short HTTP call; 10s.
	ConnectTimeout time.Duration

	// BackoffBase and BackoffMax shape the reconnect and send-retry delay:
	// a random duration in [0, min(BackoffMax, BackoffBase·2^attempt)].
	// 1s and 30s.
	BackoffBase time.Duration
	BackoffMax  time.Duration

	// StableAfter is how long a link must live for the next reconnect to
	// start over from the first backoff step; 10s, as the browser client's
	// stableMs. Links that end sooner, in a row, count as attempts: a
	// server that accepts and then ends every link (a room whose history
	// it cannot read, a node failing after its accept) is retried at a
	// growing interval, not about twice a second.
	StableAfter time.Duration

	// MoveJitter bounds the random delay before the client follows a
	// control envelope to another tier, so that clients do not move all
	// at once; 2s.
	MoveJitter time.Duration

	// PollHold is the longest the server holds a poll that has nothing to
	// say; 25s. A poll request times out after PollHold+ConnectTimeout.
	PollHold time.Duration

	// PollDeflate makes polls ask for deflated answers (deflate=): each
	// answer a chunk of one deflate stream, referring back to the ones
	// before it, at the cost of a 32 KiB window per poll link. The server
	// deflates while compression is on for the user.
	PollDeflate bool

	// HTTPClient makes every HTTP request, the SSE stream included, so it
	// must not set a Timeout; requests carry their own deadlines. Nil means
	// a private client whose idle connections are closed when Run returns.
	// Polls go to its Transport directly while it has no Jar and no
	// Timeout (and the URL no user), and through its Do otherwise, and
	// from the first poll that is redirected on, for the rest of the
	// Client's life: either way its cookies, redirects and Transport
	// apply as they would to any request.
	HTTPClient *http.Client

	// WSDialer dials WebSockets. Nil means a dialer with a HandshakeTimeout
	// of ConnectTimeout and the environment's proxy.
	WSDialer *websocket.Dialer

	// EventBuffer is the capacity of the Events channel; 64. Envelopes the
	// caller has not read yet wait in an unbounded queue behind it, so a
	// small buffer loses nothing; a program that runs thousands of clients
	// (the load tool) saves memory with one.
	EventBuffer int

	// Deliver, if set, takes the envelopes instead of the Events channel,
	// which then carries none and only closes when Run returns. The client
	// calls it on one goroutine of its own, with every envelope it would
	// have sent on Events, in the same order, a batch at a time: what
	// arrived since the last call, in slices of at most 256 envelopes
	// (the delivery queue's blocks). The batch's array is reused once
	// Deliver returns, so it must not keep it (the envelopes themselves
	// may be kept); while Deliver runs, envelopes wait in the queue. For a
	// program that runs many clients, the load tool: the channel cost it
	// two goroutine hand-offs and three copies of an envelope for each.
	Deliver func(batch []protocol.Envelope)

	// CountReads leaves a batched receipt's read positions undecoded:
	// receipts arrive with Reads nil and Count holding how many positions
	// they carried (protocol.FastOptions). For a program that only counts
	// them, the load tool: at 10k chat clients, building each receipt's
	// map took an eighth of its CPU. A page needs the positions.
	CountReads bool

	// CountChanges leaves a presence envelope's changes undecoded: they
	// arrive as as many blank entries, shared and read-only
	// (protocol.FastOptions). For a program that only counts them, the
	// load tool: in a reconnect storm of 10,000 clients, building them
	// took a seventh of its CPU in the storm's first 2 s. A page needs the
	// names.
	CountChanges bool

	// Logger receives debug lines about connects and tier moves. Nil
	// discards them.
	Logger *slog.Logger

	// Now is the clock used for timestamps; time.Now. Timers use the real
	// clock.
	Now func() time.Time

	// Rand draws the jitter of backoff and tier moves. Nil means a source
	// seeded at random. The client serializes its use.
	Rand *rand.Rand
}

func (cfg Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.ConnectTimeout, 10*time.Second)
	def(&cfg.BackoffBase, time.Second)
	def(&cfg.BackoffMax, 30*time.Second)
	def(&cfg.StableAfter, 10*time.Second)
	def(&cfg.MoveJitter, 2*time.Second)
	def(&cfg.PollHold, 25*time.Second)
	if cfg.EventBuffer <= 0 {
		cfg.EventBuffer = 64
	}
	if len(cfg.Transports) == 0 {
		cfg.Transports = defaultTiers
	}
	cfg.Transports = append([]string(nil), cfg.Transports...)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if cfg.WSDialer == nil {
		cfg.WSDialer = &websocket.Dialer{
			Proxy:            http.ProxyFromEnvironment,
			HandshakeTimeout: cfg.ConnectTimeout,
			ReadBufferSize:   4096,
			WriteBufferSize:  4096,
		}
	}
	return cfg
}
