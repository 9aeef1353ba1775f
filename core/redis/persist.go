package redis

import (
	"context"
	"fmt"

	"github.com/chatd/chatd/core/protocol"
)

// checkPersistence makes sure an ack means durable: Redis must append
// every write to its AOF and fsync it before answering (appendonly yes,
// appendfsync always). Otherwise, or if CONFIG is refused so that it
// cannot tell, Open fails with ErrNotDurable, unless cfg.AcceptRisk, when
// it logs a loud warning and goes on.
func (e *Engine) checkPersistence(ctx context.Context) error {
	var conf map[string]string
	err := e.call(ctx, "open", func(ctx context.Context) error {
		var err error
		conf, err = e.rdb.ConfigGet(ctx, "append*").Result()
		return err
	})
	var risk string
	switch {
	case err != nil && (!isReply(err) || isUnavailable(err)):
		return fmt.Errorf("redis: open %s: %w", e.rdb.Options().Addr, err)
	case err != nil:
		risk = fmt.Sprintf("CONFIG GET is refused (%v), so chatd cannot check that Redis persists every write before answering", err)
	case conf["appendonly"] != "yes" || conf["appendfsync"] != "always":
		risk = fmt.Sprintf("Redis runs with appendonly %q and appendfsync %q, so an acknowledged message is lost if Redis stops",
			conf["appendonly"], conf["appendfsync"])
	default:
		return nil
	}
	if !e.cfg.AcceptRisk {
		return fmt.Errorf("%w: %s. Acks mean durable only with the AOF fsynced on every write: "+
			"run CONFIG SET appendonly yes; CONFIG SET appendfsync always (and put both in redis.conf), "+
			"or start with the accept-risk flag (Config.AcceptRisk) to run anyway", ErrNotDurable, risk)
	}
	e.log.Warn("redis: RUNNING WITHOUT DURABLE ACKS: "+risk+
		"; set appendonly yes and appendfsync always to make acks durable", "accept_risk", true)
	return nil
}

// isUnavailable reports whether err is an outage, as call maps them.
func isUnavailable(err error) bool {
	code, _ := protocol.CodeOf(err)
	return code == protocol.CodeUnavailable
}
