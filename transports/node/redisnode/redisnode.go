// Package redisnode adapts the Redis engine (core/redis) to the shared
// state a node's cluster bridge uses (node.Backend), so that package node
// itself does not depend on the Redis engine. cmd/chatd and the cluster
// tests use it.
package redisnode

import (
	"context"

	chatredis "github.com/chatd/chatd/core/redis"
	"github.com/chatd/chatd/transports/node"
)

// Backend returns e as a node.Backend. Every method is e's, but Nodes,
// whose entries it converts.
func Backend(e *chatredis.Engine) node.Backend { return backend{e} }

type backend struct{ *chatredis.Engine }

var _ node.Backend = backend{}

// Nodes implements node.Backend.
func (b backend) Nodes(ctx context.Context) ([]node.NodeStatus, error) {
	ns, err := b.Engine.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]node.NodeStatus, len(ns))
	for i, n := range ns {
		out[i] = node.NodeStatus{ID: n.ID, Addr: n.Addr, Since: n.Since, Info: n.Info}
	}
	return out, nil
}
