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

func (e *Engine) sweep(ctx context.Context) error {
	if e.cfg.MaxAge <= 0 {
		return nil
	}
	cutoff := e.cfg.Now().Add(-e.cfg.MaxAge).UnixMilli()
	var cursor uint64
	for {
		var metas []string
		err := e.call(ctx, "sweep", func(ctx context.Context) error {
			var err error
			metas, cursor, err = e.rdb.Scan(ctx, cursor, e.keys.metaPattern(), 512).Result()
			return err
		})
		if err != nil {
			return err
		}
		for _, meta := range metas {
			if err := e.sweepRoom(ctx, meta, cutoff); err != nil {
				return err
			}
		}
		if cursor == 0 {
			return nil
		}
	}
}

func (e *Engine) sweepRoom(ctx context.Context, meta string, cutoff int64) error {
	if e.closed.Load() {
		return fmt.Errorf("redis: sweep: %w", core.ErrClosed)
	}
	room, ok := e.keys.roomOfMeta(meta)
	if !ok {
		return nil
	}
	k := e.keys.room(room)
	return e.call(ctx, "sweep", func(ctx context.Context) error {
		return sweepScript.Run(ctx, e.rdb, []string{k.meta, k.log, k.ids}, cutoff).Err()
	})
}
