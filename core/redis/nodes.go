package redis

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// NodeStatus is one live node as the registry knows it.
type NodeStatus struct {
	ID, Addr string
	Since    time.Time       // when it registered, by Redis's clock
	Info     json.RawMessage // what its Config.Info last returned; nil if none
}

// nodeRecord is the stored form of a NodeStatus, at <prefix>:node:<id>.
type nodeRecord struct {
	ID    string          `json:"id"`
	Addr  string          `json:"addr,omitempty"`
	Since time.Time       `json:"since"`
	Info  json.RawMessage `json:"info,omitempty"`
}

// redisNow reads Redis's clock: leases are measured on it, so that nodes'
// clocks need not agree.
func (e *Engine) redisNow(ctx context.Context) (time.Time, error) {
	return e.rdb.Time(ctx).Result()
}

// beat renews this node's lease: its score in <prefix>:nodes is the
// lease's end by Redis's clock, and its record expires with the lease.
// The first beat (in Open) sets Since. Each beat also reads the registry
// before renewing: the nodes whose lease has ended (which Members and
// AcquireConn no longer count), and this node's own entry. An entry gone
// or expired means another node may have cleaned up after this one, or
// Redis lost it: the node writes its presence and connection counts again
// (restore).
//
// A dead node's entry stays in the sorted set until a live node has
// cleaned up after it (reap.go), however long that takes: whoever cleans
// up finds it there.
func (e *Engine) beat(ctx context.Context) error {
	var (
		first   = e.since.IsZero() // in Open, before any other goroutine reads since
		restore bool
		dead    []string
	)
	err := e.call(ctx, "heartbeat", func(ctx context.Context) error {
		now, err := e.redisNow(ctx)
		if err != nil {
			return err
		}
		if first {
			e.since = now
		}
		rec, err := json.Marshal(nodeRecord{ID: e.cfg.Node, Addr: e.cfg.Addr, Since: e.since, Info: e.info()})
		if err != nil {
			return err
		}
		end := now.Add(e.cfg.Lease).UnixMilli()
		var reg *goredis.ZSliceCmd
		_, err = e.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			reg = p.ZRangeWithScores(ctx, e.keys.nodes, 0, -1)
			p.ZAdd(ctx, e.keys.nodes, goredis.Z{Score: float64(end), Member: e.cfg.Node})
			p.Set(ctx, e.keys.node(e.cfg.Node), rec, e.cfg.Lease)
			return nil
		})
		if err != nil {
			return err
		}
		restore = !first
		for _, z := range reg.Val() {
			id, _ := z.Member.(string)
			switch {
			case id == e.cfg.Node:
				restore = !first && int64(z.Score) <= now.UnixMilli()
			case int64(z.Score) <= now.UnixMilli():
				dead = append(dead, id)
			}
		}
		return nil
	})
	e.cl.beaten(err == nil)
	if err != nil {
		return err
	}
	e.cl.setDead(dead)
	if restore {
		e.restore()
	}
	return nil
}

// info returns the JSON of cfg.Info(), or nil.
func (e *Engine) info() json.RawMessage {
	if e.cfg.Info == nil {
		return nil
	}
	v := e.cfg.Info()
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		e.log.Warn("redis: node info does not marshal", "err", err)
		return nil
	}
	return b
}

// deregister removes this node from the registry, at Close.
func (e *Engine) deregister() error {
	return e.call(context.Background(), "deregister", func(ctx context.Context) error {
		_, err := e.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			p.ZRem(ctx, e.keys.nodes, e.cfg.Node)
			p.Del(ctx, e.keys.node(e.cfg.Node))
			return nil
		})
		return err
	})
}

// Nodes returns the live nodes, this one included: those whose lease has
// not ended by Redis's clock. Sorted by ID.
func (e *Engine) Nodes(ctx context.Context) ([]NodeStatus, error) {
	if err := e.enter(); err != nil {
		return nil, err
	}
	defer e.leave()
	var recs []*goredis.StringCmd
	err := e.call(ctx, "nodes", func(ctx context.Context) error {
		now, err := e.redisNow(ctx)
		if err != nil {
			return err
		}
		ids, err := e.rdb.ZRangeArgs(ctx, goredis.ZRangeArgs{Key: e.keys.nodes, ByScore: true,
			Start: "(" + strconv.FormatInt(now.UnixMilli(), 10), Stop: "+inf"}).Result()
		if err != nil || len(ids) == 0 {
			return err
		}
		recs = make([]*goredis.StringCmd, len(ids))
		_, err = e.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, id := range ids {
				recs[i] = p.Get(ctx, e.keys.node(id))
			}
			return nil
		})
		if errors.Is(err, goredis.Nil) { // a record expired between the two reads
			err = nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]NodeStatus, 0, len(recs))
	for _, c := range recs {
		var r nodeRecord
		if c.Err() != nil || json.Unmarshal([]byte(c.Val()), &r) != nil {
			continue
		}
		out = append(out, NodeStatus(r))
	}
	slices.SortFunc(out, func(a, b NodeStatus) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}
