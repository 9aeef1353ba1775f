package node

import (
	"context"
	"encoding/json"
	"slices"
	"sort"

	"github.com/chatd/chatd/featureflags"
	"github.com/chatd/chatd/transports/httpapi"
)

// The bridge is the admin API's view of the cluster.
var _ httpapi.Cluster = (*bridge)(nil)

// Nodes implements httpapi.Cluster: the live nodes, in id order, each
// with the Info it last reported at its heartbeat (none in a node's first
// moments); this node's is read now. This node is listed even if its
// lease has lapsed, since it is answering.
func (b *bridge) Nodes(ctx context.Context) ([]httpapi.NodeStatus, error) {
	nodes, err := b.be.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	self := b.node.API.Self()
	out := make([]httpapi.NodeStatus, 0, len(nodes)+1)
	found := false
	for _, n := range nodes {
		st := httpapi.NodeStatus{ID: n.ID, Addr: n.Addr, Since: n.Since, Started: n.Since}
		if n.ID == b.self {
			st.NodeInfo, found = self.NodeInfo, true
		} else if len(n.Info) > 0 {
			if err := json.Unmarshal(n.Info, &st.NodeInfo); err != nil {
				b.log.Debug("cluster: a node's info does not decode", "node", n.ID, "err", err)
			}
		}
		if st.Engine == "" { // no Info yet (a node just started): it shares this node's engine
			st.Engine = self.Engine
		}
		out = append(out, st)
	}
	if !found {
		self.ID = b.self
		out = append(out, self)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// LevelHistory implements httpapi.Cluster: the cluster's level history,
// oldest first.
func (b *bridge) LevelHistory(ctx context.Context) ([]httpapi.LevelChange, error) {
	return readLog[httpapi.LevelChange](ctx, b, logLevels, levelLogKeep)
}

// FlagAudit implements httpapi.Cluster: the cluster's flag audit, oldest
// first.
func (b *bridge) FlagAudit(ctx context.Context) ([]featureflags.Change, error) {
	return readLog[featureflags.Change](ctx, b, logFlags, flagLogKeep)
}

// readLog returns a log's newest n entries, oldest first; entries that do
// not decode are skipped.
func readLog[T any](ctx context.Context, b *bridge, key string, n int) ([]T, error) {
	raw, err := b.be.LogRange(ctx, key, n)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(raw))
	for _, r := range raw {
		var v T
		if err := json.Unmarshal(r, &v); err != nil {
			b.log.Debug("cluster: a log entry does not decode", "log", key, "err", err)
			continue
		}
		out = append(out, v)
	}
	slices.Reverse(out)
	return out, nil
}
