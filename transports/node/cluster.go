package node

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/degrade"
	"github.com/chatd/chatd/featureflags"
	"github.com/chatd/chatd/transports/httpapi"
)

// The bridge makes the level and the flags cluster-wide over a Backend.
//
// Shared state (keys of the backend) and control topics (Hub.Announce,
// which reaches every node, this one included):
//
//	key "level"           the last operator decision: degrade.Pin + node (pinRecord)
//	key "flags"           the whole flag state (flagsRecord)
//	log "level.history"   level changes, each logged once, by the node that made it
//	log "flags.audit"     flag changes, logged by the node that wrote them
//	topic "level"         a pinRecord, just written
//	topic "level.auto"    a node's own auto level (autoRecord)
//	topic "flags"         a flagsRecord, just written
//
// The level. A pin set on any node (SetManual, SetAuto, through the admin
// API) is written to "level" and announced; every node applies it with
// ApplyPin, the later decision winning, so it expires everywhere at the
// same wall-clock time. In auto mode each node announces its own auto
// level; each node's floor is the highest auto level among the other live
// nodes (Backend.Nodes), so the level in force is the same on every node:
// the most loaded node's. A dead node drops out at the next sync.
//
// Flags. An admin change (Update) or a flags file (Replace) is written to
// "flags" as the whole state and announced; every node replaces its store
// with it. A file is shared only when its state differs from the last file
// state shared, so restarting a node with the same file does not undo admin
// changes made since.
//
// Catching up. Every sync interval, at start and after a backend outage
// (OnReconnect), the bridge re-reads "level", "flags" and the live nodes, and
// applies what is newer than what it holds; so a node that missed an
// announcement catches up within one interval. A local pin made while the
// backend was down is shared then, unless a later one was made elsewhere.
type bridge struct {
	// Static after construction.
	be     Backend
	self   string
	hub    *core.Hub
	ctl    *degrade.Controller
	flags  *featureflags.Store
	node   *Node // for its API, set by New before any admin request
	log    *slog.Logger
	every  time.Duration // the sync interval
	resync chan struct{} // a re-read asked for by OnReconnect; holds one
	levels <-chan degrade.Change
	autos  <-chan degrade.Change
	unsub  func()

	mu       sync.Mutex
	sharedAt time.Time  // At of the newest pin known to be shared. Guarded by mu.
	pinNode  string     // the node that made that pin. Guarded by mu.
	others   autoLevels // the other live nodes' auto levels. Guarded by mu.
	flagsAt  time.Time  // At of the flag state last applied. Guarded by mu.

	// leader: this node has the smallest id among the live nodes, so it
	// drives the rollout plans. Set by syncNodes; kept while the backend
	// is down.
	leader atomic.Bool

	// writeMu serialises flag writes, each a read-modify-write of "flags";
	// it is held across backend calls, and never by a control listener.
	writeMu sync.Mutex
	retry   *fileState // a file state not shared yet (backend down). Guarded by writeMu.
}

// The keys, logs and topics of the shared state.
const (
	keyLevel     = "level"
	keyFlags     = "flags"
	logLevels    = "level.history"
	logFlags     = "flags.audit"
	topicLevel   = "level"
	topicAuto    = "level.auto"
	topicFlags   = "flags"
	levelLogKeep = 100 // as the controller's own history
	flagLogKeep  = 200 // as the flag store's audit
	callTimeout  = 2 * time.Second
)

// pinRecord is key "level" and topic "level": a pin and the node that made it.
type pinRecord struct {
	degrade.Pin
	Node string `json:"node"`
}

// autoRecord is topic "level.auto": a node's own auto level.
type autoRecord struct {
	Node string `json:"node"`
	autoReport
}

// newBridge wires the bridge into the node's hub and controller and reads
// the shared state once; run keeps it in step.
func newBridge(be Backend, n *Node, every time.Duration, log *slog.Logger) *bridge {
	if every <= 0 {
		every = time.Second
	}
	b := &bridge{be: be, self: be.Node(), hub: n.Hub, ctl: n.Controller, flags: n.Flags, node: n,
		log: log.With("component", "cluster"), every: every, resync: make(chan struct{}, 1), others: autoLevels{}}
	levels, stopLevels := b.ctl.Subscribe()
	autos, stopAutos := b.ctl.SubscribeAuto()
	b.levels, b.autos = levels, autos
	b.unsub = func() {
		stopLevels()
		stopAutos()
		for _, t := range []string{topicLevel, topicAuto, topicFlags} {
			b.hub.OnControl(t, nil)
		}
	}
	b.hub.OnControl(topicLevel, listener(b, topicLevel, b.applyPin))
	b.hub.OnControl(topicAuto, listener(b, topicAuto, b.onAuto))
	b.hub.OnControl(topicFlags, listener(b, topicFlags, b.applyFlags))
	be.OnReconnect(func() {
		select {
		case b.resync <- struct{}{}:
		default: // one is pending already
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	b.sync(ctx)
	return b
}

// run keeps this node and the shared state in step until ctx ends.
func (b *bridge) run(ctx context.Context) {
	defer b.unsub()
	b.shareAuto() // the others learn this node's level without waiting for its lease
	tick := time.NewTicker(b.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ch, ok := <-b.levels:
			if !ok {
				return
			}
			if !ch.Remote { // logged first: a node that hears of it finds it there
				b.call(ctx, func(ctx context.Context) { b.logLevel(ctx, ch) })
				b.call(ctx, b.sharePin)
			}
		case _, ok := <-b.autos:
			if !ok {
				return
			}
			b.shareAuto()
		case <-tick.C:
			b.call(ctx, b.sync)
		case <-b.resync:
			b.call(ctx, b.sync)
		}
	}
}

// call runs fn with a context bounded by callTimeout.
func (b *bridge) call(ctx context.Context, fn func(context.Context)) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	fn(ctx)
}

// listener returns topic's control listener: it decodes a T and hands it
// to apply, which must not block (see Hub.OnControl).
func listener[T any](b *bridge, topic string, apply func(T)) func([]byte) {
	return func(data []byte) {
		var v T
		if err := json.Unmarshal(data, &v); err != nil {
			b.log.Warn("cluster: bad announcement", "topic", topic, "err", err)
			return
		}
		apply(v)
	}
}

// sync re-reads the shared state: the pin, the flags, the live nodes.
func (b *bridge) sync(ctx context.Context) {
	b.syncPin(ctx)
	b.syncFlags(ctx)
	b.syncNodes(ctx)
}

// ---- the pin ----

// applyPin applies a shared pin unless a later decision is in force.
func (b *bridge) applyPin(rec pinRecord) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ok, err := b.ctl.ApplyPin(rec.Pin)
	if err != nil {
		b.log.Warn("cluster: shared level not applied", "node", rec.Node, "err", err)
		return
	}
	if ok {
		b.sharedAt, b.pinNode = rec.At, rec.Node
	}
}

// sharePin writes and announces this node's pin if it is newer than the
// shared one: an operator's decision made here.
func (b *bridge) sharePin(ctx context.Context) {
	b.mu.Lock()
	p := b.ctl.Pin()
	fresh := p.At.After(b.sharedAt)
	b.mu.Unlock()
	if !fresh {
		return
	}
	data, err := b.writePin(ctx, pinRecord{Pin: p, Node: b.self})
	if err != nil {
		b.log.Warn("cluster: level not shared yet; will retry", "err", err)
		return
	}
	b.mu.Lock()
	if p.At.After(b.sharedAt) {
		b.sharedAt, b.pinNode = p.At, b.self
	}
	b.mu.Unlock()
	b.hub.Announce(core.Control{Topic: topicLevel, Data: data})
}

func (b *bridge) writePin(ctx context.Context, rec pinRecord) ([]byte, error) {
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	return data, b.be.Set(ctx, keyLevel, data)
}

// syncPin applies the shared pin if it is newer than this node's, and
// shares this node's if it is newer than the shared one: a decision made
// while the backend was down, or a write that lost a race.
func (b *bridge) syncPin(ctx context.Context) {
	data, ok, err := b.be.Get(ctx, keyLevel)
	if err != nil {
		return // the backend is down; Health says so, and the next sync retries
	}
	var rec pinRecord
	if ok {
		if err := json.Unmarshal(data, &rec); err != nil {
			b.log.Warn("cluster: bad shared level; rewriting it", "err", err)
			ok = false
		} else {
			b.applyPin(rec)
		}
	}
	b.mu.Lock()
	p, node := b.ctl.Pin(), b.pinNode
	unshared := p.At.After(b.sharedAt)
	b.mu.Unlock()
	switch {
	case p.At.IsZero() || (ok && !rec.At.Before(p.At)):
		return
	case unshared:
		b.sharePin(ctx)
	default: // the shared key lost the latest pin: put it back
		if _, err := b.writePin(ctx, pinRecord{Pin: p, Node: node}); err != nil {
			b.log.Warn("cluster: shared level not repaired", "err", err)
		}
	}
}

// logLevel adds a change this node made to the cluster's level history.
// A pin's expiry happens on every node at once: only the node that set
// the pin logs it.
func (b *bridge) logLevel(ctx context.Context, ch degrade.Change) {
	if ch.By == "expiry" {
		b.mu.Lock()
		mine := b.pinNode == b.self
		b.mu.Unlock()
		if !mine {
			return
		}
	}
	entry, _ := json.Marshal(httpapi.LevelChange{From: int(ch.From), To: int(ch.To), Mode: ch.Mode,
		By: ch.By, At: ch.At, Node: b.self})
	if err := b.be.LogPush(ctx, logLevels, entry, levelLogKeep); err != nil {
		b.log.Warn("cluster: level change not logged", "err", err)
	}
}

// ---- the auto levels ----

// shareAuto announces this node's own auto level.
func (b *bridge) shareAuto() {
	l, at := b.ctl.Auto()
	data, _ := json.Marshal(autoRecord{Node: b.self, autoReport: autoReport{Level: l, At: at}})
	b.hub.Announce(core.Control{Topic: topicAuto, Data: data})
}

// onAuto takes another node's auto level (topic "level.auto").
func (b *bridge) onAuto(rec autoRecord) {
	if rec.Node == b.self {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.others.report(rec.Node, rec.autoReport)
	b.setFloorLocked()
}

// syncNodes reads the live nodes: the dead drop out of the floor, and
// each live node's Info gives its auto level, in case an announcement
// was missed.
func (b *bridge) syncNodes(ctx context.Context) {
	nodes, err := b.be.Nodes(ctx)
	if err != nil {
		return // keep the last known levels while the backend is down
	}
	live := make(map[string]bool, len(nodes))
	lead := true
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range nodes {
		if n.ID == b.self {
			continue
		}
		live[n.ID] = true
		lead = lead && b.self < n.ID
		var in httpapi.NodeInfo
		if len(n.Info) > 0 && json.Unmarshal(n.Info, &in) == nil && !in.AutoAt.IsZero() {
			b.others.report(n.ID, autoReport{Level: degrade.Level(in.AutoLevel), At: in.AutoAt})
		}
	}
	b.others.keepOnly(live)
	b.setFloorLocked()
	b.leader.Store(lead)
}

// leading reports whether this node drives the cluster's rollout plans.
func (b *bridge) leading() bool { return b.leader.Load() }

func (b *bridge) setFloorLocked() {
	l, by := b.others.floor()
	if err := b.ctl.SetFloor(l, by); err != nil {
		b.log.Warn("cluster: floor not set", "level", int(l), "err", err)
	}
}
