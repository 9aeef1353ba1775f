package node

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/chatd/chatd/transports/httpapi"
)

// Backend is the state shared by the nodes of a cluster, as the bridge
// uses it: a key/value store, capped logs, the live nodes, and the
// engine's health. The Redis engine is one (its Nodes converted to
// NodeStatus: see cmd/chatd); node does not import it. Every method but
// Node, OnReconnect and Health may fail while the backend is unreachable,
// and must return within a bounded time.
type Backend interface {
	// Node is this node's id among the live nodes.
	Node() string
	// Get returns the value at key, and whether there is one.
	Get(ctx context.Context, key string) ([]byte, bool, error)
	// Set stores val at key.
	Set(ctx context.Context, key string, val []byte) error
	// LogPush adds entry at the head of the log at key, keeping the
	// newest keep entries.
	LogPush(ctx context.Context, key string, entry []byte, keep int) error
	// LogRange returns the newest n entries of the log at key, newest
	// first.
	LogRange(ctx context.Context, key string, n int) ([][]byte, error)
	// Nodes lists the live nodes, this one included, each with the Info
	// it last reported.
	Nodes(ctx context.Context) ([]NodeStatus, error)
	// OnReconnect registers fn, called after an outage of the backend,
	// when what was missed meanwhile must be read again. fn must not
	// block.
	OnReconnect(fn func())
	// Health returns nil while the backend is usable.
	Health() error
}

// NodeStatus is one live node as the backend knows it: Info is what the
// node reported of itself (an httpapi.NodeInfo, from InfoSource).
type NodeStatus struct {
	ID, Addr string
	Since    time.Time
	Info     json.RawMessage
}

// InfoSource is the engine's Info callback for a node built after the
// engine, as it must be (the node is built over its engine): the engine
// calls Info, which reports the node once Set has given it. Before that
// it reports nil. It is safe for concurrent use; the zero value is ready.
type InfoSource struct {
	n atomic.Pointer[Node]
}

// Info returns the node's httpapi.NodeInfo, or nil before Set.
func (s *InfoSource) Info() any {
	if n := s.n.Load(); n != nil {
		return n.Info()
	}
	return nil
}

// Set gives the node whose Info to report.
func (s *InfoSource) Set(n *Node) { s.n.Store(n) }

// Info returns what this node reports of itself: engine, level, its own
// auto level, sessions per transport and load.
func (n *Node) Info() httpapi.NodeInfo { return n.API.Info() }
