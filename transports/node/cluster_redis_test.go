package node_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	chatredis "github.com/chatd/chatd/core/redis"
	"github.com/chatd/chatd/core/redis/redistest"
	"github.com/chatd/chatd/degrade"
	"github.com/chatd/chatd/featureflags"
	"github.com/chatd/chatd/featureflags/rollout"
	"github.com/chatd/chatd/transports/httpapi"
	"github.com/chatd/chatd/transports/node"
	"github.com/chatd/chatd/transports/node/redisnode"
)

// within bounds every wait for something another node does: the
// contract's 2 s for a change to reach every node.
const within = 2 * time.Second

// redisNode is a node on the Redis engine at srv, named id; its
// controller has one test signal, read when the test calls Step.
type redisNode struct {
	*testNode
	engine *chatredis.Engine
	load   *atomic.Int64
}

func startRedisNode(t *testing.T, srv *redistest.Server, id string) *redisNode {
	t.Helper()
	info := &node.InfoSource{}
	e, err := chatredis.Open(context.Background(), chatredis.Config{URL: srv.URL(), Node: id, Addr: id + ".test:80",
		Lease: time.Second, Timeout: 500 * time.Millisecond, Info: info.Info, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() }) // after the node's close, registered below
	load := &atomic.Int64{}
	n := startNodeWith(t, node.Config{Engine: e, Degrade: true, Cluster: redisnode.Backend(e),
		ClusterSync: 100 * time.Millisecond,
		Info:        httpapi.Node{ID: id, Addr: id + ".test:80", Engine: "redis", Started: time.Now()},
		Controller: degrade.Config{Tick: time.Hour, TripAfter: 1, Signals: []degrade.Signal{{
			Name: "test", Threshold: 1, Relief: degrade.LevelNoWS, Read: func() float64 { return float64(load.Load()) }}}},
	})
	info.Set(n.Node)
	return &redisNode{testNode: n, engine: e, load: load}
}

// waitLevel waits for a change on ch that ok accepts.
func waitLevel(t *testing.T, ch <-chan degrade.Change, what string, ok func(degrade.Change) bool) degrade.Change {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case c := <-ch:
			if ok(c) {
				return c
			}
		case <-timeout:
			t.Fatalf("%s: not seen within %v", what, within)
		}
	}
}

// waitFlag waits until n's store holds want.
func waitFlag(t *testing.T, n *redisNode, want featureflags.Flag) {
	t.Helper()
	wake, cancel := n.Flags.Subscribe()
	defer cancel()
	timeout := time.After(within)
	for {
		if got, _ := n.Flags.Snapshot().Get(want.Name); got == want {
			return
		}
		select {
		case <-wake:
		case <-timeout:
			got, _ := n.Flags.Snapshot().Get(want.Name)
			t.Fatalf("flag %s = %+v, want %+v within %v", want.Name, got, want, within)
		}
	}
}

// tripped starts nodes a and b on one Redis, trips a's breaker and waits
// for b to follow. It returns b's level changes from then on, and the
// change that followed.
func tripped(t *testing.T) (a, b *redisNode, levels <-chan degrade.Change, followed degrade.Change) {
	t.Helper()
	srv := redistest.Start(t, redistest.Options{Durable: true})
	a, b = startRedisNode(t, srv, "node-a"), startRedisNode(t, srv, "node-b")
	levels, cancel := b.Controller.Subscribe()
	t.Cleanup(cancel)
	a.load.Store(5)
	a.Controller.Step()
	followed = waitLevel(t, levels, "b following a's auto level", func(c degrade.Change) bool { return c.To == degrade.LevelNoWS })
	return a, b, levels, followed
}

// TestClusterOverRedis: two nodes on one real Redis share the level (the
// most loaded node's in auto mode, an operator's pin everywhere) and the
// flags, and each lists both nodes.
func TestClusterOverRedis(t *testing.T) {
	// Auto mode: a's breaker trips, and b follows a.
	a, b, levels, c := tripped(t)
	if !c.Remote || c.By != "cluster:node-a" || b.Controller.Floor() != degrade.LevelNoWS {
		t.Fatalf("b's change = %+v, floor %d", c, b.Controller.Floor())
	}
	if own, _ := b.Controller.Auto(); own != 0 {
		t.Fatalf("b's own level moved to %d", own)
	}

	// A pin set on a holds on b, with the same expiry.
	if code := a.call(t, http.MethodPut, "/v1/admin/level", `{"level":1,"mode":"manual","for":"30m"}`, nil); code != http.StatusOK {
		t.Fatalf("pin on a: %d", code)
	}
	waitLevel(t, levels, "a's pin on b", func(c degrade.Change) bool { return c.Mode == degrade.Manual && c.To == 1 })
	_, untilA := a.Controller.Mode()
	if mode, untilB := b.Controller.Mode(); mode != degrade.Manual || !untilB.Equal(untilA) || untilA.IsZero() {
		t.Fatalf("b: mode %s until %v, want manual until %v", mode, untilB, untilA)
	}

	// A flag changed on a changes b's store.
	if code := a.call(t, http.MethodPut, "/v1/admin/flags/typing", `{"rollout":50}`, nil); code != http.StatusOK {
		t.Fatalf("flag on a: %d", code)
	}
	waitFlag(t, b, featureflags.Flag{Name: featureflags.Typing, Enabled: true, Rollout: 50})

	// b's admin status lists both nodes and the cluster's history.
	var st adminStatus
	if code := b.call(t, http.MethodGet, "/v1/admin/status", "", &st); code != http.StatusOK {
		t.Fatalf("status on b: %d", code)
	}
	if len(st.Nodes) != 2 || st.Nodes[0].ID != "node-a" || st.Nodes[1].ID != "node-b" ||
		st.Nodes[0].Addr != "node-a.test:80" || st.Nodes[0].Engine != "redis" || st.Nodes[1].Level != 1 {
		t.Fatalf("nodes on b = %+v", st.Nodes)
	}
	if st.Level != 1 || st.Mode != "manual" || st.Until == nil || st.Cluster != "" {
		t.Fatalf("status on b: level %d mode %s until %v cluster_error %q", st.Level, st.Mode, st.Until, st.Cluster)
	}
	pinned := false
	for _, h := range st.History {
		pinned = pinned || (h.Node == "node-a" && h.To == 1 && h.By == "admin:ops" && h.Mode == degrade.Manual)
	}
	if !pinned {
		t.Fatalf("b's history lacks a's pin: %+v", st.History)
	}

	// Back to auto on b: a returns to auto too.
	levelsA, cancelA := a.Controller.Subscribe()
	defer cancelA()
	if code := b.call(t, http.MethodPut, "/v1/admin/level", `{"mode":"auto"}`, nil); code != http.StatusOK {
		t.Fatalf("auto on b: %d", code)
	}
	waitLevel(t, levelsA, "b's auto on a", func(c degrade.Change) bool { return c.Mode == degrade.Auto && c.By == "admin:ops" })
}

// TestClusterFlagsFile: a flags file's state reaches every node, and the
// same state loaded again (a restart, a touch) does not undo an admin
// change made since.
func TestClusterFlagsFile(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Durable: true})
	a, b := startRedisNode(t, srv, "node-a"), startRedisNode(t, srv, "node-b")
	file := []featureflags.Flag{{Name: featureflags.Typing, Enabled: true, Rollout: 10}}
	if err := b.FlagTarget().Replace(file, "file:/etc/chatd/flags.json"); err != nil {
		t.Fatal(err)
	}
	waitFlag(t, a, file[0])
	if code := a.call(t, http.MethodPut, "/v1/admin/flags/typing", `{"rollout":70}`, nil); code != http.StatusOK {
		t.Fatalf("flag on a: %d", code)
	}
	seventy := featureflags.Flag{Name: featureflags.Typing, Enabled: true, Rollout: 70}
	waitFlag(t, b, seventy)
	if err := b.FlagTarget().Replace(file, "file:/etc/chatd/flags.json"); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Flags.Snapshot().Get(featureflags.Typing); got != seventy {
		t.Fatalf("reloading the same file undid the admin change: %+v", got)
	}
	var flags struct {
		Audit []featureflags.Change `json:"audit"`
	}
	if code := a.call(t, http.MethodGet, "/v1/admin/flags", "", &flags); code != http.StatusOK {
		t.Fatalf("flags on a: %d", code)
	}
	if n := len(flags.Audit); n != 2 || flags.Audit[0].Actor != "file:/etc/chatd/flags.json" || flags.Audit[1].Actor != "admin:ops" {
		t.Fatalf("cluster audit = %+v, want the file's change then the admin's", flags.Audit)
	}
}

// TestClusterDeadNodeStopsCounting: the auto level of a node that dies
// (no heartbeat, its lease runs out) stops holding the others up.
func TestClusterDeadNodeStopsCounting(t *testing.T) {
	a, b, levels, _ := tripped(t)
	a.engine.Abandon() // as kill -9 leaves it: still listed until its lease (1s) ends
	timeout := time.After(time.Second + within)
	for b.Controller.Level() != degrade.LevelNormal {
		select {
		case <-levels:
		case <-timeout:
			t.Fatalf("b still at level %d after a's lease ended", b.Controller.Level())
		}
	}
}

// TestClusterRollouts: a guarded rollout plan started on one node is the
// cluster's: another node pauses it, the first sees the pause, the flag's
// rollout reaches every node, and exactly one live node leads (steps the
// plans).
func TestClusterRollouts(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Durable: true})
	a, b := startRedisNode(t, srv, "node-a"), startRedisNode(t, srv, "node-b")
	ctx := context.Background()
	req := rollout.StartRequest{Flag: featureflags.Typing, Steps: []int{10, 50, 100}, Hold: rollout.Duration(time.Hour)}
	if _, err := a.Rollouts.Start(ctx, req, "admin:test"); err != nil {
		t.Fatal(err)
	}
	waitFlag(t, b, featureflags.Flag{Name: featureflags.Typing, Enabled: true, Rollout: 10})
	p, err := b.Rollouts.Pause(ctx, featureflags.Typing, "admin:test")
	if err != nil || p.State != rollout.Paused {
		t.Fatalf("node b pausing node a's plan: %+v, %v", p, err)
	}
	if _, err := a.Rollouts.Start(ctx, req, "admin:test"); !errors.Is(err, rollout.ErrExists) {
		t.Fatalf("node a starting the flag's plan again: %v, want ErrExists", err)
	}
	if _, err := a.Rollouts.Resume(ctx, featureflags.Typing, "admin:test"); err != nil {
		t.Fatalf("node a resuming the plan node b paused: %v", err)
	}
	deadline := time.Now().Add(within)
	for a.LeadsRollouts() == b.LeadsRollouts() {
		if time.Now().After(deadline) {
			t.Fatalf("leaders: node-a %v, node-b %v; want exactly one", a.LeadsRollouts(), b.LeadsRollouts())
		}
		time.Sleep(20 * time.Millisecond) // a bounded poll of a state the sync sets
	}
	if !a.LeadsRollouts() {
		t.Error("node-b leads; the smallest live id (node-a) should")
	}
}
