package transporttest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/core/auth"
	chatredis "github.com/chatd/chatd/core/redis"
	"github.com/chatd/chatd/core/redis/redistest"
	"github.com/chatd/chatd/transports/httpapi"
	"github.com/chatd/chatd/transports/node"
	"github.com/chatd/chatd/transports/node/redisnode"
)

// ClusterLease is the Redis engine's node lease in a Cluster: how long a
// killed node's connections, presence and level still count.
const ClusterLease = time.Second

// clusterMoveWindow spreads the tier moves of a level change. chatd's
// 10 s would hide the propagation the tests measure.
const clusterMoveWindow = 10 * time.Millisecond

// Cluster is several nodes sharing one real redis-server, as chatd runs
// with --redis: each node has its own Redis engine (a distinct node id,
// one key prefix per cluster), hub, router and loopback listener. They
// trust the same JWT secret and share the ticket key, so a ticket minted
// on one node is redeemed on any other. With Options.Degrade the nodes
// share the level and the flags through the cluster bridge.
type Cluster struct {
	Redis  *redistest.Server // static after NewCluster
	Prefix string            // every key and channel of this cluster; static
	// Nodes are the nodes as test servers: dial a client to Nodes[i] to
	// connect it to node i. Node i has id ID(i). Static after NewCluster.
	Nodes []*Env

	servers []*server
	engines []*chatredis.Engine
	state   []nodeState // owned by the test goroutine
}

type nodeState int

const (
	nodeUp nodeState = iota
	nodeKilled
	nodeStopped
)

var clusters atomic.Uint64

// NewCluster starts a redis-server for the test (durable: AOF, fsync
// always) and n nodes on it. Everything stops when the test ends.
func NewCluster(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	return NewClusterOn(t, redistest.Start(t, redistest.Options{Durable: true}), n, opts)
}

// NewClusterOn starts n nodes on redis, under a key prefix of their own,
// so that several clusters (the subtests of one test) can share one
// redis-server.
func NewClusterOn(t testing.TB, redis *redistest.Server, n int, opts Options) *Cluster {
	t.Helper()
	c := &Cluster{Redis: redis, Prefix: fmt.Sprint("tt", clusters.Add(1)), state: make([]nodeState, n)}
	t.Cleanup(func() {
		for i := range c.servers {
			c.Stop(t, i)
		}
	})
	key := auth.DeriveTicketKey([]byte(Secret))
	for i := range n {
		c.start(t, i, opts, auth.NewTickets(key, time.Minute, nil))
	}
	return c
}

// ID is node i's id in the cluster: node-a, node-b…
func (c *Cluster) ID(i int) string { return fmt.Sprintf("node-%c", 'a'+i) }

// start opens node i's engine and serves the node on a fresh port.
func (c *Cluster) start(t testing.TB, i int, opts Options, tickets *auth.Tickets) {
	t.Helper()
	log := opts.logger()
	ln := listen(t, "")
	id, addr := c.ID(i), ln.Addr().String()
	info := &node.InfoSource{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	engine, err := chatredis.Open(ctx, chatredis.Config{
		URL: c.Redis.URL(), Node: id, Addr: addr, Prefix: c.Prefix, MaxMessages: opts.MaxMessages,
		Lease: ClusterLease, Info: info.Info, Logger: log,
	})
	if err != nil {
		ln.Close()
		t.Fatalf("node %s: %v", id, err)
	}
	e := &Env{Verifier: newVerifier(t), Tickets: tickets, opts: opts, log: log}
	cfg := nodeConfig(opts, engine, e.Verifier, tickets, log)
	cfg.MoveWindow = clusterMoveWindow
	cfg.Info = httpapi.Node{ID: id, Addr: addr, Engine: "redis", Started: time.Now()}
	if opts.Degrade {
		cfg.Cluster = redisnode.Backend(engine)
	}
	s := serve(cfg, ln, nil)
	info.Set(s.Node)
	e.URL, e.Hub = s.URL, s.Node.Hub
	e.stop = func(testing.TB) {} // Cluster.Stop and Kill stop it
	c.Nodes = append(c.Nodes, e)
	c.servers = append(c.servers, s)
	c.engines = append(c.engines, engine)
}

// Node returns node i's wiring: its controller, flags, hub.
func (c *Cluster) Node(i int) *node.Node { return c.servers[i].Node }

// Token returns a token for user, good on every node.
func (c *Cluster) Token(t testing.TB, user string, claims Claims) string {
	t.Helper()
	return c.Nodes[0].Token(t, user, claims)
}

// Kill takes node i away as kill -9 would: its engine stops without
// deregistering (Abandon: the others still list it until its lease runs
// out, and its connections and presence still count until then), then its
// listener and every connection close at once. No session is told to go:
// no Hub.Shutdown, no disconnect envelope, no close frame.
func (c *Cluster) Kill(i int) {
	if c.state[i] != nodeUp {
		return
	}
	c.state[i] = nodeKilled
	c.servers[i].silence() // first, so that nothing the dying node does reaches a client
	c.engines[i].Abandon() // then, so that nothing it does reaches Redis
	c.servers[i].kill()
}

// Stop stops node i cleanly, as SIGTERM does: sessions told to go, the
// HTTP server stopped, the engine closed and the node deregistered. A
// killed node's leftovers (its goroutines, cut off) stop too. It is
// idempotent; the test's end stops every node.
func (c *Cluster) Stop(t testing.TB, i int) {
	t.Helper()
	was := c.state[i]
	if was == nodeStopped {
		return
	}
	c.state[i] = nodeStopped
	c.servers[i].close(t) // after Kill too: the cut-off hub still has goroutines
	if was == nodeKilled {
		return // Abandon has closed the engine
	}
	if err := c.engines[i].Close(); err != nil {
		t.Errorf("node %s: engine close: %v", c.ID(i), err)
	}
}
