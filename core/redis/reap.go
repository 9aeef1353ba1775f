package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// reapLockTTL is how long a node holds the lock to clean up after a dead
// one: long enough for a big node's cleanup, short enough that another
// takes over soon if the reaper dies too.
func (e *Engine) reapLockTTL() time.Duration { return max(e.cfg.Lease, 10*e.cfg.Timeout) }

// reapDead cleans up after every node whose lease has ended by Redis's
// clock, this one excepted (it is alive: its next heartbeat finds out and
// writes its state again). It waits until this node's heartbeats have
// succeeded for a whole lease, plus the time a breaker opened by the
// outage keeps a node from trying (after Open, after an outage), so that
// the live nodes have renewed theirs.
func (e *Engine) reapDead(ctx context.Context) error {
	if !e.cl.settled(e.cfg.Lease + breakerOpen) {
		return nil
	}
	var ids []string
	err := e.call(ctx, "reap", func(ctx context.Context) error {
		now, err := e.redisNow(ctx)
		if err != nil {
			return err
		}
		ids, err = e.rdb.ZRangeArgs(ctx, goredis.ZRangeArgs{Key: e.keys.nodes, ByScore: true,
			Start: "-inf", Stop: strconv.FormatInt(now.UnixMilli(), 10)}).Result()
		return err
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if id != e.cfg.Node {
			errs = append(errs, e.reapOther(ctx, id))
		}
	}
	return errors.Join(errs...)
}

// reapOther cleans up after dead node id unless another node is at it:
// under a lock (SET NX PX), once it has checked that the lease is still
// over, it takes the node's users offline in each of its rooms (publishing
// the changes), removes its connection counts, then its registration.
func (e *Engine) reapOther(ctx context.Context, id string) error {
	lock := e.keys.reapLock(id)
	locked := false
	err := e.call(ctx, "reap", func(ctx context.Context) error {
		ok, err := e.rdb.SetNX(ctx, lock, e.cfg.Node, e.reapLockTTL()).Result()
		if err != nil || !ok {
			return err
		}
		now, err := e.redisNow(ctx)
		if err != nil {
			return err
		}
		end, err := e.rdb.ZScore(ctx, e.keys.nodes, id).Result()
		if err == nil && int64(end) > now.UnixMilli() || errors.Is(err, goredis.Nil) {
			return e.rdb.Del(ctx, lock).Err() // renewed, or reaped by another node
		}
		locked = err == nil
		return err
	})
	if err != nil || !locked {
		return err
	}
	events, err := e.reapNode(ctx, id)
	if err != nil {
		// Let the next round try again (if this fails too, the lock runs out).
		_ = e.call(ctx, "reap", func(ctx context.Context) error { return e.rdb.Del(ctx, lock).Err() })
		return fmt.Errorf("cleaning up after node %s: %w", id, err)
	}
	err = e.call(ctx, "reap", func(ctx context.Context) error {
		_, err := e.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			p.ZRem(ctx, e.keys.nodes, id)
			p.Del(ctx, e.keys.node(id), lock)
			return nil
		})
		return err
	})
	if err != nil {
		return err
	}
	e.metrics.reaped.Inc()
	e.log.Info("redis: cleaned up after a node whose lease ended", "dead", id, "presence_events", events)
	if hook := e.reaped.Load(); hook != nil {
		(*hook)(id)
	}
	return nil
}

// reapNode takes node id's presence out of every room in its rooms set,
// publishing the users that went offline, removes its connection counts
// and deletes its sets. Each room and each page of users is removed from
// the sets once done, so that a retry goes on where this one stopped. It
// returns how many presence changes it published.
func (e *Engine) reapNode(ctx context.Context, id string) (events int, err error) {
	rooms, users := e.keys.nodeRooms(id), e.keys.nodeUsers(id)
	err = e.scanAll(ctx, "reap", e.sscan(rooms), func(page []string) error {
		for _, room := range page {
			changed, online, err := e.settle(ctx, id, room, nil)
			if err == nil {
				err = e.publishPresence(ctx, room, changed, online)
			}
			if err != nil {
				return err
			}
			events += len(changed)
			e.metrics.reapedPresence.Add(float64(len(changed)))
		}
		return e.srem(ctx, rooms, page)
	})
	if err != nil {
		return events, err
	}
	err = e.scanAll(ctx, "reap", e.sscan(users), func(page []string) error {
		err := e.call(ctx, "reap", func(ctx context.Context) error {
			_, err := e.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
				for _, user := range page {
					p.HDel(ctx, e.keys.conns(user), id)
				}
				return nil
			})
			return err
		})
		if err != nil {
			return err
		}
		return e.srem(ctx, users, page)
	})
	if err != nil {
		return events, err
	}
	return events, e.call(ctx, "reap", func(ctx context.Context) error { return e.rdb.Del(ctx, rooms, users).Err() })
}

func (e *Engine) srem(ctx context.Context, key string, members []string) error {
	if len(members) == 0 {
		return nil
	}
	return e.call(ctx, "reap", func(ctx context.Context) error { return e.rdb.SRem(ctx, key, toAny(members)...).Err() })
}

// leaveCluster is Close's cleanup: this node's users go offline in every
// room (published at once, so that a clean shutdown does not wait for the
// lease), its connection counts go, then its registration. If that fails
// the node stays registered until its lease ends, and another node cleans
// up after it.
func (e *Engine) leaveCluster() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeBudget*e.cfg.Timeout)
	defer cancel()
	if _, err := e.reapNode(ctx, e.cfg.Node); err != nil {
		return fmt.Errorf("redis: close: taking this node's presence and connection counts out (its lease runs out and another node does it): %w", err)
	}
	return e.deregister()
}

// closeBudget bounds Close's cleanup, in Timeouts.
const closeBudget = 10
