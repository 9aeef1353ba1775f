package httpapi

import (
	"context"
	"time"

	"github.com/chatd/chatd/degrade"
	"github.com/chatd/chatd/featureflags"
)

// Node describes this server in the admin status: its identity, static
// after construction.
type Node struct {
	ID      string    `json:"id"`
	Addr    string    `json:"addr"` // the address others reach it at
	Engine  string    `json:"engine"`
	Started time.Time `json:"started"`
}

// NodeInfo is what a node reports of itself: the admin status lists it
// for every node. On a cluster each node hands it to the engine, which
// keeps it with the node's lease, so every node can list every other.
type NodeInfo struct {
	Engine      string         `json:"engine"`
	Level       int            `json:"level"` // in force on that node
	Mode        degrade.Mode   `json:"mode,omitempty"`
	AutoLevel   int            `json:"auto_level"`       // its own breakers' level
	AutoAt      time.Time      `json:"auto_at,omitzero"` // when AutoLevel last changed
	Connections map[string]int `json:"connections"`      // sessions per transport
	Load        Load           `json:"load"`
}

// NodeStatus is one entry of the admin status's node list: what the
// engine knows of a live node, and what it reports of itself.
type NodeStatus struct {
	ID      string    `json:"id"`
	Addr    string    `json:"addr"`
	Since   time.Time `json:"since"`
	Started time.Time `json:"started"` // Since again; the ops page reads it
	NodeInfo
}

// Load is a node's current readings, for the ops page's charts.
type Load struct {
	Sessions    int     `json:"sessions"`
	DeliveryMS  float64 `json:"delivery_ms"` // recent average, fan-out to write
	FanoutMS    float64 `json:"fanout_ms"`
	StoreMS     float64 `json:"store_ms"` // recent average durable append
	SlowClosed  uint64  `json:"slow_closed"`
	WriteFailed uint64  `json:"write_failed"`
	Dropped     uint64  `json:"dropped"`
}

// LevelChange is one entry of the level history. On a cluster, Node is
// the node that made it.
type LevelChange struct {
	From   int          `json:"from"`
	To     int          `json:"to"`
	Mode   degrade.Mode `json:"mode"`
	By     string       `json:"by"`
	At     time.Time    `json:"at"`
	Node   string       `json:"node,omitempty"`
	Remote bool         `json:"remote,omitempty"` // applied from another node
}

// Cluster is the state that the nodes sharing one engine hold in common,
// as the admin API reads and changes it. transports/node's bridge
// implements it. Its methods may fail while the shared state cannot be
// reached; Update's error is then a *protocol.Error (unavailable).
type Cluster interface {
	// Nodes lists the live nodes, this one included.
	Nodes(ctx context.Context) ([]NodeStatus, error)
	// LevelHistory returns the cluster's recent level changes, oldest first.
	LevelHistory(ctx context.Context) ([]LevelChange, error)
	// FlagAudit returns the cluster's recent flag changes, oldest first.
	FlagAudit(ctx context.Context) ([]featureflags.Change, error)
	// Update changes a flag on every node.
	featureflags.Writer
}

// Info returns what this node reports of itself (see NodeInfo). Without a
// Policy the level is 0 and the mode empty.
func (s *Server) Info() NodeInfo {
	in := NodeInfo{Engine: s.cfg.Node.Engine, Connections: map[string]int{"websocket": 0, "sse": 0, "poll": 0}}
	if s.cfg.Policy != nil && s.cfg.Policy.Controller != nil {
		d := s.cfg.Policy.Controller
		own, at := d.Auto()
		in.Level, in.AutoLevel, in.AutoAt = int(d.Level()), int(own), at
		in.Mode, _ = d.Mode()
	}
	for name, n := range s.cfg.Hub.Sessions() {
		in.Connections[name] = n
	}
	ls := s.cfg.Hub.Stats()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	in.Load = Load{Sessions: ls.Sessions, DeliveryMS: ms(ls.DeliveryLatency), FanoutMS: ms(ls.FanoutLatency),
		StoreMS: ms(ls.StoreLatency), SlowClosed: ls.SlowClosed, WriteFailed: ls.WriteFailed, Dropped: ls.Dropped}
	return in
}

// Self returns this node's entry of the node list.
func (s *Server) Self() NodeStatus {
	n := s.cfg.Node
	return NodeStatus{ID: n.ID, Addr: n.Addr, Since: n.Started, Started: n.Started, NodeInfo: s.Info()}
}
