package redis

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/chatd/chatd/core"
)

var _ core.Cluster = (*Engine)(nil)

// scanCount is the COUNT hint of every SCAN, HSCAN and SSCAN.
const scanCount = 512

// cluster is this node's part in the state the nodes hold together
// (presence, connection counts) and what it knows of the other nodes.
type cluster struct {
	ctx  context.Context    // the keeper's and the flusher's; static after Open
	stop context.CancelFunc // ends ctx, before the node cleans up after itself at Close
	wg   sync.WaitGroup     // the keeper and the flusher

	pres  presence
	conns conns

	mu      sync.Mutex
	dead    map[string]bool // guarded by mu: nodes whose lease had ended at the last heartbeat, this one excluded
	healthy time.Time       // guarded by mu: since when every heartbeat has succeeded; zero after a failed one
}

// beaten records a heartbeat's outcome.
func (c *cluster) beaten(ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case !ok:
		c.healthy = time.Time{}
	case c.healthy.IsZero():
		c.healthy = time.Now()
	}
}

// settled reports whether this node's heartbeats have succeeded for at
// least d: after an outage every node's lease looks ended, and the others
// need a lease's time to renew theirs before anyone reaps them.
func (c *cluster) settled(d time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.healthy.IsZero() && time.Since(c.healthy) >= d
}

func newCluster() cluster {
	ctx, stop := context.WithCancel(context.Background())
	return cluster{ctx: ctx, stop: stop, pres: newPresence(), conns: newConns()}
}

// setDead records the nodes whose lease has ended, as a heartbeat read
// them.
func (c *cluster) setDead(ids []string) {
	dead := make(map[string]bool, len(ids))
	for _, id := range ids {
		dead[id] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dead = dead
}

// deadNodes returns the nodes whose lease had ended at the last
// heartbeat. A node absent from it (newer than that heartbeat, or never
// seen) counts as live.
func (c *cluster) deadNodes() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dead
}

// startCluster cleans up what an earlier life of this node id left in
// Redis (a node restarted under a fixed id before anyone reaped it), then,
// once the node is registered, starts the keeper and the flusher.
func (e *Engine) startCluster(ctx context.Context) error {
	var n int64
	err := e.call(ctx, "open", func(ctx context.Context) error {
		var err error
		n, err = e.rdb.Exists(ctx, e.keys.nodeRooms(e.cfg.Node), e.keys.nodeUsers(e.cfg.Node)).Result()
		return err
	})
	if err != nil {
		return err
	}
	if n > 0 {
		e.log.Info("redis: cleaning up after an earlier life of this node id")
		if _, err := e.reapNode(ctx, e.cfg.Node); err != nil {
			return err
		}
	}
	return nil
}

// runCluster starts the keeper and the flusher.
func (e *Engine) runCluster() {
	e.cl.wg.Add(2)
	go e.keep()
	go e.flush()
}

// stopCluster stops the keeper and the flusher and waits for them.
func (e *Engine) stopCluster() {
	e.cl.stop()
	e.cl.wg.Wait()
}

// keep is the keeper goroutine. Every Lease/2 it cleans up after the
// nodes whose lease has ended, settles this node's presence in the rooms
// where a write failed (or after it was itself reaped), and drops from
// this node's sets the rooms and users it has nothing left under.
func (e *Engine) keep() {
	defer e.cl.wg.Done()
	t := time.NewTicker(e.cfg.Lease / 2)
	defer t.Stop()
	steps := []struct {
		what string
		fn   func(context.Context) error
	}{{"reaping dead nodes", e.reapDead}, {"settling presence", e.settleDirty}, {"pruning node sets", e.prune}}
	for {
		select {
		case <-e.cl.ctx.Done():
			return
		case <-t.C:
		}
		for _, s := range steps {
			if err := s.fn(e.cl.ctx); err != nil && e.cl.ctx.Err() == nil {
				e.log.Log(e.cl.ctx, levelOf(err), "redis: "+s.what+" failed; retrying", "err", err)
			}
		}
	}
}

// levelOf is the level to log a background failure at: an outage is
// already told by the breaker, so it is debug.
func levelOf(err error) slog.Level {
	if isUnavailable(err) {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

// restore marks everything this node holds in Redis to be written again
// from its own records: its lease had ended, so another node may have
// reaped it (or Redis lost it).
func (e *Engine) restore() {
	e.log.Warn("redis: this node's lease had ended or its registration was gone; writing its presence and connection counts again")
	e.cl.pres.dirtyAll()
	e.cl.conns.dirtyAll()
	signal(e.cl.conns.wake)
}

// prune drops from this node's sets the rooms and users it holds nothing
// under any more.
func (e *Engine) prune(ctx context.Context) error {
	p, c := &e.cl.pres, &e.cl.conns
	return errors.Join(
		e.pruneSet(ctx, &p.idx, e.keys.nodeRooms(e.cfg.Node), p.idle, p.forget),
		e.pruneSet(ctx, &c.idx, e.keys.nodeUsers(e.cfg.Node), c.idle, c.forget))
}

// pruneSet SREMs from the set at key the members idle returns (those
// that are still idle once guarded), SADDs again the ones a write began on
// meanwhile, and tells forget the ones it removed for good.
func (e *Engine) pruneSet(ctx context.Context, x *index, key string, idle func(only []string) []string, forget func([]string)) error {
	cands := x.guard(idle(nil))
	if len(cands) == 0 {
		return nil
	}
	gone := idle(cands)
	err := e.call(ctx, "prune", func(ctx context.Context) error {
		if len(gone) == 0 {
			return nil
		}
		return e.rdb.SRem(ctx, key, toAny(gone)...).Err()
	})
	touched := x.release(cands)
	if err != nil {
		return err
	}
	var again, removed []string
	for _, m := range gone {
		if touched[m] {
			again = append(again, m)
		} else {
			removed = append(removed, m)
		}
	}
	forget(removed)
	if len(again) == 0 {
		return nil
	}
	return e.call(ctx, "prune", func(ctx context.Context) error {
		return e.rdb.SAdd(ctx, key, toAny(again)...).Err()
	})
}

// scanPage reads one page of a SCAN-like command from cursor.
type scanPage func(ctx context.Context, cursor uint64) ([]string, uint64, error)

// scanAll calls fn with every page that page returns, from cursor 0 until
// the cursor comes back to 0; every page is one call for op.
func (e *Engine) scanAll(ctx context.Context, op string, page scanPage, fn func([]string) error) error {
	var cursor uint64
	for {
		var items []string
		err := e.call(ctx, op, func(ctx context.Context) error {
			var err error
			items, cursor, err = page(ctx, cursor)
			return err
		})
		if err != nil {
			return err
		}
		if err := fn(items); err != nil {
			return err
		}
		if cursor == 0 {
			return nil
		}
	}
}

func (e *Engine) hscan(key, match string) scanPage {
	return func(ctx context.Context, cursor uint64) ([]string, uint64, error) {
		return e.rdb.HScan(ctx, key, cursor, match, scanCount).Result()
	}
}

func (e *Engine) sscan(key string) scanPage {
	return func(ctx context.Context, cursor uint64) ([]string, uint64, error) {
		return e.rdb.SScan(ctx, key, cursor, "", scanCount).Result()
	}
}

// pipeScripts runs fill's commands in one pipeline, scripts by EVALSHA.
// If Redis has forgotten the scripts (NOSCRIPT, after a restart) it loads
// them and runs the pipeline once more: a NOSCRIPT pipeline ran none of
// its scripts, and every caller's other commands may be repeated.
func (e *Engine) pipeScripts(ctx context.Context, fill func(p goredis.Pipeliner), scripts ...*goredis.Script) error {
	run := func() error {
		_, err := e.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error { fill(p); return nil })
		return err
	}
	err := run()
	if !goredis.HasErrorPrefix(err, "NOSCRIPT") {
		return err
	}
	for _, s := range scripts {
		if err := s.Load(ctx, e.rdb).Err(); err != nil {
			return err
		}
	}
	return run()
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
