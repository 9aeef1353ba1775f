package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// The circuit breaker in front of Redis: after breakerTrip consecutive
// failures it opens, calls fail at once without dialling, and after
// breakerOpen one probe is let through (half-open); its success closes it.
const (
	breakerTrip = 3
	breakerOpen = time.Second
)

// errExcluded marks, for the breaker, a call that says nothing about
// Redis's health: its caller gave up, or the engine closed under it.
var errExcluded = errors.New("redis: call abandoned")

// errFailed marks, for the breaker, a call that found Redis unusable.
var errFailed = errors.New("redis: unreachable")

func newBreaker(name string, m *metrics, log func(from, to gobreaker.State)) *gobreaker.TwoStepCircuitBreaker[struct{}] {
	return gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        name,
		MaxRequests: 1,
		Timeout:     breakerOpen,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= breakerTrip },
		IsExcluded:  func(err error) bool { return errors.Is(err, errExcluded) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			m.breaker.Set(float64(breakerLevel(to)))
			log(from, to)
		},
	})
}

// breakerLevel is the gauge value of a breaker state.
func breakerLevel(s gobreaker.State) int {
	switch s {
	case gobreaker.StateHalfOpen:
		return 1
	case gobreaker.StateOpen:
		return 2
	}
	return 0
}

// unavailable is the error of a call that could not reach Redis: the
// client sees "engine unavailable", the log sees why.
func unavailable(op string, cause error) error {
	return &protocol.Error{Code: protocol.CodeUnavailable, Message: "engine unavailable: " + op, Cause: cause}
}

// call runs fn against Redis for op, behind the breaker, bounded by
// cfg.Timeout. It maps what fails to the engine's errors:
//
//   - ctx ended: ctx.Err(), as core.Store asks;
//   - the engine closed meanwhile: core.ErrClosed;
//   - Redis unreachable, too slow, loading or without a master, or the
//     breaker open: a *protocol.Error with CodeUnavailable;
//   - any other error reply (a bug, not an outage): wrapped as internal.
//
// Every error is counted under op.
func (e *Engine) call(ctx context.Context, op string, fn func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	done, err := e.breaker.Allow()
	if err != nil {
		e.metrics.errors.WithLabelValues(op).Inc()
		return unavailable(op, fmt.Errorf("circuit breaker %s: %w", e.breaker.State(), err))
	}
	cctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	err = fn(cctx)
	cancel()
	out, verdict := e.classify(ctx, op, err)
	done(verdict)
	if out != nil {
		e.metrics.errors.WithLabelValues(op).Inc()
	}
	return out
}

// classify returns what a call of op that ended with err returns, and
// what it tells the breaker (nil: Redis answered).
func (e *Engine) classify(ctx context.Context, op string, err error) (out, verdict error) {
	switch {
	case err == nil:
		e.healthy()
		return nil, nil
	case ctx.Err() != nil:
		return ctx.Err(), errExcluded
	case e.closed.Load():
		return fmt.Errorf("redis: %s: %w", op, core.ErrClosed), errExcluded
	case isReply(err) && !outageReply(err):
		e.healthy()
		return fmt.Errorf("redis: %s: %w", op, err), nil
	}
	e.unhealthy(err)
	return unavailable(op, err), errFailed
}

// isReply reports whether err is an error reply from Redis, as opposed
// to a failure to reach it.
func isReply(err error) bool {
	var re goredis.Error
	return errors.As(err, &re) && !errors.Is(err, goredis.ErrClosed)
}

// outageReply reports whether an error reply means Redis cannot serve
// right now: loading its data, busy in a script, without a master, or a
// cluster in transition.
func outageReply(err error) bool {
	for _, p := range []string{"LOADING", "BUSY", "MASTERDOWN", "READONLY", "CLUSTERDOWN", "TRYAGAIN", "MISCONF"} {
		if goredis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return strings.Contains(err.Error(), "max number of clients")
}
