package redis

import (
	"context"
	"math"

	goredis "github.com/redis/go-redis/v9"
)

// sendScript takes one token from a user's send bucket, shared by every
// node, as a GCRA: the key holds the bucket's theoretical arrival time
// (TAT, µs by Redis's clock); a send is allowed while the TAT it would
// move to is within burst intervals of now. The key expires when the
// bucket is full again. KEYS: rate:{user}. ARGV: interval between tokens
// (µs), burst. It returns 1 (allowed) or 0.
//
// TIME before a write is allowed: Redis 7 replicates a script's effects,
// not the script.
var sendScript = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new = tat + interval
if new - now > burst * interval then return 0 end
redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.max(1, math.ceil((new - now) / 1000)))
return 1
`)

// minSendRate is the slowest refill AllowSend takes: one token in about
// 11.6 days. A rate of 0 or below means "no refill" in practice.
const minSendRate = 1e-6

// AllowSend implements core.Cluster with sendScript: perSec tokens a
// second, up to burst, by Redis's clock. A burst below 1 allows nothing.
func (e *Engine) AllowSend(ctx context.Context, user string, perSec float64, burst int) (bool, error) {
	if err := validKey("user", user); err != nil {
		return false, err
	}
	if err := e.enter(); err != nil {
		return false, err
	}
	defer e.leave()
	if burst < 1 {
		return false, nil
	}
	if !(perSec >= minSendRate) { // NaN too
		perSec = minSendRate
	}
	interval := math.Ceil(1e6 / perSec)
	var ok int64
	err := e.call(ctx, "allow_send", func(ctx context.Context) error {
		var err error
		ok, err = sendScript.Run(ctx, e.rdb, []string{e.keys.rate(user)}, interval, burst).Int64()
		return err
	})
	return ok == 1, err
}
