package transporttest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/featureflags"
	"github.com/chatd/chatd/transports/httpapi"
)

// One level and one set of flags for the whole cluster (Degrade wires the
// bridge in transports/node): a change made through the admin API of one
// node moves the clients of the others.

// quiet is a cluster whose held polls stay held: no presence beat to
// answer them.
var quiet = Options{Degrade: true, Hub: core.Config{PresenceInterval: time.Hour}}

// A level set on node-a reaches clients on node-b and node-c: WebSocket
// gets the control envelope and then close 4001, SSE the control envelope,
// a held poll an answer with the new control. The time it takes is logged
// against the budget of 2 s.
func TestClusterLevel(t *testing.T) { runCluster(t, 3, quiet, testClusterLevel) }

func testClusterLevel(t *testing.T, c *Cluster, dial Dialer) {
	const room = "cluster-level"
	tier := tierOf(t)
	var arrived [3]chan controlAt
	for i := 1; i < 3; i++ {
		tok := c.Token(t, "user-"+c.ID(i), Claims{})
		if tier == "poll" {
			arrived[i] = heldPollControl(t, c, i, tok, room)
		} else {
			arrived[i] = streamControl(t, c, i, dial, tok, room)
		}
	}
	setAt := time.Now()
	adminPut(t, c.Nodes[0], "/v1/admin/level", `{"level":2,"mode":"manual"}`)
	for i := 1; i < 3; i++ {
		var got controlAt
		select {
		case got = <-arrived[i]:
		case <-Ctx(t).Done():
			t.Fatalf("%s: no control envelope after the level change on %s", c.ID(i), c.ID(0))
		}
		if got.err != nil {
			t.Fatalf("%s: %v", c.ID(i), got.err)
		}
		if got.env.Level == nil || *got.env.Level != 2 || slices.Contains(got.env.Transports, "websocket") || !slices.Contains(got.env.Transports, "sse") {
			t.Fatalf("%s: control %+v; want level 2, no websocket", c.ID(i), got.env)
		}
		t.Logf("level 2 set on %s reached a %s client on %s in %v (budget 2s; moves spread over %v)",
			c.ID(0), tier, c.ID(i), got.at.Sub(setAt), clusterMoveWindow)
	}
	for i, e := range c.Nodes {
		if st := clusterStatus(t, e); st.Level != 2 || st.Mode != "manual" {
			t.Fatalf("admin status on %s: level %d, mode %s; want 2, manual", c.ID(i), st.Level, st.Mode)
		}
	}
	if tier == "websocket" {
		status, body, end := connectOnce(t, tier, c.Nodes[2], c.Token(t, "late", Claims{}), room)
		end()
		httpError(t, "an upgrade on "+c.ID(2)+" at level 2", status, body, http.StatusServiceUnavailable, protocol.CodeOverloaded)
	}
}

// controlAt is a control envelope and when it arrived.
type controlAt struct {
	env protocol.Envelope
	at  time.Time
	err error
}

// streamControl connects a stream client to node i and returns where the
// first control envelope after its greeting will arrive. A WebSocket
// client must then be closed with 4001; an SSE stream must stay up.
func streamControl(t *testing.T, c *Cluster, i int, dial Dialer, tok, room string) chan controlAt {
	cl := dial(t, c.Nodes[i], tok, []Join{{Room: room}})
	if hello := nextOf(t, cl, protocol.TypeControl); hello.Level == nil || *hello.Level != 0 {
		t.Fatalf("%s: greeting %+v; want level 0", c.ID(i), hello)
	}
	out := make(chan controlAt, 1)
	ctx := Ctx(t)
	go func() {
		env, err := cl.Next(ctx)
		got := controlAt{env: env, at: time.Now()}
		if err != nil {
			got.err = fmt.Errorf("no control envelope: %w", err)
		} else if env.Type != protocol.TypeControl {
			got.err = fmt.Errorf("got %+v, want a control envelope", env)
		}
		if got.err == nil && cl.Transport() == "websocket" {
			got.err = wantClose(ctx, cl, protocol.CloseSwitchTransport)
		}
		out <- got
	}()
	return out
}

// wantClose waits for cl's connection to end with code.
func wantClose(ctx context.Context, cl Client, code int) error {
	select {
	case got := <-cl.Closed():
		if got != code {
			return fmt.Errorf("closed with %d, want %d", got, code)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("not closed with %d", code)
	}
}

// heldPollControl polls node i once from the live end, then holds a poll
// there with the level it learnt (level=), and returns where that poll's
// control will arrive once it answers.
func heldPollControl(t *testing.T, c *Cluster, i int, tok, room string) chan controlAt {
	e := c.Nodes[i]
	first, err := pollControl(Ctx(t), e, tok, url.Values{"rooms": {room}})
	if err != nil || first.Control == nil || first.Control.Level == nil || *first.Control.Level != 0 {
		t.Fatalf("%s: first poll %+v, %v; want control level 0", c.ID(i), first, err)
	}
	out := make(chan controlAt, 1)
	ctx := Ctx(t)
	go func() {
		a, err := pollControl(ctx, e, tok, url.Values{"rooms": {room}, "cursor": {first.Cursor}, "level": {"0"}})
		got := controlAt{at: time.Now(), err: err}
		if a.Control != nil {
			got.env = *a.Control
		} else if err == nil {
			got.err = fmt.Errorf("answer %+v has no control", a)
		}
		out <- got
	}()
	eventually(t, "a held poll on "+c.ID(i), func() bool { return e.Hub.Sessions()["poll"] == 1 })
	return out
}

// controlAnswer is a poll answer with its control.
type controlAnswer struct {
	Events  []protocol.Envelope `json:"events"`
	Cursor  string              `json:"cursor"`
	Control *protocol.Envelope  `json:"control"`
}

// pollControl makes one poll to e; it is safe off the test's goroutine.
func pollControl(ctx context.Context, e *Env, tok string, q url.Values) (controlAnswer, error) {
	var a controlAnswer
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.URL+"/v1/poll?"+q.Encode(), nil)
	if err != nil {
		return a, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return a, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("poll: %d %s %v", resp.StatusCode, body, err)
	}
	return a, json.Unmarshal(body, &a)
}

// A flag rollout set on one node changes the offer on the others: live
// clients get a control envelope with the feature off (a poll client in
// its next answer), negotiate says the same, and a partial rollout picks
// the same users on every node.
func TestClusterFlags(t *testing.T) { runCluster(t, 3, quiet, testClusterFlags) }

func testClusterFlags(t *testing.T, c *Cluster, dial Dialer) {
	const room = "cluster-flags"
	tok := c.Token(t, "flagged", Claims{})
	cl := dial(t, c.Nodes[1], tok, []Join{{Room: room}})
	stream := cl.Transport() != "poll"
	if stream {
		if hello := nextOf(t, cl, protocol.TypeControl); !hello.Features[core.FeatureTyping] {
			t.Fatalf("greeting %+v; want typing on", hello)
		}
	}
	adminPut(t, c.Nodes[0], "/v1/admin/flags/typing", `{"rollout":0}`)
	for i := range c.Nodes {
		waitFlag(t, c, i, featureflags.Flag{Name: featureflags.Typing, Enabled: true, Rollout: 0})
		if o := negotiate(t, c.Nodes[i], tok); o.Features[core.FeatureTyping] {
			t.Fatalf("negotiate on %s: %+v; want typing off", c.ID(i), o)
		}
	}
	if stream {
		if ctl := nextOf(t, cl, protocol.TypeControl); ctl.Features[core.FeatureTyping] || ctl.Level == nil || *ctl.Level != 0 {
			t.Fatalf("%s on %s: control %+v; want typing off at level 0", cl.Transport(), c.ID(1), ctl)
		}
	} else {
		first, err := pollControl(Ctx(t), c.Nodes[1], tok, url.Values{"rooms": {room}})
		if err != nil || first.Control == nil || first.Control.Features[core.FeatureTyping] {
			t.Fatalf("poll on %s: %+v, %v; want control with typing off", c.ID(1), first, err)
		}
	}

	// A partial rollout, set on node-c: each user gets the same answer
	// from every node.
	adminPut(t, c.Nodes[2], "/v1/admin/flags/typing", `{"rollout":50}`)
	for i := range c.Nodes {
		waitFlag(t, c, i, featureflags.Flag{Name: featureflags.Typing, Enabled: true, Rollout: 50})
	}
	on := 0
	const users = 20
	for u := range users {
		tok := c.Token(t, fmt.Sprint("rollout-", u), Claims{})
		want := negotiate(t, c.Nodes[0], tok).Features[core.FeatureTyping]
		for i, e := range c.Nodes[1:] {
			if got := negotiate(t, e, tok).Features[core.FeatureTyping]; got != want {
				t.Fatalf("rollout-%d: typing %v on %s, %v on %s", u, want, c.ID(0), got, c.ID(i+1))
			}
		}
		if want {
			on++
		}
	}
	if on == 0 || on == users {
		t.Fatalf("a 50%% rollout gave typing to %d of %d users", on, users)
	}
}

// waitFlag waits until node i's flag store holds want.
func waitFlag(t *testing.T, c *Cluster, i int, want featureflags.Flag) {
	t.Helper()
	flags := c.Node(i).Flags
	wake, stop := flags.Subscribe()
	defer stop()
	ctx := Ctx(t)
	for {
		if got, _ := flags.Snapshot().Get(want.Name); got.Name == want.Name && got.Enabled == want.Enabled && got.Rollout == want.Rollout {
			return
		}
		select {
		case <-wake:
		case <-ctx.Done():
			got, _ := flags.Snapshot().Get(want.Name)
			t.Fatalf("flag %s on %s: %+v, want %+v", want.Name, c.ID(i), got, want)
		}
	}
}

// negotiate asks e for tok's offer.
func negotiate(t testing.TB, e *Env, tok string) protocol.Envelope {
	t.Helper()
	status, body := httpDo(t, e, http.MethodGet, "/v1/negotiate", tok, nil)
	if status != http.StatusOK {
		t.Fatalf("negotiate: %d %s", status, body)
	}
	var o protocol.Envelope
	decodeJSON(t, body, &o)
	return o
}

// The admin status of every node lists the three nodes; a killed node
// drops out once its lease ends, a stopped one at once.
func TestClusterAdminStatus(t *testing.T) {
	c := NewCluster(t, 3, Options{Degrade: true})
	ids := func(st clusterStatusBody) string {
		var out []string
		for _, n := range st.Nodes {
			out = append(out, n.ID)
		}
		return strings.Join(out, ",")
	}
	for i, e := range c.Nodes {
		st := clusterStatus(t, e)
		if ids(st) != "node-a,node-b,node-c" || st.ClusterError != "" {
			t.Fatalf("status on %s: nodes %s, cluster_error %q", c.ID(i), ids(st), st.ClusterError)
		}
		for j, n := range st.Nodes {
			if n.Addr != strings.TrimPrefix(c.Nodes[j].URL, "http://") || n.Engine != "redis" {
				t.Fatalf("status on %s: node %+v", c.ID(i), n)
			}
		}
		// Each node's report of itself comes with its next heartbeat.
		eventually(t, "every node's report in the status on "+c.ID(i), func() bool {
			for _, n := range clusterStatus(t, e).Nodes {
				if n.Connections == nil {
					return false
				}
			}
			return true
		})
	}
	killed := time.Now()
	c.Kill(2)
	for _, e := range c.Nodes[:2] {
		waitSince(t, killed, 5*ClusterLease, "node-c, killed, out of the status on "+e.URL, func() bool {
			return ids(clusterStatus(t, e)) == "node-a,node-b"
		})
	}
	t.Logf("the killed node left the admin status %v after the kill (lease %v)", time.Since(killed), ClusterLease)
	c.Stop(t, 1)
	if st := clusterStatus(t, c.Nodes[0]); ids(st) != "node-a" {
		t.Fatalf("status on node-a right after node-b stopped: nodes %s; a clean stop deregisters", ids(st))
	}
}

type clusterStatusBody struct {
	Level        int                  `json:"level"`
	Mode         string               `json:"mode"`
	Nodes        []httpapi.NodeStatus `json:"nodes"`
	ClusterError string               `json:"cluster_error"`
}

// clusterStatus reads GET /v1/admin/status on e as an admin.
func clusterStatus(t testing.TB, e *Env) clusterStatusBody {
	t.Helper()
	status, body := httpDo(t, e, http.MethodGet, "/v1/admin/status", e.Token(t, "ops", Claims{Admin: true}), nil)
	if status != http.StatusOK {
		t.Fatalf("admin status: %d %s", status, body)
	}
	var st clusterStatusBody
	decodeJSON(t, body, &st)
	return st
}

// adminPut sends an admin change to e and fails unless it is taken.
func adminPut(t testing.TB, e *Env, path, body string) {
	t.Helper()
	status, answer := httpDo(t, e, http.MethodPut, path, e.Token(t, "ops", Claims{Admin: true}), body)
	if status != http.StatusOK {
		t.Fatalf("PUT %s %s: %d %s", path, body, status, answer)
	}
}
