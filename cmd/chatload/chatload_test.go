package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
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
	if r.Traffic.Reads == 0 {
		t.Errorf("traffic %+v: no read receipts sent", r.Traffic)
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
