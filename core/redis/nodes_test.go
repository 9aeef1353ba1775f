package redis

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/chatd/chatd/core/redis/redistest"
)

// ids lists the ids of e's live nodes.
func ids(t *testing.T, e *Engine) string {
	t.Helper()
	ns, err := e.Nodes(t.Context())
	if err != nil {
		t.Fatalf("Nodes: %v", err)
	}
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.ID
	}
	return fmt.Sprint(out)
}

// TestNodes: nodes list each other with their address and info; Close
// removes a node at once; Abandon leaves it until its lease runs out.
func TestNodes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Durable: true})
	a := open(t, srv, Config{Node: "a", Addr: "10.0.0.1:8080", Info: func() any { return map[string]int{"sessions": 3} }})
	b := open(t, srv, Config{Node: "b"})
	ns, err := b.Nodes(t.Context())
	if err != nil || len(ns) != 2 || ns[0].ID != "a" || ns[1].ID != "b" {
		t.Fatalf("Nodes() = %+v, %v; want a and b", ns, err)
	}
	var info map[string]int
	if ns[0].Addr != "10.0.0.1:8080" || json.Unmarshal(ns[0].Info, &info) != nil || info["sessions"] != 3 ||
		ns[0].Since.IsZero() || ns[1].Info != nil {
		t.Fatalf("node a = %+v (info %s), node b info %s", ns[0], ns[0].Info, ns[1].Info)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := ids(t, a); got != "[a]" {
		t.Fatalf("after b closed: %s, want [a]", got)
	}

	const lease = 600 * time.Millisecond
	c := open(t, srv, Config{Node: "c", Lease: lease})
	c.Abandon()
	if got := ids(t, a); got != "[a c]" {
		t.Fatalf("right after c was abandoned: %s, want [a c]", got)
	}
	deadline := time.Now().Add(waitTimeout)
	for ids(t, a) != "[a]" { // the lease is time: nothing to wait on but the clock
		if time.Now().After(deadline) {
			t.Fatalf("abandoned c still listed after %v with a %v lease", waitTimeout, lease)
		}
		time.Sleep(lease / 4)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close after Abandon: %v", err)
	}
}
