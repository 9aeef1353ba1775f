package transporttest

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"sync"
	"testing"

	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/core/redis/redistest"
)

// Issue 10: three nodes on one real redis-server, clients spread over
// them. Each test runs per transport, like the one-node tests; the
// subtests share the test's redis-server, each cluster under its own key
// prefix.

// runCluster starts one redis-server for the test and runs test once per
// transport, each on n fresh nodes built with opts. The transports run at
// once: their clusters share nothing but the redis-server, and most of a
// cluster test is waiting for a lease or a beat.
func runCluster(t *testing.T, n int, opts Options, test func(t *testing.T, c *Cluster, dial Dialer)) {
	redis := redistest.Start(t, redistest.Options{Durable: true})
	Run(t, func(t *testing.T, dial Dialer) {
		t.Parallel()
		test(t, NewClusterOn(t, redis, n, opts), dial)
	})
}

// Guarantee 1 across nodes: senders on every node at once; the acks hand
// out 1..N once each, and a client on every node receives exactly 1..N in
// order.
func TestClusterOrder(t *testing.T) { runCluster(t, 3, Options{Hub: fast}, testClusterOrder) }

func testClusterOrder(t *testing.T, c *Cluster, dial Dialer) {
	const room = "cluster-order"
	const sendersPerNode, perSender = 3, 10
	total := uint64(len(c.Nodes) * sendersPerNode * perSender)
	var clients []Client
	for i, e := range c.Nodes {
		clients = append(clients, dial(t, e, c.Token(t, fmt.Sprint("user-", c.ID(i)), Claims{}), []Join{{Room: room}}))
	}
	ctx := Ctx(t)
	var mu sync.Mutex
	idOf := make(map[uint64]string)
	errs := make(chan error, len(clients)*sendersPerNode)
	var wg sync.WaitGroup
	for i, cl := range clients {
		for k := range sendersPerNode {
			wg.Go(func() {
				var last uint64
				for j := range perSender {
					id := fmt.Sprintf("%s-%d-%d", c.ID(i), k, j)
					ack, err := cl.Send(ctx, room, id, "text "+id)
					if err != nil || ack.Type != protocol.TypeAck || ack.ID != id || ack.Seq < 1 || ack.Seq > total {
						errs <- fmt.Errorf("send %s: %+v, %v", id, ack, err)
						return
					}
					if ack.Seq <= last {
						errs <- fmt.Errorf("send %s: seq %d after %d from the same sender", id, ack.Seq, last)
						return
					}
					last = ack.Seq
					mu.Lock()
					prev, dup := idOf[ack.Seq]
					idOf[ack.Seq] = id
					mu.Unlock()
					if dup {
						errs <- fmt.Errorf("seq %d acked twice: %s and %s", ack.Seq, prev, id)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, cl := range clients {
		for _, m := range expectSeqs(t, cl, room, 1, total) {
			if m.ID != idOf[m.Seq] || m.Text != "text "+m.ID {
				t.Fatalf("client on %s: seq %d is %q (%q), acked as %q", c.ID(i), m.Seq, m.ID, m.Text, idOf[m.Seq])
			}
		}
	}
	fence(t, c.Nodes[1], room, clients...)
}

// Guarantee 3 across nodes: a retried (room, id) through another node
// gets the first ack, even when the two race, and history holds each id
// once.
func TestClusterRetry(t *testing.T) { runCluster(t, 3, Options{Hub: fast}, testClusterRetry) }

func testClusterRetry(t *testing.T, c *Cluster, dial Dialer) {
	const room = "cluster-retry"
	const racing = 20
	tok := c.Token(t, "alice", Claims{})
	onA, onB := dial(t, c.Nodes[0], tok, nil), dial(t, c.Nodes[1], tok, nil)
	bob := dial(t, c.Nodes[2], c.Token(t, "bob", Claims{}), []Join{{Room: room}})
	ctx := Ctx(t)
	first, err := onA.Send(ctx, room, "dup", "hello")
	if err != nil || first.Type != protocol.TypeAck || first.Seq != 1 {
		t.Fatalf("first send on %s: %+v, %v", c.ID(0), first, err)
	}
	for i, cl := range []Client{onB, onA, onB} {
		again, err := cl.Send(ctx, room, "dup", "changed text")
		if err != nil || again.Type != protocol.TypeAck || again.Seq != first.Seq || again.TS != first.TS || again.ID != first.ID {
			t.Fatalf("retry %d: %+v, %v; want the first ack %+v", i, again, err, first)
		}
	}
	// The same ids from two nodes at the same time.
	for i, ack := range sendSameIDs(t, room, racing, onA, onB) {
		if ack.Seq < 2 || ack.Seq > racing+1 {
			t.Fatalf("same-%d: seq %d outside 2..%d", i, ack.Seq, racing+1)
		}
	}
	ids := map[string]bool{}
	for _, m := range expectSeqs(t, bob, room, 1, racing+1) {
		if ids[m.ID] {
			t.Fatalf("%q delivered twice", m.ID)
		}
		ids[m.ID] = true
		if m.Seq == 1 && (m.ID != "dup" || m.Text != "hello") {
			t.Fatalf("seq 1 is %+v; want the first send of dup", m)
		}
	}
	fence(t, c.Nodes[0], room, bob)
	for i := range c.Nodes {
		h := history(t, c.Nodes[i], tok, room)
		seen := map[string]bool{}
		for _, m := range h.Messages {
			if seen[m.ID] {
				t.Fatalf("history on %s holds %q twice", c.ID(i), m.ID)
			}
			seen[m.ID] = true
		}
		if h.Head != racing+2 || len(h.Messages) != racing+2 || !seen["dup"] {
			t.Fatalf("history on %s: head %d, %d messages; want %d, dup once", c.ID(i), h.Head, len(h.Messages), racing+2)
		}
	}
}

// Guarantees 4 and 5 across nodes: a client that leaves one node resumes
// on another, from the seq it has, exactly: nothing lost, nothing twice,
// also while another node is sending. SSE and poll also resume by cursor
// (Last-Event-ID, cursor=) on another node.
func TestClusterResume(t *testing.T) { runCluster(t, 3, Options{Hub: fast}, testClusterResume) }

func testClusterResume(t *testing.T, c *Cluster, dial Dialer) {
	const room = "cluster-resume"
	const during = 60
	a, b, sender := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	tok := c.Token(t, "bob", Claims{})
	fill(t, sender, room, 5, "before")
	first := dial(t, a, tok, []Join{{Room: room, Since: ptr(0)}})
	expectSeqs(t, first, room, 1, 5)
	first.Close()

	fill(t, sender, room, 7, "while away") // 6..12
	again := dial(t, b, tok, []Join{{Room: room, Since: ptr(5)}})
	expectSeqs(t, again, room, 6, 12)
	fence(t, sender, room, again) // 13
	again.Close()

	// A resume on b while c sends: the replay turns live with messages
	// arriving from another node.
	done := make(chan error, 1)
	go func() { done <- fillErr(Ctx(t), sender, room, during, "during") }()
	busy := dial(t, b, tok, []Join{{Room: room, Since: ptr(13)}})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	expectSeqs(t, busy, room, 14, 13+during)
	fence(t, a, room, busy)
	busy.Close()
	head := uint64(14 + during)

	switch busy.Transport() {
	case "sse":
		clusterResumeSSE(t, c, tok, room, head)
	case "poll":
		clusterResumePoll(t, c, tok, room, head)
	}
}

// clusterResumeSSE: a stream on node a, then its Last-Event-ID on node b,
// and the same cursor as cursor= on node c: each resumes quietly (no
// joined) with exactly what was missed, then goes live.
func clusterResumeSSE(t *testing.T, c *Cluster, tok, room string, head uint64) {
	since := url.QueryEscape(fmt.Sprintf("%s:%d", room, head-3))
	s := swOpen(t, http.DefaultClient, c.Nodes[0].URL, tok, "rooms="+room+"&since="+since, "", false)
	cursor := s.expect(t, room, head-2, head)[2].id
	s.resp.Body.Close()
	fill(t, c.Nodes[2], room, 4, "missed")
	missed := head + 4
	for i, resume := range []struct{ query, lastID string }{
		{"rooms=" + room, cursor},
		{"rooms=" + room + "&cursor=" + url.QueryEscape(cursor), ""},
	} {
		e := c.Nodes[i+1]
		s := swOpen(t, http.DefaultClient, e.URL, tok, resume.query, resume.lastID, false)
		for want := head + 1; want <= missed; {
			ev, ok := s.next(t)
			switch {
			case !ok:
				t.Fatalf("%s: the resumed stream ended at %d", c.ID(i+1), want)
			case ev.env.Type == protocol.TypeMessage && ev.env.Seq != want:
				t.Fatalf("%s: resumed with seq %d, want %d", c.ID(i+1), ev.env.Seq, want)
			case ev.env.Type == protocol.TypeMessage:
				want++
			case ev.env.Type == protocol.TypeJoined:
				t.Fatalf("%s: an exact resume by cursor sent %+v", c.ID(i+1), ev.env)
			}
		}
		live := hubSend(t, c.Nodes[i], room, "live")
		if ev := s.nextMessage(t); ev.env.Seq != live.Seq {
			t.Fatalf("%s: after the resume got seq %d, want the live %d", c.ID(i+1), ev.env.Seq, live.Seq)
		}
		s.resp.Body.Close()
		missed++ // by the next resume, from the same cursor
	}
}

// clusterResumePoll: a poll on node a, then its cursor on node b and on
// node c: each resumes with exactly what was missed, since no node keeps
// state a poll depends on. A node may answer in more than one poll (a
// session it kept for an earlier poll at the same cursor answers with
// what its live feed has brought so far), so each resume polls on from
// its answers' cursors until it has everything.
func clusterResumePoll(t *testing.T, c *Cluster, tok, room string, head uint64) {
	first := pollOnce(t, c.Nodes[0], tok, url.Values{"rooms": {room}, "since": {fmt.Sprintf("%s:%d", room, head-3)}})
	if seqs := messageSeqs(first.Events); !equalSeqs(seqs, head-2, head) {
		t.Fatalf("first poll: seqs %v, want %d..%d", seqs, head-2, head)
	}
	fill(t, c.Nodes[2], room, 4, "missed")
	for i, e := range c.Nodes[1:] {
		var seqs []uint64
		cursor := first.Cursor
		for polls := 0; len(seqs) < 4; polls++ {
			if polls == 4 {
				t.Fatalf("node-a's cursor on %s: %v after %d polls, want %d..%d", c.ID(i+1), seqs, polls, head+1, head+4)
			}
			got := pollOnce(t, e, tok, url.Values{"rooms": {room}, "cursor": {cursor}})
			for _, ev := range got.Events {
				if ev.Type == protocol.TypeJoined {
					t.Fatalf("node-a's cursor on %s: an exact resume sent %+v", c.ID(i+1), ev)
				}
			}
			seqs = append(seqs, messageSeqs(got.Events)...)
			cursor = got.Cursor
		}
		if !equalSeqs(seqs, head+1, head+4) {
			t.Fatalf("node-a's cursor on %s: seqs %v, want exactly %d..%d", c.ID(i+1), seqs, head+1, head+4)
		}
	}
}

// tierOf is the transport a subtest of Run or runCluster runs over: Run
// names each subtest after it.
func tierOf(t *testing.T) string { return path.Base(t.Name()) }

// A ticket minted on one node opens a connection on any other: the nodes
// share the ticket key. One minted under another key does not.
func TestClusterTicket(t *testing.T) { runCluster(t, 3, Options{}, testClusterTicket) }

func testClusterTicket(t *testing.T, c *Cluster, _ Dialer) {
	const room = "cluster-ticket"
	tier := tierOf(t)
	tok := c.Token(t, "alice", Claims{})
	ticket := issueTicket(t, c.Nodes[0], tok)
	foreign := issueTicket(t, NewEnv(t, Options{}), tok)
	for i, e := range c.Nodes[1:] {
		open := func(ticket string) int {
			q := "ticket=" + url.QueryEscape(ticket)
			if tier != "websocket" {
				return openStream(t, e.URL+"/v1/"+tier+"?rooms="+room+"&"+q)
			}
			ws, err := DialWSURL(WSURL(e, q), nil, nil)
			var de *DialError
			if errors.As(err, &de) {
				return de.Status
			}
			if err != nil {
				t.Fatalf("dial %s: %v", c.ID(i+1), err)
			}
			defer ws.Close()
			join(t, ws, room, nil)
			return http.StatusSwitchingProtocols
		}
		if status := open(ticket); status >= 300 {
			t.Fatalf("%s with node-a's ticket on %s: %d", tier, c.ID(i+1), status)
		}
		if status := open(foreign); status != http.StatusUnauthorized {
			t.Fatalf("%s with a ticket under another key on %s: %d; want 401", tier, c.ID(i+1), status)
		}
	}
}
