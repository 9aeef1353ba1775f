package transporttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// presenceBeat is how often the presence tests' hubs send presence: the
// default second would make them wait for it.
const presenceBeat = 100 * time.Millisecond

// Presence, typing and receipts cross nodes: alice on node-a sees bob, on
// node-b, come online, type, read (with carol, in one batched receipt)
// and go.
func TestClusterEphemeral(t *testing.T) {
	runCluster(t, 3, Options{PollInterval: 100 * time.Millisecond,
		Hub: core.Config{TypingInterval: time.Millisecond, PresenceInterval: presenceBeat,
			ReadFlush: time.Hour}}, testClusterEphemeral) // reads are flushed by the test
}

func testClusterEphemeral(t *testing.T, c *Cluster, dial Dialer) {
	const room = "cluster-lobby"
	alice := dial(t, c.Nodes[0], c.Token(t, "alice", Claims{Name: "Alice"}), []Join{{Room: room}})
	bob := dial(t, c.Nodes[1], c.Token(t, "bob", Claims{Name: "Bob B"}), []Join{{Room: room}})
	stream := alice.Transport() != "poll" // a poll client may miss presence between polls
	if stream {
		untilPresence(t, alice, "bob", true)
	}

	ty := untilSeen(t, alice, protocol.TypeTyping, func() {
		if _, err := bob.Do(Ctx(t), protocol.Envelope{Type: protocol.TypeTyping, Room: room}); err != nil {
			t.Fatal(err)
		}
	})
	if ty.Room != room || ty.User != "bob" || ty.Name != "Bob B" {
		t.Fatalf("alice on %s got %+v, want bob typing on %s", c.ID(0), ty, c.ID(1))
	}

	if ack, err := alice.Send(Ctx(t), room, "read-me", "hello"); err != nil || ack.Seq != 1 {
		t.Fatalf("send: %+v, %v", ack, err)
	}
	for _, cl := range []Client{alice, bob} {
		expectSeqs(t, cl, room, 1, 1)
	}
	refs := 0
	carol := c.Token(t, "carol", Claims{})
	got := untilMatch(t, alice, "bob's and carol's receipts", func(e protocol.Envelope) bool {
		return e.Type == protocol.TypeReceipt && e.Room == room && e.Reads != nil
	}, func() {
		refs++
		if got := reply(t, bob, protocol.Envelope{Type: protocol.TypeRead, Room: room, Seq: 1, Ref: fmt.Sprint("rd-", refs)}); got.Type != protocol.TypeAck || got.Seq != 1 {
			t.Fatalf("read on %s: %+v", c.ID(1), got)
		}
		if status, body := httpDo(t, c.Nodes[1], http.MethodPost, "/v1/read", carol, map[string]any{"room": room, "seq": 1}); status != http.StatusOK {
			t.Fatalf("POST /v1/read on %s: %d %s", c.ID(1), status, body)
		}
		c.Nodes[1].Hub.FlushReads(Ctx(t))
	})
	if want := map[string]uint64{"bob": 1, "carol": 1}; !maps.Equal(got.Reads, want) {
		t.Fatalf("alice on %s got %+v, want reads %v from %s", c.ID(0), got, want, c.ID(1))
	}

	bob.Close()
	if stream {
		untilPresence(t, alice, "bob", false)
	}
}

// untilPresence reads c's envelopes until user goes online or offline.
func untilPresence(t testing.TB, c Client, user string, online bool) {
	t.Helper()
	untilMatch(t, c, fmt.Sprintf("%s online: %v", user, online), func(e protocol.Envelope) bool {
		p, ok := presenceFor(e, user)
		return ok && *p.Online == online
	}, func() {})
}

// presenceFor returns, in the plain form, user's presence change that e
// announces, alone or in a batch.
func presenceFor(e protocol.Envelope, user string) (protocol.Envelope, bool) {
	for _, p := range e.Unbatch() {
		if p.Type == protocol.TypePresence && p.User == user && p.Online != nil {
			return p, true
		}
	}
	return protocol.Envelope{}, false
}

// Every node lists the users online on any node. One who leaves drops
// off every list, and so, once its lease runs out, does one whose node was
// killed: nobody is left there to say they left.
func TestClusterPresence(t *testing.T) {
	runCluster(t, 3, Options{PollInterval: 100 * time.Millisecond, Hub: core.Config{PresenceInterval: presenceBeat}},
		testClusterPresence)
}

func testClusterPresence(t *testing.T, c *Cluster, dial Dialer) {
	const room = "cluster-members"
	aliceTok := c.Token(t, "alice", Claims{Name: "Alice"})
	alice := dial(t, c.Nodes[0], aliceTok, []Join{{Room: room}})
	bob := dial(t, c.Nodes[1], c.Token(t, "bob", Claims{Name: "Bob B"}), []Join{{Room: room}})
	carol := dial(t, c.Nodes[2], c.Token(t, "carol", Claims{Name: "Carol"}), []Join{{Room: room}})
	a, b, k := member{"alice", "Alice"}, member{"bob", "Bob B"}, member{"carol", "Carol"}
	for _, e := range c.Nodes {
		eventuallyPresence(t, e, aliceTok, room, a, b, k)
	}
	bob.Close()
	for _, e := range c.Nodes {
		eventuallyPresence(t, e, aliceTok, room, a, k)
	}

	killed := time.Now()
	c.Kill(2)
	for _, e := range c.Nodes[:2] {
		waitSince(t, killed, 5*ClusterLease, "carol, on the killed node, offline on "+e.URL, func() bool {
			return presenceIs(t, e, aliceTok, room, a)
		})
	}
	t.Logf("%s: carol offline on the other nodes %v after the kill (lease %v)", alice.Transport(), time.Since(killed), ClusterLease)
	if alice.Transport() != "poll" { // a poll client may miss it between polls
		untilPresence(t, alice, "carol", false)
		// Nothing said goodbye: WebSocket sees 1006, and SSE a stream that
		// just ends, with no disconnect event (code 0).
		want := map[string]int{"websocket": 1006, "sse": 0}[carol.Transport()]
		if err := wantClose(Ctx(t), carol, want); err != nil {
			t.Fatalf("carol, on the killed node: %v", err)
		}
	}
	fence(t, c.Nodes[1], room, alice) // the survivors chat on
}

// presenceIs reports whether GET presence on e shows exactly want.
func presenceIs(t testing.TB, e *Env, token, room string, want ...member) bool {
	t.Helper()
	status, body := httpDo(t, e, http.MethodGet, "/v1/rooms/"+url.PathEscape(room)+"/presence", token, nil)
	var got struct {
		Users []member `json:"users"`
	}
	if status != http.StatusOK {
		t.Fatalf("presence: %d %s", status, body)
	}
	decodeJSON(t, body, &got)
	return slices.Equal(got.Users, want)
}

// The per-user connection cap holds across nodes: with two connections
// open on node-a and node-b, a third on node-c is refused; one closing
// makes room, and a killed node's connections stop counting when its
// lease runs out.
func TestClusterConnCap(t *testing.T) {
	// No presence beat: it would answer held polls.
	runCluster(t, 3, Options{Hub: core.Config{MaxConnsPerUser: 2, PresenceInterval: time.Hour}}, testClusterConnCap)
}

func testClusterConnCap(t *testing.T, c *Cluster, _ Dialer) {
	const room = "cluster-cap"
	tier := tierOf(t)
	open := func(i int) bool { return c.Nodes[i].Hub.Sessions()[tier] == 1 }
	tok := c.Token(t, "alice", Claims{})
	endA, endB := holdOne(t, tier, c.Nodes[0], tok, room), holdOne(t, tier, c.Nodes[1], tok, room)
	eventually(t, "alice's connections on node-a and node-b", func() bool { return open(0) && open(1) })
	status, body, end := connectOnce(t, tier, c.Nodes[2], tok, room)
	end()
	if status != http.StatusTooManyRequests {
		t.Fatalf("a 3rd connection, on %s, with two open on the others: %d; want 429", c.ID(2), status)
	}
	httpError(t, "a 3rd connection, on "+c.ID(2), status, body, http.StatusTooManyRequests, protocol.CodeTooManyConnections)
	endA()
	eventually(t, "room on node-c once node-a's connection closed", func() bool {
		status, _, end := connectOnce(t, tier, c.Nodes[2], tok, room)
		end()
		return status < 300
	})
	endB()

	// Another user: its connection on node-b outlives the node, killed,
	// until the lease runs out.
	eventually(t, "alice gone", func() bool { return !open(1) && !open(2) })
	tok = c.Token(t, "kim", Claims{})
	holdOne(t, tier, c.Nodes[1], tok, room)
	holdOne(t, tier, c.Nodes[2], tok, room)
	eventually(t, "kim's connections on node-b and node-c", func() bool { return open(1) && open(2) })
	killed := time.Now()
	c.Kill(1)
	status, body, end = connectOnce(t, tier, c.Nodes[0], tok, room)
	end()
	switch {
	case status == http.StatusTooManyRequests:
	case time.Since(killed) < ClusterLease:
		t.Fatalf("right after %s was killed, within its lease: %d %s; want 429", c.ID(1), status, body)
	default:
		t.Logf("the attempt after the kill came after the lease; not checked")
	}
	waitSince(t, killed, 5*ClusterLease, "the killed node's connection to stop counting", func() bool {
		status, body, end := connectOnce(t, tier, c.Nodes[0], tok, room)
		end()
		if status != http.StatusTooManyRequests && status >= 300 {
			t.Fatalf("a connection after the kill: %d %s", status, body)
		}
		return status < 300
	})
	t.Logf("%s: the killed node's connection stopped counting %v after the kill (lease %v)", tier, time.Since(killed), ClusterLease)
}

// holdOne opens a connection over tier for tok on e that stays open until
// end, or the test's end: a WebSocket, a stream, or a poll held from the
// live end of room, which must be empty. A refused one fails the test, and
// so does a poll answered before end (but for its node being killed).
func holdOne(t testing.TB, tier string, e *Env, tok, room string) (end func()) {
	t.Helper()
	if tier != "poll" {
		status, body, end := connectOnce(t, tier, e, tok, room)
		if status >= 300 {
			t.Fatalf("%s on %s: %d %s", tier, e.URL, status, body)
		}
		t.Cleanup(end)
		return end
	}
	ctx, cancel := context.WithCancel(Ctx(t))
	done := make(chan struct{})
	go func() {
		defer close(done)
		q := url.Values{"rooms": {room}, "cursor": {protocol.Cursor{room: 0}.Encode()}}
		for {
			a, err := pollControl(ctx, e, tok, q)
			if err == nil && userOnly(a.Events) {
				// The user's own stream ("~" had no position, or a join
				// was told): poll on from the new cursor.
				q.Set("cursor", a.Cursor)
				continue
			}
			var dropped *url.Error // the node was killed
			if ctx.Err() == nil && !errors.As(err, &dropped) {
				t.Errorf("a held poll on %s answered: %+v, %v", e.URL, a, err)
			}
			return
		}
	}()
	end = func() { cancel(); <-done }
	t.Cleanup(end)
	return end
}

// connectOnce opens one connection over tier for tok on e, as a client's
// first request does (a stream or poll for room, a WebSocket upgrade). It
// returns the status (101 for an upgrade) and, when refused, the body; end
// closes an accepted connection.
func connectOnce(t testing.TB, tier string, e *Env, tok, room string) (status int, body []byte, end func()) {
	t.Helper()
	if tier == "websocket" {
		c, err := DialWSRaw(e, tok, nil)
		var de *DialError
		if errors.As(err, &de) {
			return de.Status, de.Body, func() {}
		}
		if err != nil {
			t.Fatalf("dial %s: %v", e.URL, err)
		}
		return http.StatusSwitchingProtocols, nil, c.Close
	}
	ctx, cancel := context.WithCancel(Ctx(t))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.URL+"/v1/"+tier+"?rooms="+url.QueryEscape(room), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("%s on %s: %v", tier, e.URL, err)
	}
	end = func() { cancel(); resp.Body.Close() }
	if resp.StatusCode != http.StatusOK {
		body, _ = io.ReadAll(resp.Body)
		end()
		return resp.StatusCode, body, func() {}
	}
	return resp.StatusCode, nil, end
}

// waitSince waits until cond holds, failing once within has passed since
// start. It polls, for server state that no event announces to the test.
func waitSince(t testing.TB, start time.Time, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The send rate holds across nodes: one user's burst is spent by sends
// through all three, and the next, through any node, is rate_limited; a
// retry of a stored message is still answered.
func TestClusterSendRate(t *testing.T) {
	// A slow refill, so that no timing is assumed.
	runCluster(t, 3, Options{Hub: core.Config{SendRate: 0.01, SendBurst: 3}}, testClusterSendRate)
}

func testClusterSendRate(t *testing.T, c *Cluster, dial Dialer) {
	const room = "cluster-rate"
	tok := c.Token(t, "alice", Claims{})
	var clients []Client
	for i, e := range c.Nodes {
		cl := dial(t, e, tok, nil)
		clients = append(clients, cl)
		if ack, err := cl.Send(Ctx(t), room, fmt.Sprint("b", i), "x"); err != nil || ack.Type != protocol.TypeAck {
			t.Fatalf("send %d of the burst, on %s: %+v, %v", i+1, c.ID(i), ack, err)
		}
	}
	for i, cl := range clients {
		got, err := cl.Send(Ctx(t), room, fmt.Sprint("over-", i), "x")
		if err != nil {
			t.Fatal(err)
		}
		wantError(t, "a send past the burst on "+c.ID(i), got, protocol.CodeRateLimited)
		if again, err := cl.Send(Ctx(t), room, "b0", "x"); err != nil || again.Type != protocol.TypeAck || again.Seq != 1 {
			t.Fatalf("a retry of b0 on %s at the limit: %+v, %v; want its ack", c.ID(i), again, err)
		}
	}
}

// userOnly reports whether events are all of the user's own stream.
func userOnly(events []protocol.Envelope) bool {
	for _, e := range events {
		if e.Type != protocol.TypeRoom && e.Room != protocol.UserRoom {
			return false
		}
	}
	return len(events) > 0
}
