package node

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/chatd/chatd/degrade"
	"github.com/chatd/chatd/featureflags"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestFloorOverLiveNodes: the floor is the highest auto level among the
// live nodes, a node's newest report wins whatever the order they arrive
// in, and a dead node stops counting.
func TestFloorOverLiveNodes(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := autoLevels{}
	if l, by := a.floor(); l != 0 || by != "cluster" {
		t.Fatalf("empty floor = %d by %q", l, by)
	}
	a.report("b", autoReport{Level: 1, At: t0})
	a.report("c", autoReport{Level: 3, At: t0})
	a.report("d", autoReport{Level: 3, At: t0})
	if l, by := a.floor(); l != 3 || by != "cluster:c" {
		t.Fatalf("floor = %d by %q, want 3 by the first of c and d", l, by)
	}
	// c recovers; its lease Info, read later but older, does not undo it.
	a.report("c", autoReport{Level: 0, At: t0.Add(2 * time.Second)})
	a.report("c", autoReport{Level: 3, At: t0.Add(time.Second)})
	if r := a["c"]; r.Level != 0 {
		t.Fatalf("an older report won: %+v", r)
	}
	if l, by := a.floor(); l != 3 || by != "cluster:d" {
		t.Fatalf("floor = %d by %q, want 3 by d", l, by)
	}
	// d dies: only live nodes count.
	a.keepOnly(map[string]bool{"b": true, "c": true})
	if l, by := a.floor(); l != 1 || by != "cluster:b" {
		t.Fatalf("floor after d died = %d by %q, want 1 by b", l, by)
	}
	a.keepOnly(nil)
	if l, _ := a.floor(); l != degrade.LevelNormal || len(a) != 0 {
		t.Fatalf("no live node left, floor %d, %d entries", l, len(a))
	}
}

// TestFlagStates: a file's state is the whole state, so files that mean
// the same share a sum, and the audit lists what a write changes.
func TestFlagStates(t *testing.T) {
	typing50 := featureflags.Flag{Name: featureflags.Typing, Enabled: true, Rollout: 50}
	a := fullState([]featureflags.Flag{typing50})
	b := fullState([]featureflags.Flag{typing50, {Name: featureflags.SSE, Enabled: true, Rollout: 100}})
	if len(a) != len(featureflags.Defaults()) {
		t.Fatalf("full state has %d flags, want every known one", len(a))
	}
	if fileSum(a) != fileSum(b) {
		t.Fatal("listing a flag at its default changed the sum")
	}
	if fileSum(a) == fileSum(fullState(nil)) {
		t.Fatal("a different state has the same sum")
	}
	ws := featureflags.Flag{Name: featureflags.WebSocket, Enabled: false, Rollout: 100}
	rec := flagsRecord{Flags: fullState(a, ws), By: "admin:alice", At: time.Unix(1000, 0)}
	changes := flagChanges(a, rec)
	was := featureflags.Flag{Name: featureflags.WebSocket, Enabled: true, Rollout: 100}
	if len(changes) != 1 || changes[0].Name != featureflags.WebSocket || changes[0].Old != was ||
		changes[0].New != ws || changes[0].Actor != "admin:alice" {
		t.Fatalf("changes = %+v, want websocket turned off by alice", changes)
	}
}
