package redis

import (
	"context"
	"errors"

	goredis "github.com/redis/go-redis/v9"
)

// Get returns the shared value at key (<prefix>:kv:<key>), and whether
// there is one. The nodes keep the degradation level and the flags there.
func (e *Engine) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := e.enter(); err != nil {
		return nil, false, err
	}
	defer e.leave()
	var val []byte
	err := e.call(ctx, "get", func(ctx context.Context) error {
		var err error
		val, err = e.rdb.Get(ctx, e.keys.kv(key)).Bytes()
		return err
	})
	if errors.Is(err, goredis.Nil) {
		return nil, false, nil
	}
	return val, err == nil, err
}

// Set stores val at key, for every node's Get.
func (e *Engine) Set(ctx context.Context, key string, val []byte) error {
	if err := e.enter(); err != nil {
		return err
	}
	defer e.leave()
	return e.call(ctx, "set", func(ctx context.Context) error {
		return e.rdb.Set(ctx, e.keys.kv(key), val, 0).Err()
	})
}

// LogPush adds entry at the head of the capped list at key
// (<prefix>:list:<key>) and keeps its newest keep entries, in one
// transaction; keep <= 0 keeps them all.
func (e *Engine) LogPush(ctx context.Context, key string, entry []byte, keep int) error {
	if err := e.enter(); err != nil {
		return err
	}
	defer e.leave()
	k := e.keys.list(key)
	return e.call(ctx, "log_push", func(ctx context.Context) error {
		_, err := e.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.LPush(ctx, k, entry)
			if keep > 0 {
				p.LTrim(ctx, k, 0, int64(keep)-1)
			}
			return nil
		})
		return err
	})
}

// LogRange returns the newest n entries of the list at key, newest first;
// nothing for n <= 0.
func (e *Engine) LogRange(ctx context.Context, key string, n int) ([][]byte, error) {
	if err := e.enter(); err != nil {
		return nil, err
	}
	defer e.leave()
	if n <= 0 {
		return nil, nil
	}
	var vals []string
	err := e.call(ctx, "log_range", func(ctx context.Context) error {
		var err error
		vals, err = e.rdb.LRange(ctx, e.keys.list(key), 0, int64(n)-1).Result()
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(vals))
	for i, v := range vals {
		out[i] = []byte(v)
	}
	return out, nil
}
