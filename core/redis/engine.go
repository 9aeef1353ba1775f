package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// ErrNotDurable is returned by Open, wrapped with what it found, when
// Redis would acknowledge a write before it is on disk and
// Config.AcceptRisk is not set.
var ErrNotDurable = errors.New("redis: Redis does not persist every write before acknowledging it")

// Engine is the Redis engine: a core.Engine whose history, seqs,
// idempotency keys and read positions live in Redis, shared by every node
// that opens the same URL and Prefix, and whose broker carries committed
// messages, ephemeral events and control events between those nodes over
// Redis pub/sub. Every method is safe for concurrent use.
type Engine struct {
	// Static after Open.
	cfg      Config
	keys     keys
	rdb      *goredis.Client
	breaker  *gobreaker.TwoStepCircuitBreaker[struct{}]
	metrics  *metrics
	log      *slog.Logger
	since    time.Time          // when this node registered, by Redis's clock
	ctx      context.Context    // the goroutines' context; ends at shutdown
	psCtx    context.Context    // ctx marked noDial, for calls on the pub/sub link
	stop     context.CancelFunc // ends ctx
	closing  chan struct{}      // closed when Close or Abandon begins
	linkOnce chan struct{}      // closed when the pub/sub link first comes up
	wg       sync.WaitGroup     // the engine's goroutines
	in       chan incoming      // pub/sub reader -> dispatcher
	out      chan outgoing      // Broadcast, Announce -> publisher

	handler atomic.Pointer[core.Handler] // set by Register; read by the dispatcher
	rooms   rooms                        // guarded by rooms.mu: what this node subscribes to and has delivered
	link    link                         // guarded by link.mu: the pub/sub connection, owned by the reader
	pending bool                         // owned by the dispatcher: the link was lost and its resync has not run
	cl      cluster                      // presence, connection counts, dead nodes; see cluster.go
	lastErr atomic.Pointer[error]        // set by every call: the last outage met; nil after a success
	hold    atomic.Pointer[func()]       // set by tests only: the reader calls it when the link is lost, before reconnecting
	reaped  atomic.Pointer[func(string)] // set by tests only: called with a dead node's id once this node has cleaned up after it

	// flightMu guards closed against new calls entering: enter holds it
	// for reading, shutdown for writing. flight counts the calls in
	// progress, which shutdown waits for before closing the client.
	flightMu sync.RWMutex
	closed   atomic.Bool
	flight   sync.WaitGroup

	cbMu      sync.Mutex
	reconnect []func() // guarded by cbMu; OnReconnect callbacks

	shutOnce sync.Once
	closeErr error // set once by shutdown
}

var _ core.Engine = (*Engine)(nil)

// Open connects to Redis, checks that it persists every write before
// answering (see Config.AcceptRisk), brings up the pub/sub link, registers
// the node and starts the engine's goroutines. It fails with a
// CodeUnavailable *protocol.Error when Redis cannot be reached within
// cfg.Timeout, and with ErrNotDurable when persistence is not safe.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	opts, err := cfg.clientOptions()
	if err != nil {
		return nil, err
	}
	e := &Engine{
		cfg: cfg, keys: newKeys(cfg.Prefix), rdb: goredis.NewClient(opts),
		metrics: newMetrics(cfg.Metrics), log: cfg.Logger.With("engine", "redis", "node", cfg.Node),
		closing: make(chan struct{}), linkOnce: make(chan struct{}),
		in: make(chan incoming, inQueue), out: make(chan outgoing, outQueue),
		rooms: rooms{byName: map[string]*roomState{}, changed: make(chan struct{}, 1)},
		link:  link{fresh: make(chan struct{}, 1), answered: make(chan struct{}, 1)},
		cl:    newCluster(),
	}
	e.ctx, e.stop = context.WithCancel(context.Background())
	e.psCtx = context.WithValue(e.ctx, noDial{}, true)
	e.breaker = newBreaker("redis "+cfg.Node, e.metrics, e.logBreaker)
	if err := e.checkPersistence(ctx); err != nil {
		e.stop()
		e.rdb.Close()
		return nil, err
	}
	if err := e.start(ctx); err != nil {
		e.shutdown(false)
		return nil, err
	}
	return e, nil
}

// start brings up the pub/sub link, registers the node and starts the
// goroutines: pub/sub reader and watchdog, dispatcher, publisher,
// heartbeat, the cluster's keeper and flusher and, with MaxAge, the
// sweeper.
func (e *Engine) start(ctx context.Context) error {
	e.link.ps = e.rdb.Subscribe(e.ctx, e.keys.control)
	e.link.active = map[string]bool{}
	e.wg.Add(4)
	go e.read()
	go e.watch()
	go e.dispatch()
	go e.send()
	t := time.NewTimer(e.cfg.Timeout)
	defer t.Stop()
	select {
	case <-e.linkOnce:
	case <-t.C:
		return unavailable("open", fmt.Errorf("pub/sub link not up within %v: %v", e.cfg.Timeout, e.Health()))
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := e.startCluster(ctx); err != nil {
		return err
	}
	if err := e.beat(ctx); err != nil {
		return err
	}
	e.runCluster()
	e.wg.Add(1)
	go e.every(e.cfg.Lease/3, slog.LevelDebug, "heartbeat", e.beat) // the heartbeat goroutine
	if e.cfg.MaxAge > 0 {
		e.wg.Add(1)
		go e.every(e.cfg.SweepInterval, slog.LevelWarn, "age sweep", e.sweep) // the sweeper goroutine
	}
	return nil
}

// every runs fn every d until shutdown, logging its failures at level.
func (e *Engine) every(d time.Duration, level slog.Level, what string, fn func(context.Context) error) {
	defer e.wg.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
			if err := fn(e.ctx); err != nil && !e.closed.Load() {
				e.log.Log(e.ctx, level, "redis: "+what+" failed", "err", err)
			}
		}
	}
}

// drain appends to batch, without blocking, what ch holds, up to cap(batch).
func drain[T any](batch []T, ch <-chan T) []T {
	for len(batch) < cap(batch) {
		select {
		case v := <-ch:
			batch = append(batch, v)
		default:
			return batch
		}
	}
	return batch
}

// Node returns this node's id.
func (e *Engine) Node() string { return e.cfg.Node }

// OnReconnect registers fn, called (on the engine's goroutine, so it must
// not block) each time the pub/sub link comes back after it was lost, once
// the subscribed rooms have been read up from the store. State kept
// elsewhere in Redis (the degradation level, flags) may have changed
// meanwhile without this node hearing of it.
func (e *Engine) OnReconnect(fn func()) {
	e.cbMu.Lock()
	defer e.cbMu.Unlock()
	e.reconnect = append(e.reconnect, fn)
}

// Health returns nil while Redis answers and the pub/sub link is up, and
// otherwise an error that says what is wrong (for /readyz and the log).
func (e *Engine) Health() error {
	if e.closed.Load() {
		return fmt.Errorf("redis: %w", core.ErrClosed)
	}
	if s := e.breaker.State(); s != gobreaker.StateClosed {
		return fmt.Errorf("redis: circuit breaker %s after failed calls: %v", s, e.lastFailure())
	}
	if err := e.lastErr.Load(); err != nil {
		return fmt.Errorf("redis: unreachable: %w", *err)
	}
	return e.link.health()
}

func (e *Engine) lastFailure() error {
	if err := e.lastErr.Load(); err != nil {
		return *err
	}
	return errors.New("no error recorded")
}

// healthy and unhealthy record the outcome of a call for Health.
func (e *Engine) healthy() {
	if e.lastErr.Load() != nil {
		e.lastErr.Store(nil)
	}
}

func (e *Engine) unhealthy(err error) { e.lastErr.Store(&err) }

func (e *Engine) logBreaker(from, to gobreaker.State) {
	if to == gobreaker.StateOpen {
		e.log.Warn("redis: circuit breaker open: calls fail fast until a probe succeeds",
			"from", from.String(), "probe_in", breakerOpen, "err", e.lastFailure())
		return
	}
	e.log.Info("redis: circuit breaker "+to.String(), "from", from.String())
}

// enter admits a call from outside unless the engine is closed; every
// successful enter is matched by one leave.
func (e *Engine) enter() error {
	e.flightMu.RLock()
	defer e.flightMu.RUnlock()
	if e.closed.Load() {
		return fmt.Errorf("redis: %w", core.ErrClosed)
	}
	e.flight.Add(1)
	return nil
}

func (e *Engine) leave() { e.flight.Done() }

// Close waits for the calls in progress (each is bounded by Timeout),
// takes this node's users offline in every room where it holds presence
// (publishing the changes) and its connection counts out, deregisters the
// node, stops the goroutines and closes the connections. Later calls get
// core.ErrClosed. It is idempotent: later Closes return the first one's
// result, which is an error only if that cleanup failed (the node's lease
// then runs out, and another node cleans up after it).
func (e *Engine) Close() error {
	e.shutdown(true)
	return e.closeErr
}

// Abandon stops the engine as a kill -9 would leave it: no heartbeat, all
// connections dropped, but the node not deregistered, so that it stays in
// Nodes until its lease runs out. For tests; Close after it does nothing.
func (e *Engine) Abandon() { e.shutdown(false) }

func (e *Engine) shutdown(deregister bool) {
	e.shutOnce.Do(func() {
		e.flightMu.Lock()
		e.closed.Store(true)
		close(e.closing)
		e.flightMu.Unlock()
		e.flight.Wait()
		e.stopCluster()
		if deregister {
			e.closeErr = e.leaveCluster()
		}
		e.stop()
		e.link.close()
		e.wg.Wait()
		_ = e.rdb.Close()
	})
}

// validKey checks a room, id or user that becomes part of a key (and of
// a presence field, where a NUL separates node and user).
func validKey(what, s string) error {
	if s == "" {
		return protocol.Errorf(protocol.CodeBadRequest, "empty %s", what)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return protocol.Errorf(protocol.CodeBadRequest, "%s has a NUL byte", what)
	}
	return nil
}
