package redis

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/core/redis/redistest"
)

func online(user, name string) core.PresenceChange {
	return core.PresenceChange{User: user, Name: name, Online: true}
}

func offline(user string) core.PresenceChange { return core.PresenceChange{User: user} }

// setPresence applies changes on e and fails unless it answers want (as
// "user+" / "user-(name)") and count.
func setPresence(t *testing.T, e *Engine, room string, changes []core.PresenceChange, want string, count int) {
	t.Helper()
	got, n, err := e.Presence(t.Context(), room, changes)
	if err != nil || fmt.Sprint(got) != want || n != count {
		t.Fatalf("%s: Presence(%s, %v) = %v, %d, %v; want %s, %d", e.Node(), room, changes, got, n, err, want, count)
	}
}

// members returns Members(room) on e as "user:name …".
func members(t *testing.T, e *Engine, room string) string {
	t.Helper()
	ms, err := e.Members(t.Context(), room)
	if err != nil {
		t.Fatalf("%s: Members(%s): %v", e.Node(), room, err)
	}
	out := ""
	for _, m := range ms {
		out += fmt.Sprintf(" %s:%s", m.User, m.Name)
	}
	return out
}

// TestPresence: presence across three nodes. A user online on two nodes
// came online once and goes offline once, when the last node lets go;
// every node lists the users online anywhere, each once, with this
// node's name for them if it has one, else the first node's by id.
func TestPresence(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Durable: true})
	a, b, c := open(t, srv, Config{Node: "a"}), open(t, srv, Config{Node: "b"}), open(t, srv, Config{Node: "c"})
	const room = "lobby"
	setPresence(t, a, room, []core.PresenceChange{online("ann", "Ann")}, "[{ann Ann true}]", 1)
	setPresence(t, b, room, []core.PresenceChange{online("ann", "Ann B"), online("bob", "Bob")}, "[{bob Bob true}]", 2)
	setPresence(t, a, room, nil, "[]", 2) // nothing changed: the count
	for e, want := range map[*Engine]string{a: " ann:Ann bob:Bob", b: " ann:Ann B bob:Bob", c: " ann:Ann bob:Bob"} {
		if got := members(t, e, room); got != want {
			t.Errorf("%s: Members = %q, want %q", e.Node(), got, want)
		}
	}
	setPresence(t, a, room, []core.PresenceChange{offline("ann")}, "[]", 2) // still online on b
	if got := members(t, c, room); got != " ann:Ann B bob:Bob" {
		t.Errorf("Members after ann left a = %q", got)
	}
	setPresence(t, b, room, []core.PresenceChange{offline("ann")}, "[{ann Ann B false}]", 1)
	setPresence(t, a, room, []core.PresenceChange{offline("ann")}, "[]", 1) // already gone: nothing
	if got := members(t, a, room); got != " bob:Bob" {
		t.Errorf("Members after ann left b = %q, want bob", got)
	}
	if got := members(t, a, "empty"); got != "" {
		t.Errorf("Members of an empty room = %q", got)
	}
	if _, _, err := a.Presence(t.Context(), room, []core.PresenceChange{online("", "x")}); err == nil {
		t.Error("Presence with an empty user succeeded")
	}
}

// TestReap: a node dies (Abandon) with users online and connections open.
// Another node, subscribed to the room, gets their offline presence once
// the lease has ended; Members no longer lists them, their connections no
// longer count, and the dead node's keys are gone. Users online on the
// live node stay.
func TestReap(t *testing.T) {
	t.Parallel() // its clock-bound waits overlap the other tests
	srv := redistest.Start(t, redistest.Options{Durable: true})
	reg := prometheus.NewRegistry()
	live := open(t, srv, Config{Node: "live", Lease: 600 * time.Millisecond, Metrics: reg})
	dying := open(t, srv, Config{Node: "dying", Lease: 300 * time.Millisecond})
	rec := newRecorder()
	live.Register(rec)
	const room = "wake"
	live.Subscribe(room)
	fence(t, live, rec, room)

	setPresence(t, live, room, []core.PresenceChange{online("cat", "Cat")}, "[{cat Cat true}]", 1)
	setPresence(t, dying, room, []core.PresenceChange{online("ann", "Ann"), online("bob", "Bob")}, "[{ann Ann true} {bob Bob true}]", 3)
	for range 2 {
		if ok, _, err := dying.AcquireConn(t.Context(), "ann", 2); !ok || err != nil {
			t.Fatalf("AcquireConn on the dying node: %v, %v", ok, err)
		}
	}
	if ok, open, err := live.AcquireConn(t.Context(), "ann", 2); ok || open != 2 || err != nil {
		t.Fatalf("AcquireConn with 2 open on the dying node = %v, %d, %v; want refused, 2", ok, open, err)
	}

	reaped := make(chan string, 1)
	hook := func(id string) {
		select {
		case reaped <- id:
		default: // only the first matters; never block the reaper
		}
	}
	live.reaped.Store(&hook)
	dying.Abandon()
	// The presence events go out before the keys are removed: wait for
	// the whole cleanup.
	select {
	case id := <-reaped:
		if id != "dying" {
			t.Fatalf("reaped %q, want dying", id)
		}
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for the reap to finish")
	}
	rec.Until(t, "ann and bob offline", func() bool {
		gone := map[string]bool{}
		for _, e := range rec.Events {
			if e.Type == protocol.TypePresence && e.Online != nil && !*e.Online {
				gone[e.User+"/"+e.Name] = true
			}
		}
		return gone["ann/Ann"] && gone["bob/Bob"] && len(gone) == 2
	})
	if got := members(t, live, room); got != " cat:Cat" {
		t.Errorf("Members after the reap = %q, want cat alone", got)
	}
	for i := range 2 {
		if ok, open, err := live.AcquireConn(t.Context(), "ann", 2); !ok || open != i+1 || err != nil {
			t.Fatalf("AcquireConn %d after the reap = %v, %d, %v; want ok, %d", i, ok, open, err, i+1)
		}
	}
	if got := ids(t, live); got != "[live]" {
		t.Errorf("Nodes after the reap = %s", got)
	}
	for _, key := range []string{live.keys.nodeRooms("dying"), live.keys.nodeUsers("dying"), live.keys.reapLock("dying")} {
		if n, err := srv.Do("EXISTS", key); err != nil || n != ":0" {
			t.Errorf("EXISTS %s = %q, %v; want gone", key, n, err)
		}
	}
	if n, p := metric(t, reg, "chat_redis_reaped_nodes_total"), metric(t, reg, "chat_redis_reaped_presence_total"); n != 1 || p != 2 {
		t.Errorf("metrics: reaped nodes %v, presence %v; want 1 and 2", n, p)
	}
}

// TestCloseLeaves: a clean Close takes the node's users offline and its
// connections out before it returns, with no wait for its lease.
func TestCloseLeaves(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Durable: true})
	stay, leaving := open(t, srv, Config{Node: "stay"}), open(t, srv, Config{Node: "leaving"})
	rec := newRecorder()
	stay.Register(rec)
	stay.Subscribe("r")
	fence(t, stay, rec, "r")
	setPresence(t, leaving, "r", []core.PresenceChange{online("ann", "Ann")}, "[{ann Ann true}]", 1)
	if ok, _, err := leaving.AcquireConn(t.Context(), "ann", 1); !ok || err != nil {
		t.Fatalf("AcquireConn: %v, %v", ok, err)
	}
	if err := leaving.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := members(t, stay, "r"); got != "" {
		t.Errorf("Members right after Close = %q, want none", got)
	}
	if ok, _, err := stay.AcquireConn(t.Context(), "ann", 1); !ok || err != nil {
		t.Errorf("AcquireConn right after the other node's Close = %v, %v; want ok", ok, err)
	}
	rec.Until(t, "ann offline", func() bool {
		for _, e := range rec.Events {
			if e.User == "ann" && e.Online != nil && !*e.Online {
				return true
			}
		}
		return false
	})
	leaving.ReleaseConn("ann") // after Close: nothing to do, and no block
}

// TestConnCap: the per-user connection cap across two nodes; a release
// on one makes room on the other once its flusher has sent it.
func TestConnCap(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Durable: true})
	a, b := open(t, srv, Config{Node: "a"}), open(t, srv, Config{Node: "b"})
	acquire := func(e *Engine, wantOK bool, wantOpen int) {
		t.Helper()
		ok, open, err := e.AcquireConn(t.Context(), "ann", 3)
		if ok != wantOK || open != wantOpen || err != nil {
			t.Fatalf("%s: AcquireConn = %v, %d, %v; want %v, %d", e.Node(), ok, open, err, wantOK, wantOpen)
		}
	}
	acquire(a, true, 1)
	acquire(a, true, 2)
	acquire(b, true, 3)
	acquire(a, false, 3)
	acquire(b, false, 3)
	b.ReleaseConn("bob") // never acquired: ignored
	a.ReleaseConn("ann")
	deadline := time.Now().Add(waitTimeout)
	for { // the release is sent asynchronously: poll until it lands
		ok, open, err := b.AcquireConn(t.Context(), "ann", 3)
		if err != nil || (!ok && open != 3) {
			t.Fatalf("AcquireConn while the release is sent = %v, %d, %v", ok, open, err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a's release never made room after %v", waitTimeout)
		}
	}
	acquire(a, false, 3)
	if ok, open, err := a.AcquireConn(t.Context(), "bob", 0); ok || open != 0 || err != nil {
		t.Fatalf("AcquireConn with limit 0 = %v, %d, %v; want refused", ok, open, err)
	}
}

// TestAllowSend: one send bucket per user across nodes, refilled by
// Redis's clock; it expires once it would be full again.
func TestAllowSend(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Durable: true})
	a, b := open(t, srv, Config{Node: "a"}), open(t, srv, Config{Node: "b"})
	allow := func(e *Engine, user string, want bool) {
		t.Helper()
		if ok, err := e.AllowSend(t.Context(), user, 0.001, 5); ok != want || err != nil {
			t.Fatalf("%s: AllowSend(%s) = %v, %v; want %v", e.Node(), user, ok, err, want)
		}
	}
	for _, e := range []*Engine{a, b, a, b, a} {
		allow(e, "ann", true)
	}
	allow(b, "ann", false)
	allow(a, "ann", false)
	allow(a, "bob", true) // a bucket per user
	if ttl, err := srv.Do("PTTL", a.keys.rate("ann")); err != nil || len(ttl) < 2 || ttl[0] != ':' || ttl[1] == '-' {
		t.Errorf("PTTL of the bucket = %q, %v; want an expiry", ttl, err)
	}
	if ok, err := a.AllowSend(t.Context(), "cat", 10, 0); ok || err != nil {
		t.Errorf("AllowSend with burst 0 = %v, %v; want refused", ok, err)
	}
	if ok, err := a.AllowSend(t.Context(), "cat", 1000, 1); !ok || err != nil {
		t.Errorf("AllowSend at 1000/s = %v, %v", ok, err)
	}
}

// TestClusterOutage: with Redis down every Cluster method answers
// unavailable, and ReleaseConn does not block. A presence change made
// meanwhile reaches Redis once it is back: the keeper settles the room.
func TestClusterOutage(t *testing.T) {
	t.Parallel() // its clock-bound waits overlap the other tests
	srv := redistest.Start(t, redistest.Options{Durable: true})
	e := open(t, srv, Config{Node: "e", Lease: 600 * time.Millisecond, Timeout: 500 * time.Millisecond})
	if ok, _, err := e.AcquireConn(t.Context(), "bob", 5); !ok || err != nil {
		t.Fatalf("AcquireConn: %v, %v", ok, err)
	}
	srv.Kill()
	_, _, err := e.Presence(t.Context(), "r", []core.PresenceChange{online("ann", "Ann")})
	wantUnavailable(t, "Presence", err)
	_, err = e.Members(t.Context(), "r")
	wantUnavailable(t, "Members", err)
	_, _, err = e.AcquireConn(t.Context(), "ann", 5)
	wantUnavailable(t, "AcquireConn", err)
	_, err = e.AllowSend(t.Context(), "ann", 1, 1)
	wantUnavailable(t, "AllowSend", err)
	e.ReleaseConn("bob")

	srv.Restart()
	deadline := time.Now().Add(waitTimeout)
	for { // the keeper's settle is background work: poll its outcome
		if got, err := e.Members(t.Context(), "r"); err == nil && len(got) == 1 && got[0].User == "ann" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the presence change made while Redis was down never reached it")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for { // and bob's release
		if n, err := srv.Do("HEXISTS", e.keys.conns("bob"), "e"); err == nil && n == ":0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the release made while Redis was down never reached it")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRestore: Redis loses everything (FLUSHALL on a server without
// persistence). The node's next heartbeat finds its registration gone
// and writes its presence and connection counts again.
func TestRestore(t *testing.T) {
	t.Parallel() // its clock-bound waits overlap the other tests
	srv := redistest.Start(t, redistest.Options{})
	e := open(t, srv, Config{Node: "e", Lease: 600 * time.Millisecond, AcceptRisk: true})
	setPresence(t, e, "r", []core.PresenceChange{online("ann", "Ann")}, "[{ann Ann true}]", 1)
	if ok, _, err := e.AcquireConn(t.Context(), "ann", 5); !ok || err != nil {
		t.Fatalf("AcquireConn: %v, %v", ok, err)
	}
	if r, err := srv.Do("FLUSHALL"); err != nil || r != "+OK" {
		t.Fatalf("FLUSHALL: %q %v", r, err)
	}
	deadline := time.Now().Add(waitTimeout)
	for { // the heartbeat and the keeper are background work: poll their outcome
		conn, _ := srv.Do("HGET", e.keys.conns("ann"), "e")
		if members(t, e, "r") == " ann:Ann" && conn == "$1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("presence %q and connection count %q not written again after %v", members(t, e, "r"), conn, waitTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestOutageNoReap: after an outage longer than the lease every node's
// lease has ended; the first node back does not clean up after the
// others, which renew theirs.
func TestOutageNoReap(t *testing.T) {
	t.Parallel() // its clock-bound waits overlap the other tests
	srv := redistest.Start(t, redistest.Options{Durable: true})
	const lease = time.Second
	reg := prometheus.NewRegistry()
	a := open(t, srv, Config{Node: "a", Lease: lease, Timeout: 300 * time.Millisecond, Metrics: reg})
	b := open(t, srv, Config{Node: "b", Lease: lease, Timeout: 300 * time.Millisecond})
	setPresence(t, b, "r", []core.PresenceChange{online("bob", "Bob")}, "[{bob Bob true}]", 1)
	srv.Kill()
	killed := time.Now()
	for time.Since(killed) < 3*lease/2 { // the leases are time: nothing to wait on but the clock
		time.Sleep(lease / 4)
	}
	srv.Restart()
	deadline := time.Now().Add(waitTimeout)
	for !a.cl.settled(lease + breakerOpen) { // a's heartbeats are background work: poll
		if time.Now().After(deadline) {
			t.Fatal("a's heartbeats never settled after the restart")
		}
		time.Sleep(lease / 10)
	}
	if err := a.reapDead(t.Context()); err != nil {
		t.Fatalf("reapDead: %v", err)
	}
	if got := ids(t, a); got != "[a b]" {
		t.Errorf("Nodes once a may reap = %s, want both", got)
	}
	if got := members(t, a, "r"); got != " bob:Bob" {
		t.Errorf("Members once a may reap = %q, want bob", got)
	}
	if n := metric(t, reg, "chat_redis_reaped_nodes_total"); n != 0 {
		t.Errorf("a reaped %v nodes after the outage, want none", n)
	}
}
