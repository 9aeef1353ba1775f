package core

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// Hub owns rooms and sessions on one node. Create it with New; it is safe
// for concurrent use.
type Hub struct {
	cfg         Config   // Static after construction.
	store       Store    // the engine's history; static after construction.
	broker      Broker   // the engine's events; static after construction.
	cluster     Cluster  // the engine's shared state, nil on one node; static after construction.
	metrics     *metrics // Static after construction.
	limits      *limiters
	nextID      atomic.Uint64
	counters    counters
	recentBytes atomic.Int64 // the rooms' recent windows, in bytes (recent.go)

	reads  *readQueue // Static after construction.
	people UserStore  // the engine's names and room lists; static after construction.

	usersAtStart int           // users read from the engine in New; static after construction.
	names        *names        // display names; static after construction.
	listed       *listed       // rooms known to be in users' lists; static after construction.
	slots        *writeSlots   // the writers' slots (Config.WritersRunning); nil: no bound; static after construction.
	replays      chan struct{} // replay slots: a catch-up holds one; static after construction.
	fan          *fanout       // Static after construction.
	fanoutOn     atomic.Bool   // the fan-out shards run; set under mu

	stop     chan struct{} // closed by Shutdown
	stopCtx  context.Context
	endStop  context.CancelFunc // ends stopCtx, with stop
	stopOnce sync.Once
	bg       sync.WaitGroup // the fan-out, janitor, heartbeat and read-flush goroutines

	mu          sync.Mutex
	rooms       map[string]*room      // Guarded by mu.
	users       map[string]int        // open sessions per user; guarded by mu.
	sessions    map[*Session]struct{} // Guarded by mu.
	closing     bool                  // Guarded by mu.
	janitorOn   bool                  // Guarded by mu.
	heartbeatOn bool                  // Guarded by mu.
	readsOn     bool                  // Guarded by mu.
	presenceOn  bool                  // Guarded by mu.
	marks       presenceMarks         // rooms with presence changes to send

	ctlMu    sync.Mutex
	controls map[string]func([]byte) // control listeners by topic; guarded by ctlMu.
}

// New returns a hub over engine and registers it with the engine, so that
// committed messages, ephemeral events and control events reach it.
func New(engine Engine, cfg Config) *Hub {
	cfg = cfg.withDefaults()
	h := &Hub{
		cfg:      cfg,
		store:    engine,
		broker:   engine,
		people:   engine,
		metrics:  newMetrics(cfg.Metrics),
		limits:   newLimiters(cfg),
		rooms:    make(map[string]*room),
		users:    make(map[string]int),
		sessions: make(map[*Session]struct{}),
		stop:     make(chan struct{}),
		replays:  make(chan struct{}, max(1, cfg.ReplayBudget/cfg.ReplayWindow)),
	}
	h.stopCtx, h.endStop = context.WithCancel(context.Background())
	if cfg.WritersRunning > 0 {
		h.slots = &writeSlots{gate: make(chan struct{}, cfg.WritersRunning), counters: &h.counters}
	}
	cfg.Metrics.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "chat_write_delay_seconds",
		Help: "How long a woken writer now waits to batch (a tenth of the recent delivery latency, capped; a quarter while the node relieves load, at least half the relieved bound; otherwise 0 while the node keeps up).",
	}, func() float64 { return h.writeDelay().Seconds() }))
	cfg.Metrics.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "chat_writers_waiting",
		Help: "Session writers waiting for a slot among the writers at work (--writers-running).",
	}, func() float64 { return float64(h.counters.waiting.Load()) }), prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "chat_blocked_writes_total",
		Help: "Writes that gave their writer's slot up to wait for a client whose socket was full.",
	}, func() float64 { return float64(h.counters.blocked.Load()) }))
	cfg.Metrics.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "chat_recent_bytes",
		Help: "Bytes the rooms' windows of recent entries hold for replays from memory, encoded entries and their frames (at most the node's recent budget).",
	}, func() float64 { return float64(h.recentBytes.Load()) }))
	h.reads = newReadQueue(h)
	h.fan = newFanout()
	h.marks.rooms = make(map[*room]struct{})
	h.controls = make(map[string]func([]byte))
	h.names, h.listed = newNames(h), newListed(cfg.Now)
	h.controls[TopicName] = h.onRenamed
	h.cluster, _ = engine.(Cluster)
	h.usersAtStart, _ = h.preloadUsers(preloadMaxUsers, preloadMaxPairs)
	h.instrument()
	engine.Register(h)
	return h
}

// Config returns the hub's effective configuration, defaults applied.
func (h *Hub) Config() Config { return h.cfg }

// Connect opens a session for id over t and starts its writer. The caller
// feeds it client frames with Handle and ends it with Close.
//
// On a cluster engine the per-user connection cap holds across the
// nodes: the engine counts the connection before the hub takes it.
func (h *Hub) Connect(id auth.Identity, t Transport, opts SessionOptions) (*Session, error) {
	if h.cluster != nil {
		if err := h.acquireConn(id.User); err != nil {
			return nil, err
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		h.releaseConn(id.User)
		return nil, protocol.Errorf(protocol.CodeUnavailable, "server is shutting down")
	}
	if h.cluster == nil && h.users[id.User] >= h.cfg.MaxConnsPerUser {
		return nil, tooManyConns(h.users[id.User], h.cfg.MaxConnsPerUser)
	}
	h.startPresence()
	s := newSession(h, h.nextID.Add(1), id, t, opts)
	h.users[id.User]++
	h.sessions[s] = struct{}{}
	s.start()
	return s, nil
}

// ForEachSession calls fn for every open session. fn must not block.
func (h *Hub) ForEachSession(fn func(*Session)) {
	h.mu.Lock()
	open := make([]*Session, 0, len(h.sessions))
	for s := range h.sessions {
		open = append(open, s)
	}
	h.mu.Unlock()
	for _, s := range open {
		fn(s)
	}
}

// Sessions returns the number of open sessions per transport name.
func (h *Hub) Sessions() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int)
	for s := range h.sessions {
		out[s.transport.Name()]++
	}
	return out
}

// forget unregisters s; called once by Session.Close.
func (h *Hub) forget(s *Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.sessions, s)
	if h.users[s.user]--; h.users[s.user] <= 0 {
		delete(h.users, s.user)
	}
	h.releaseConn(s.user)
}

// acquireConn counts a connection of user on the cluster engine.
func (h *Hub) acquireConn(user string) error {
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	ok, open, err := h.cluster.AcquireConn(ctx, user, h.cfg.MaxConnsPerUser)
	if err != nil {
		return internal(err)
	}
	if !ok {
		return tooManyConns(open, h.cfg.MaxConnsPerUser)
	}
	return nil
}

// releaseConn gives back a connection counted by acquireConn; it does
// not block.
func (h *Hub) releaseConn(user string) {
	if h.cluster != nil {
		h.cluster.ReleaseConn(user)
	}
}

func tooManyConns(open, limit int) error {
	return protocol.Errorf(protocol.CodeTooManyConnections,
		"user has %d open connections; the limit is %d", open, limit)
}

// Shutdown stops admitting sessions and closes every open one with 1001
// and a reconnect hint spread over ShutdownJitter, so that clients do not
// return all at once. It waits for the sessions' writers until ctx ends,
// then stores the read positions still pending. It is idempotent. The
// caller closes the store afterwards.
func (h *Hub) Shutdown(ctx context.Context) error {
	// closing is set first, under mu: background goroutines start only
	// under mu while closing is false, so none can start during the Wait.
	h.mu.Lock()
	h.closing = true
	open := make([]*Session, 0, len(h.sessions))
	for s := range h.sessions {
		open = append(open, s)
	}
	h.mu.Unlock()
	h.stopOnce.Do(func() {
		close(h.stop)
		h.endStop()
	})
	h.bg.Wait()
	for _, s := range open {
		jitter := time.Duration(rand.Int64N(int64(h.cfg.ShutdownJitter))) + 500*time.Millisecond
		s.Close(Disconnect{Code: protocol.CloseGoingAway, Reason: "server shutting down", Reconnect: jitter})
	}
	for _, s := range open {
		select {
		case <-s.done:
		case <-ctx.Done():
			return fmt.Errorf("core: shutdown: %w", ctx.Err())
		}
	}
	h.reads.flush(ctx)
	return nil
}

// Closing reports whether Shutdown has begun.
func (h *Hub) Closing() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closing
}

// acquireReplay takes one of the node's replay slots, waiting for one
// until ctx or the session's context sess ends.
func (h *Hub) acquireReplay(ctx, sess context.Context) error {
	select {
	case h.replays <- struct{}{}:
		return nil
	default:
	}
	h.metrics.replayWaits.Inc()
	select {
	case h.replays <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-sess.Done():
		return ErrClosed
	}
}

// releaseReplay gives back a slot taken by acquireReplay.
func (h *Hub) releaseReplay() { <-h.replays }
