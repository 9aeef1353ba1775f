package redis

import (
	"context"
	"fmt"

	"github.com/chatd/chatd/core"
)

// Sweep prunes, in every room, the messages older than MaxAge by
// Config.Now, as the periodic sweep does; a no-op without MaxAge. It
// finds the rooms with SCAN (a room's keys are in its own slot, so no
// index of rooms could be kept atomically with them on a Cluster), then
// runs sweepScript on each. Several nodes may sweep at once.
func (e *Engine) Sweep() error {
	if err := e.enter(); err != nil {
		return err
	}
	defer e.leave()
	return e.sweep(e.ctx)
}

// sweepBatch bounds the messages one sweepScript prunes.
const sweepBatch = 512

func (e *Engine) sweep(ctx context.Context) error {
	if e.cfg.MaxAge <= 0 {
		return nil
	}
	cutoff := e.cfg.Now().Add(-e.cfg.MaxAge).UnixMilli()
	scan := func(ctx context.Context, cursor uint64) ([]string, uint64, error) {
		return e.rdb.Scan(ctx, cursor, e.keys.metaPattern(), scanCount).Result()
	}
	return e.scanAll(ctx, "sweep", scan, func(metas []string) error {
		for _, meta := range metas {
			if err := e.sweepRoom(ctx, meta, cutoff); err != nil {
				return err
			}
		}
		return nil
	})
}

// sweepRoom prunes one room, sweepBatch messages per script.
func (e *Engine) sweepRoom(ctx context.Context, meta string, cutoff int64) error {
	room, ok := e.keys.roomOfMeta(meta)
	if !ok {
		return nil
	}
	k := e.keys.room(room)
	for more := true; more; {
		if e.closed.Load() {
			return fmt.Errorf("redis: sweep: %w", core.ErrClosed)
		}
		var res []any
		err := e.call(ctx, "sweep", func(ctx context.Context) error {
			var err error
			res, err = sweepScript.Run(ctx, e.rdb, []string{k.meta, k.log, k.ids, k.cur}, cutoff, sweepBatch).Slice()
			return err
		})
		if err != nil {
			return err
		}
		if len(res) < 2 {
			return fmt.Errorf("%w: sweep answered %v", errCorrupt, res)
		}
		more = res[1] == int64(1)
		e.release(room, res[2:])
	}
	return nil
}
