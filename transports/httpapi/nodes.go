package httpapi

import (
	"context"
	rtmetrics "runtime/metrics"
	"time"

	"github.com/prometheus/procfs"

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

	// The alert figures, this node's, over the last five minutes (see
	// docs/OPERATIONS.md, "Metrics").
	//
	// AbnormalPerMin is abnormal disconnects a minute, by transport
	// (every close code but 1000, 1001, 4001, 4012 and 4013).
	AbnormalPerMin map[string]float64 `json:"abnormal_disconnects_per_min"`
	// WSAbnormalRate is abnormal WebSocket disconnects a minute per open
	// WebSocket session (at least one): the disconnect alert fires above
	// 0.01.
	WSAbnormalRate float64 `json:"ws_abnormal_rate"`
	// ClientRTTP99MS is the 99th percentile of the round trips clients
	// reported; the round trip alert fires above 300. ClientRTTReports
	// says how many it stands on.
	ClientRTTP99MS   float64 `json:"client_rtt_p99_ms"`
	ClientRTTReports uint64  `json:"client_rtt_reports"`
	// ErrorsPerMin is error replies a minute, by code, in sessions and
	// REST answers together.
	ErrorsPerMin map[string]float64 `json:"errors_per_min"`
	// AnonRSSBytes is the process's anonymous resident memory (RssAnon),
	// absent where the system does not report it; HeapInuseBytes is the
	// Go heap in use, the memory alert's fallback.
	AnonRSSBytes   uint64 `json:"anon_rss_bytes,omitempty"`
	HeapInuseBytes uint64 `json:"heap_inuse_bytes"`
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
	// A poll client counts while it has polled within twice its interval.
	for name, n := range s.cfg.Hub.Connections() {
		in.Connections[name] = n
	}
	ls := s.cfg.Hub.Stats()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	in.Load = Load{Sessions: ls.Sessions, DeliveryMS: ms(ls.DeliveryLatency), FanoutMS: ms(ls.FanoutLatency),
		StoreMS: ms(ls.StoreLatency), SlowClosed: ls.SlowClosed, WriteFailed: ls.WriteFailed, Dropped: ls.Dropped}
	fig := s.cfg.Hub.Figures()
	in.Load.AbnormalPerMin, in.Load.ErrorsPerMin = fig.AbnormalPerMin, fig.ErrorsPerMin
	in.Load.WSAbnormalRate = fig.AbnormalPerMin["websocket"] / float64(max(1, in.Connections["websocket"]))
	in.Load.ClientRTTP99MS, in.Load.ClientRTTReports = ms(fig.RTTP99), fig.RTTReports
	in.Load.AnonRSSBytes, in.Load.HeapInuseBytes = anonRSS(), heapInuse()
	return in
}

// anonRSS returns the process's anonymous resident memory (RssAnon in
// /proc/self/status), or 0 where the system does not report it. The
// memory alert reads it rather than the RSS, which counts the store's
// file mapping.
func anonRSS() uint64 {
	p, err := procfs.Self()
	if err != nil {
		return 0
	}
	st, err := p.NewStatus()
	if err != nil {
		return 0
	}
	return st.RssAnon
}

// heapInuse returns the Go heap's spans in use, as
// go_memstats_heap_inuse_bytes reports it, without stopping the world.
func heapInuse() uint64 {
	samples := []rtmetrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"},
	}
	rtmetrics.Read(samples)
	var n uint64
	for _, s := range samples {
		if s.Value.Kind() == rtmetrics.KindUint64 {
			n += s.Value.Uint64()
		}
	}
	return n
}

// Self returns this node's entry of the node list.
func (s *Server) Self() NodeStatus {
	n := s.cfg.Node
	return NodeStatus{ID: n.ID, Addr: n.Addr, Since: n.Started, Started: n.Started, NodeInfo: s.Info()}
}
