package node

import (
	"context"
	"time"

	"github.com/chatd/chatd/featureflags/rollout"
)

// keyRollouts is the shared state's key for the guarded rollout plans.
const keyRollouts = "rollouts"

// sharedPlans keeps the rollout plans in the cluster's shared state, in
// the rollout package's own format, so any node can answer the admin API
// and the leader can drive them. Two nodes that change plans at the same
// moment: the later write wins (admin changes are rare, and only the
// leader steps plans).
type sharedPlans struct{ be Backend }

func (s sharedPlans) Load(ctx context.Context) ([]rollout.Plan, error) {
	data, ok, err := s.be.Get(ctx, keyRollouts)
	if err != nil || !ok {
		return nil, err
	}
	return rollout.DecodePlans(data)
}

func (s sharedPlans) Save(ctx context.Context, plans []rollout.Plan) error {
	data, err := rollout.EncodePlans(plans)
	if err != nil {
		return err
	}
	return s.be.Set(ctx, keyRollouts, data)
}

// rolloutLoadTimeout bounds the node's reading of the rollout plans
// before it serves: a shared store that does not answer in time leaves
// them to Run's ticks.
const rolloutLoadTimeout = 5 * time.Second

// newRollouts builds the node's rollout manager: its plans in the shared
// state on a cluster (stepped by the leader only), else in cfg.RolloutStore
// (memory when nil); flag changes through the same writer as the admin
// API's. The meter it judges by is fed by this node's hub, so on a cluster
// the guards compare the leader's own users.
func (n *Node) newRollouts(cfg Config, meter *rollout.Meter) *rollout.Manager {
	rc := rollout.Config{Flags: n.Flags, Store: cfg.RolloutStore, Meter: meter, Logger: cfg.Logger,
		Metrics: cfg.Metrics, Tick: cfg.RolloutTick}
	if n.bridge != nil {
		rc.Flags, rc.Store, rc.Leader = n.bridge, sharedPlans{n.bridge.be}, n.bridge.leading
	}
	return rollout.NewManager(rc)
}

// LeadsRollouts reports whether this node steps and halts the rollout
// plans: a node alone always does; on a cluster, the live node with the
// smallest id.
func (n *Node) LeadsRollouts() bool { return n.bridge == nil || n.bridge.leading() }
