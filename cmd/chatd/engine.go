package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/bolt"
	chatredis "github.com/chatd/chatd/core/redis"
	"github.com/chatd/chatd/transports/node"
	"github.com/chatd/chatd/transports/node/redisnode"
)

// engine is what the node runs on: the embedded bbolt store, or Redis
// shared with other nodes (then cluster is its shared state).
type engine struct {
	core.Engine
	name    string       // "embedded" or "redis", for logs and the admin status
	cluster node.Backend // nil for the embedded engine
}

// openEngine opens --redis if given, else the embedded store under
// --data. id and addr name this node among a cluster's; info reports it.
func (m *Main) openEngine(ctx context.Context, reg prometheus.Registerer, id, addr string, info *node.InfoSource) (engine, error) {
	c := m.Config
	if c.Redis != "" {
		// go-redis's own lines (dial and pool trouble) go to our log, not
		// to stderr; it keeps one logger per process.
		chatredis.SetClientLogger(m.log)
		e, err := chatredis.Open(ctx, chatredis.Config{
			URL: c.Redis, Node: id, Addr: addr, MaxMessages: c.HistoryMax, MaxAge: c.HistoryAge,
			AcceptRisk: c.RedisRisk, Info: info.Info, Logger: m.log, Metrics: reg,
		})
		if errors.Is(err, chatredis.ErrNotDurable) {
			return engine{}, fmt.Errorf("--redis: %w; run Redis with appendonly yes and appendfsync always, "+
				"or pass --redis-accept-risk to start anyway", err)
		}
		if err != nil {
			return engine{}, fmt.Errorf("--redis: %w", err)
		}
		return engine{Engine: e, name: "redis", cluster: redisnode.Backend(e)}, nil
	}
	if err := os.MkdirAll(c.Data, 0o755); err != nil {
		return engine{}, fmt.Errorf("data directory: %w", err)
	}
	store, err := bolt.Open(bolt.Config{
		Path:        filepath.Join(c.Data, "chat.db"),
		MaxMessages: c.HistoryMax,
		MaxAge:      c.HistoryAge,
		Logger:      m.log,
	})
	if errors.Is(err, bolt.ErrLocked) {
		return engine{}, fmt.Errorf("%w: is another chatd running on --data %s?", err, c.Data)
	}
	return engine{Engine: store, name: "embedded"}, err
}

// nodeIdentity returns this node's id and advertised address: the
// configured ones, else hostname-port-<random> and, for a listener on every
// interface, hostname:port (the bound address otherwise).
func (m *Main) nodeIdentity(bound net.Addr) (id, addr string) {
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	lhost, port, err := net.SplitHostPort(bound.String())
	if err != nil {
		lhost, port = "", bound.String()
	}
	id, addr = m.Config.NodeID, m.Config.AdvertiseAddr
	if id == "" {
		// A random tail: a node restarted within its lease is a new
		// life, never mistaken for the one that died (whose presence and
		// connection counts the cluster is still reaping).
		id = host + "-" + port + "-" + randomTail()
	}
	if addr == "" {
		addr = bound.String()
		if ip := net.ParseIP(lhost); lhost == "" || (ip != nil && ip.IsUnspecified()) {
			addr = net.JoinHostPort(host, port)
		}
	}
	return id, addr
}

// randomTail is 6 random hex digits.
func randomTail() string {
	var b [3]byte
	rand.Read(b[:]) // never fails: see crypto/rand.Read
	return hex.EncodeToString(b[:])
}
