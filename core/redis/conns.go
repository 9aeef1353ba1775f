package redis

import (
	"context"
	"fmt"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// acquireScript counts one more connection of a user on a node unless
// the user has limit open already. KEYS: conns:{user}. ARGV: node, limit,
// then the nodes known to be dead, whose counts no longer count (the
// reaper removes them soon). It returns {1, open now} or {0, open}.
var acquireScript = goredis.NewScript(`
local node, limit = ARGV[1], tonumber(ARGV[2])
local dead = {}
for i = 3, #ARGV do dead[ARGV[i]] = true end
local all = redis.call('HGETALL', KEYS[1])
local open = 0
for i = 1, #all, 2 do
  local n = tonumber(all[i + 1]) or 0
  if not dead[all[i]] and n > 0 then open = open + n end
end
if open >= limit then return {0, open} end
redis.call('HINCRBY', KEYS[1], node, 1)
return {1, open + 1}
`)

// connScript moves ('add') or sets ('set') a node's count of a user's
// connections, removing the field at 0 or below. KEYS: conns:{user}.
// ARGV: node, mode, n. It returns the count after.
var connScript = goredis.NewScript(`
local node, n = ARGV[1], tonumber(ARGV[3])
if ARGV[2] == 'add' then n = redis.call('HINCRBY', KEYS[1], node, n) end
if n <= 0 then
  redis.call('HDEL', KEYS[1], node)
  return 0
end
if ARGV[2] == 'set' then redis.call('HSET', KEYS[1], node, n) end
return n
`)

// flushBatch bounds the users one flush writes in one pipeline.
const flushBatch = 512

// conns is this node's count of open connections per user: the truth its
// fields in Redis follow. AcquireConn increments the field in its script;
// ReleaseConn only counts here, and the flusher sends the decrements in
// batches. A user whose write failed, or all of them after this node was
// reaped, is dirty: the flusher rewrites the field from the local count.
type conns struct {
	mu      sync.Mutex
	local   map[string]int  // guarded by mu: user -> connections open here (acquired - released)
	pending map[string]int  // guarded by mu: user -> releases not sent to Redis yet
	dirty   map[string]bool // guarded by mu: users whose field may be wrong
	held    map[string]bool // guarded by mu: users that may be in the node's users set
	wake    chan struct{}   // holds one: work for the flusher
	idx     index           // the node's users set
}

func newConns() conns {
	return conns{local: map[string]int{}, pending: map[string]int{}, dirty: map[string]bool{}, held: map[string]bool{},
		wake: make(chan struct{}, 1), idx: newIndex()}
}

// AcquireConn implements core.Cluster: one pipeline adds user to this
// node's users set and runs acquireScript, which sums the user's counts
// on every node not known to be dead (a node that joined since this
// node's last heartbeat counts: nobody's connections are free) and takes
// one if the sum is below limit. A failed call leaves the user's field to
// be rewritten from the local count.
func (e *Engine) AcquireConn(ctx context.Context, user string, limit int) (bool, int, error) {
	if err := validKey("user", user); err != nil {
		return false, 0, err
	}
	if err := e.enter(); err != nil {
		return false, 0, err
	}
	defer e.leave()
	if limit <= 0 {
		return false, 0, nil
	}
	c := &e.cl.conns
	c.idx.begin(user)
	defer c.idx.end(user)
	c.hold(user)
	args := []any{e.cfg.Node, limit}
	for id := range e.cl.deadNodes() {
		args = append(args, id)
	}
	var cmd *goredis.Cmd
	err := e.call(ctx, "acquire_conn", func(ctx context.Context) error {
		return e.pipeScripts(ctx, func(p goredis.Pipeliner) {
			p.SAdd(ctx, e.keys.nodeUsers(e.cfg.Node), user)
			cmd = acquireScript.EvalSha(ctx, p, []string{e.keys.conns(user)}, args...)
		}, acquireScript)
	})
	if err != nil {
		c.markDirty(user) // the script may have run
		return false, 0, err
	}
	res, err := cmd.Int64Slice()
	if err != nil || len(res) != 2 {
		return false, 0, fmt.Errorf("%w: acquire answered %v, %v", errCorrupt, res, err)
	}
	if res[0] == 1 {
		c.acquired(user)
	}
	return res[0] == 1, int(res[1]), nil
}

// ReleaseConn implements core.Cluster without blocking: it counts the
// release here and wakes the flusher.
func (e *Engine) ReleaseConn(user string) {
	if e.closed.Load() {
		return // Close has taken this node's counts out
	}
	if e.cl.conns.release(user) {
		signal(e.cl.conns.wake)
	}
}

func (c *conns) hold(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held[user] = true
}

func (c *conns) acquired(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.local[user]++
}

// release counts a release of user's, and reports whether there was a
// connection to release.
func (c *conns) release(user string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.local[user] <= 0 {
		return false
	}
	if c.local[user]--; c.local[user] == 0 {
		delete(c.local, user)
	}
	c.pending[user]++
	return true
}

func (c *conns) markDirty(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dirty[user] = true
	signal(c.wake)
}

func (c *conns) dirtyAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for user := range c.local {
		c.dirty[user] = true
	}
}

// idle returns the users (of only, or of all when only is nil) this node
// counts nothing for and has nothing to send for; forget drops those of
// users removed from the node's users set that are still idle.
func (c *conns) idle(only []string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return idleOf(c.held, only, c.isIdle)
}

func (c *conns) forget(users []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	forgetIdle(c.held, users, c.isIdle)
}

// isIdle is idle's test. Called with c.mu held.
func (c *conns) isIdle(user string) bool {
	return c.held[user] && c.local[user] == 0 && c.pending[user] == 0 && !c.dirty[user]
}

// flush is the flusher goroutine: woken by ReleaseConn or a failure, it
// writes what is pending, and retries with backoff while Redis fails.
func (e *Engine) flush() {
	defer e.cl.wg.Done()
	c := &e.cl.conns
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	backoff := minBackoff
	for {
		select {
		case <-e.cl.ctx.Done():
			return
		case <-c.wake:
		case <-retry.C:
		}
		more, err := e.flushConns(e.cl.ctx)
		switch {
		case err != nil:
			if e.cl.ctx.Err() == nil {
				e.log.Log(e.cl.ctx, levelOf(err), "redis: writing connection counts failed; retrying", "err", err, "in", backoff)
			}
			retry.Reset(backoff)
			backoff = min(2*backoff, maxBackoff)
		case more:
			retry.Reset(minBackoff)
			backoff = minBackoff
		default:
			backoff = minBackoff
		}
	}
}

// connWrites is one flush: counts to set (dirty users) and releases to
// send, by user.
type connWrites struct {
	sets, adds map[string]int
	guarded    []string // the users of sets, guarded in the users index
}

// flushConns writes what is pending in batches of flushBatch users. It
// reports whether dirty users are left that it could not rewrite yet (an
// acquire of theirs was in flight).
func (e *Engine) flushConns(ctx context.Context) (more bool, err error) {
	c := &e.cl.conns
	for {
		w, left := c.take(flushBatch)
		if len(w.sets)+len(w.adds) == 0 {
			return left, nil
		}
		err := e.writeConns(ctx, w)
		c.wrote(w, c.idx.release(w.guarded), err)
		if err != nil {
			return false, err
		}
	}
}

// take takes up to max users' worth of writes: the dirty users with no
// acquire in flight, set to their local count, then releases of the
// others. left reports dirty users it had to leave.
func (c *conns) take(max int) (w connWrites, left bool) {
	c.mu.Lock()
	var dirty []string
	for user := range c.dirty {
		if len(dirty) == max {
			break
		}
		dirty = append(dirty, user)
	}
	c.mu.Unlock()
	w.guarded = c.idx.guard(dirty)
	w.sets, w.adds = map[string]int{}, map[string]int{}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, user := range w.guarded {
		w.sets[user] = c.local[user]
		delete(c.dirty, user)
		delete(c.pending, user)
	}
	for user, n := range c.pending {
		if len(w.sets)+len(w.adds) == max {
			break
		}
		if !c.dirty[user] {
			w.adds[user] = -n
			delete(c.pending, user)
		}
	}
	return w, len(c.dirty) > 0
}

// writeConns sends one flush in one pipeline: the users it sets above 0
// go into the node's users set first.
func (e *Engine) writeConns(ctx context.Context, w connWrites) error {
	var add []any
	for user, n := range w.sets {
		if n > 0 {
			add = append(add, user)
		}
	}
	return e.call(ctx, "release_conn", func(ctx context.Context) error {
		return e.pipeScripts(ctx, func(p goredis.Pipeliner) {
			if len(add) > 0 {
				p.SAdd(ctx, e.keys.nodeUsers(e.cfg.Node), add...)
			}
			for user, n := range w.sets {
				connScript.EvalSha(ctx, p, []string{e.keys.conns(user)}, e.cfg.Node, "set", n)
			}
			for user, n := range w.adds {
				connScript.EvalSha(ctx, p, []string{e.keys.conns(user)}, e.cfg.Node, "add", n)
			}
		}, connScript)
	})
}

// wrote records the outcome of a flush: after a failure every user in it
// is dirty (the writes may or may not have landed); a rewritten user an
// acquire overtook is dirty again.
func (c *conns) wrote(w connWrites, touched map[string]bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for user := range w.sets {
		if err != nil || touched[user] {
			c.dirty[user] = true
		}
	}
	if err != nil {
		for user := range w.adds {
			c.dirty[user] = true
		}
	}
}
