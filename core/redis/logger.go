package redis

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// SetClientLogger routes go-redis's own log lines (connection pool and
// dial trouble, which it prints to stderr by default) to l, at warn
// level, marked component=go-redis. go-redis keeps one logger per
// process (goredis.SetLogger), not one per client, so this is process
// wide and Open does not do it: call it once from main.
func SetClientLogger(l *slog.Logger) { goredis.SetLogger(clientLogger{l}) }

// clientLogger is go-redis's logging interface over a slog.Logger.
type clientLogger struct{ l *slog.Logger }

func (c clientLogger) Printf(ctx context.Context, format string, v ...any) {
	if ctx == nil {
		ctx = context.Background()
	}
	msg := strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: ")
	c.l.Log(ctx, slog.LevelWarn, "go-redis: "+msg, "component", "go-redis")
}
