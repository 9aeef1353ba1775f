package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Defaults for the zero fields of Config.
const (
	DefaultPrefix        = "chatd"
	DefaultMaxMessages   = 10000
	DefaultSweepInterval = time.Minute
	DefaultLease         = 10 * time.Second
	DefaultTimeout       = 2 * time.Second

	// dialTimeout bounds one connection attempt; below Timeout so that a
	// dead address fails a call rather than eating its whole budget.
	dialTimeout = time.Second
)

// Config configures an Engine. The zero value is valid except for URL.
type Config struct {
	// URL is the server: redis://[user:password@]host:port/db or
	// unix:///path/to/socket (goredis.ParseURL). Required.
	URL string

	// Node is this node's id in the registry (Nodes), unique among live
	// nodes; no NUL byte. Default: hostname-pid-<4 random hex>. A node
	// restarted under the same id cleans up what its earlier life left.
	Node string

	// Addr is this node's advertised address, shown in Nodes.
	Addr string

	// Prefix starts every key and channel the engine uses; several
	// deployments (or tests) may share one Redis with different prefixes.
	// It must not contain '{' or '}'. Default "chatd".
	Prefix string

	// MaxMessages is how many messages each room retains; the append
	// that crosses it prunes the oldest. Default 10000; negative: no count
	// limit.
	MaxMessages int

	// MaxAge prunes messages older than this, by a sweep every
	// SweepInterval. Default 0: no age limit.
	MaxAge time.Duration

	// SweepInterval is how often the age sweep runs when MaxAge is set.
	// Default one minute.
	SweepInterval time.Duration

	// Lease is how long the node stays listed in Nodes without a
	// heartbeat; it heartbeats every Lease/3. Default 10s.
	Lease time.Duration

	// Timeout bounds every command, and how long an Append waits for its
	// room's subscription. Default 2s.
	Timeout time.Duration

	// AcceptRisk lets Open go on, with a loud warning, when Redis does
	// not persist every write before answering (appendonly yes and
	// appendfsync always), so that an acknowledged message could be lost.
	AcceptRisk bool

	// Info, if set, is called at each heartbeat; its JSON is the node's
	// Info in Nodes.
	Info func() any

	// Now is the clock that stamps messages and drives age retention.
	// Default time.Now. Leases use Redis's clock.
	Now func() time.Time

	// Logger receives outages, resyncs and data-loss reports. Default
	// slog.Default().
	Logger *slog.Logger

	// Metrics registers the engine's collectors (chat_redis_*), once: one
	// engine per registry. Nil: a private registry, so none are exported.
	Metrics prometheus.Registerer
}

func (c Config) withDefaults() (Config, error) {
	if c.URL == "" {
		return c, fmt.Errorf("redis: Config.URL is empty")
	}
	if strings.ContainsAny(c.Prefix, "{}") {
		return c, fmt.Errorf("redis: Config.Prefix %q has a brace, which would break the {room} hash tags", c.Prefix)
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Node == "" {
		c.Node = defaultNode()
	}
	if strings.IndexByte(c.Node, 0) >= 0 {
		return c, fmt.Errorf("redis: Config.Node %q has a NUL byte, which separates node and user in presence fields", c.Node)
	}
	if c.MaxMessages == 0 {
		c.MaxMessages = DefaultMaxMessages
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.Lease <= 0 {
		c.Lease = DefaultLease
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = prometheus.NewRegistry()
	}
	return c, nil
}

// defaultNode is hostname-pid-<4 random hex>: unique across restarts, so
// that a restarted node is never mistaken for its previous life.
func defaultNode() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randomHex(2))
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails on supported platforms
	return hex.EncodeToString(b)
}

// clientOptions turns cfg.URL into the client's options: every command
// bounded by Timeout, no retries (the breaker and the callers decide),
// one dial attempt, RESP2 and none of the client's optional handshakes.
func (c Config) clientOptions() (*goredis.Options, error) {
	o, err := goredis.ParseURL(c.URL)
	if err != nil {
		return nil, fmt.Errorf("redis: Config.URL: %w", err)
	}
	o.DialTimeout = min(dialTimeout, c.Timeout)
	o.ReadTimeout = c.Timeout
	o.WriteTimeout = c.Timeout
	o.ContextTimeoutEnabled = true
	o.MaxRetries = -1
	o.DialerRetries = 1
	o.PoolTimeout = c.Timeout
	o.Protocol = 2
	o.DisableIdentity = true
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	dial := goredis.NewDialer(o)
	o.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if ctx.Value(noDial{}) != nil {
			return nil, errNoDial
		}
		return dial(ctx, network, addr)
	}
	return o, nil
}

// noDial marks the context of every call on the pub/sub link but the one
// that opens it (Engine.replace): goredis.PubSub redials by itself, under
// its own lock, when a read or write fails, and that dial could hold up a
// Subscribe on the hub's path. With the mark it fails at once instead,
// and the reader, which notices the failure, reconnects on its own terms.
type noDial struct{}

var errNoDial = errors.New("redis: pub/sub link is reconnected by its reader")
