package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/transports/client"
	"github.com/chatd/chatd/transports/transporttest"
)

// TestSmoke runs the engine for about two seconds against a real server
// on loopback: 30 users over all three tiers in 3 rooms, every user
// sending once a second with reads and typing. Nothing may be lost or
// duplicated, and the report files must be written.
func TestSmoke(t *testing.T) {
	env := transporttest.NewEnv(t, transporttest.Options{})
	out := t.TempDir()
	if d := os.Getenv("CHATLOAD_KEEP"); d != "" { // keep the report to look at
		out = d
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, Config{
		URL: env.URL, JWTSecret: transporttest.Secret, Workload: Chat, Users: []int{30}, RoomSize: 10,
		Tiers: []TierShare{{client.WebSocket, 1}, {client.SSE, 1}, {client.Poll, 1}},
		Rate:  1, Duration: 2 * time.Second, Sample: 250 * time.Millisecond, ConnectTimeout: 20 * time.Second,
		Drain: 10 * time.Second, Out: out,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != 1 {
		t.Fatalf("%d runs, want 1", len(rep.Runs))
	}
	r := rep.Runs[0]
	if len(rep.Failures) > 0 {
		t.Errorf("failures: %q", rep.Failures)
	}
	if r.Rooms != 3 || r.Tiers[client.WebSocket] != 10 || r.Tiers[client.SSE] != 10 || r.Tiers[client.Poll] != 10 {
		t.Errorf("%d rooms, tiers %v; want 3 rooms and 10 users per tier", r.Rooms, r.Tiers)
	}
	k := r.Check
	if k.Checked != 30 || k.Lost != 0 || k.Duplicated != 0 || k.ClientDuplicates != 0 {
		t.Errorf("check %+v: want 30 clients checked, nothing lost or duplicated", k)
	}
	// Every user sent about twice; each message reaches the 10 users of
	// its room.
	if r.Traffic.Sends < 30 || k.Expected < 10*r.Traffic.Sends || k.Received < k.Expected {
		t.Errorf("traffic %+v, check %+v: want every acked message delivered to its 10 subscribers", r.Traffic, k)
	}
	if r.Latency.Count == 0 || r.Latency.P99MS <= 0 || r.Ack.Count != r.Traffic.Sends {
		t.Errorf("latency %+v, ack %+v: want measurements for every delivery and ack", r.Latency, r.Ack)
	}
	// Split at the stored time: every delivery, and the parts within the
	// whole (the stored time is truncated to the millisecond).
	if in, o := r.LatencyIn, r.LatencyOut; in.Count != r.Latency.Count || o.Count != r.Latency.Count ||
		in.MaxMS > r.Latency.MaxMS || o.MaxMS > r.Latency.MaxMS+1 {
		t.Errorf("latency %+v split into %+v and %+v: want every delivery split, each part within the whole", r.Latency, in, o)
	}
	if r.Traffic.Reads == 0 {
		t.Errorf("traffic %+v: no read receipts sent", r.Traffic)
	}
	// The clients' connections count what they read: at least a byte
	// for each delivery (each carries its message).
	if r.Traffic.ReceivedBytes < r.Traffic.Deliveries || r.Traffic.BytesPerDelivery <= 0 {
		t.Errorf("traffic %+v: the bytes received are not counted", r.Traffic)
	}
	for _, name := range []string{"report.md", "report.json", "chat-30-latency.png", "chat-30-levels.png"} {
		if st, err := os.Stat(filepath.Join(out, name)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	if len(back.Runs) != 1 || back.Runs[0].Users != 30 || back.Runs[0].Check.Checked != 30 {
		t.Errorf("report.json says %+v", back.Runs)
	}
}

// With --compress the tool's WebSocket clients offer compression as a
// browser does, and the server grants them context takeover: every
// WebSocket connection counts it, messages come deflated with it, and
// nothing is lost.
func TestCompressTakeover(t *testing.T) {
	env := transporttest.NewEnv(t, transporttest.Options{Degrade: true}) // the policy: the compression flag
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, Config{
		URL: env.URL, JWTSecret: transporttest.Secret, Workload: Chat, Users: []int{10}, RoomSize: 10,
		Tiers: []TierShare{{client.WebSocket, 1}}, Compress: true,
		Rate: 1, Duration: time.Second, Sample: 250 * time.Millisecond, ConnectTimeout: 20 * time.Second,
		Drain: 10 * time.Second, Out: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Runs[0]
	if k := r.Check; k.Checked != 10 || k.Lost != 0 || k.Duplicated != 0 || k.ClientDuplicates != 0 {
		t.Errorf("check %+v: want 10 clients checked, nothing lost or duplicated", k)
	}
	if r.Traffic.WSTakeovers < 10 || uint64(r.Traffic.WSInflated) < r.Traffic.Deliveries {
		t.Errorf("traffic %+v: want context takeover on every connection and every delivery inflated with it", r.Traffic)
	}
}

// TestCluster runs the chat workload across three nodes sharing one real
// redis-server (AOF, fsync always): 30 users dealt to the nodes in turn,
// rooms of 10, so that every room has members on every node and each
// message is appended by one node and delivered by all three. Each
// room's seqs come from the shared engine whichever node takes the send,
// so the ledger's exactly-once check applies unchanged: nothing may be
// lost or duplicated, and every node must report the same head.
func TestCluster(t *testing.T) {
	c := transporttest.NewCluster(t, 3, transporttest.Options{})
	var nodes []string
	for _, n := range c.Nodes {
		nodes = append(nodes, n.URL)
	}
	// Each node's peak of sessions, sampled while the tool runs.
	peaks := make([]int, len(c.Nodes))
	done, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			for i, n := range c.Nodes {
				total := 0
				for _, k := range n.Hub.Sessions() {
					total += k
				}
				peaks[i] = max(peaks[i], total)
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, Config{
		Servers: nodes, JWTSecret: transporttest.Secret, Workload: Chat, Users: []int{30}, RoomSize: 10,
		// A cycle of 4 tiers against 3 nodes: every node gets every tier.
		Tiers: []TierShare{{client.WebSocket, 2}, {client.SSE, 1}, {client.Poll, 1}},
		Rate:  1, Duration: 2 * time.Second, Sample: 250 * time.Millisecond, ConnectTimeout: 20 * time.Second,
		Drain: 10 * time.Second, NoReads: true,
	})
	close(done)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failures) > 0 {
		t.Errorf("failures: %q", rep.Failures)
	}
	if slices.Min(peaks) < 10 {
		t.Errorf("sessions per node at peak %v, want the 10 users of each node on it", peaks)
	}
	r := rep.Runs[0]
	k := r.Check
	if k.Checked != 30 || k.Lost != 0 || k.Duplicated != 0 || k.ClientDuplicates != 0 || k.HeadsSplit != 0 {
		t.Errorf("check %+v: want 30 clients checked, nothing lost or duplicated, one head per room", k)
	}
	// Each acked message reaches the 10 members of its room, on all
	// three nodes.
	if r.Traffic.Sends < 30 || k.Expected < 10*r.Traffic.Sends || k.Received < k.Expected {
		t.Errorf("traffic %+v, check %+v: want every acked message delivered to its 10 subscribers", r.Traffic, k)
	}
	sessions := 0
	for _, n := range r.Server.SessionsAtEnd {
		sessions += n
	}
	if !r.Server.Metrics || sessions <= 10 { // a node holds 10
		t.Errorf("server %+v: want the sessions of the three nodes' /metrics added up", r.Server)
	}
	if want := strings.Join(nodes, ", "); rep.Target != want {
		t.Errorf("target %q, want %q", rep.Target, want)
	}
}

// TestRecover: with --recover the tool waits after the load for the
// server's level to read 0 and reports when it did, or that it did not:
// in auto mode (no load signals in this server) it is 0 at once, pinned
// at level 1 it stays.
func TestRecover(t *testing.T) {
	env := transporttest.NewEnv(t, transporttest.Options{Degrade: true})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run := func(level string) *Recovery {
		t.Helper()
		rep, err := Run(ctx, Config{
			URL: env.URL, JWTSecret: transporttest.Secret, Workload: Chat, Users: []int{6}, RoomSize: 3,
			Tiers: []TierShare{{client.WebSocket, 1}}, Rate: 1, Duration: 500 * time.Millisecond,
			Sample: 250 * time.Millisecond, ConnectTimeout: 20 * time.Second, Drain: 10 * time.Second,
			Recover: time.Second, Level: level, Out: t.TempDir(),
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Runs) != 1 || rep.Runs[0].Recovery == nil {
			t.Fatalf("level %s: runs %+v, want one with a recovery", level, rep.Runs)
		}
		return rep.Runs[0].Recovery
	}
	// Auto first: from a pinned level, auto mode steps down one level per
	// StepDown (10 s).
	if rc := run("auto"); rc.BackAtS < rc.LoadEndS || rc.Level != 0 {
		t.Errorf("auto: recovery %+v, want level 0 read after the load ended", rc)
	}
	if rc := run("1"); rc.BackAtS != -1 || rc.Level != 1 {
		t.Errorf("pinned at 1: recovery %+v, want the level still 1 at the end of the wait", rc)
	}
}
