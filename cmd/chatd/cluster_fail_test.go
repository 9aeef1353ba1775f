//go:build linux

package main

// Cluster failure tests, issue 10's "Done when" 3 to 5, with real
// processes only: three chatd nodes (the binary) on one durable
// redis-server (redistest: AOF, appendfsync always), and Go clients
// (transports/client), each forced onto one tier, talking to them over
// loopback. The nodes share nothing but Redis.
//
//   - TestE2EClusterRoundRobin: clients chat through a reverse proxy that
//     sends every request to the next node in turn, with no stickiness.
//   - TestE2EClusterNodeKill: one node dies of SIGKILL mid-run; its
//     clients fail over to the other nodes and resume.
//   - TestE2EClusterRedisKill: redis-server dies of SIGKILL mid-run and is
//     restarted on its data; the nodes answer unavailable meanwhile and
//     recover by themselves.
//
// Each checks, at the end, the room as a whole (chat.verify): the acks
// number it 1..total with no seq given twice, history holds every message
// once at its acked seq, and every client received every message exactly
// once, in seq order.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/core/redis/redistest"
	"github.com/chatd/chatd/transports/client"
)

const (
	clusterNodes = 3
	clusterWait  = 30 * time.Second // bound on each thing these tests wait for
)

// clientTiers are the tiers a test client can be forced onto.
var clientTiers = []string{client.WebSocket, client.SSE, client.Poll}

// ---- the cluster ----

// redisCluster is a durable redis-server and chatd nodes that share it.
type redisCluster struct {
	redis *redistest.Server
	procs []*proc
	urls  []string // each node's base URL
}

// startRedisCluster starts redis-server and n nodes on it, and waits until
// every node is ready.
func startRedisCluster(t *testing.T, n int) *redisCluster {
	t.Helper()
	rc := &redisCluster{redis: redistest.Start(t, redistest.Options{Durable: true})}
	for i := range n { // started together, waited for after
		rc.procs = append(rc.procs, launch(t, []string{"--addr", "127.0.0.1:0", "--redis", rc.redis.URL(),
			"--jwt-secret", e2eSecret, "--node-id", fmt.Sprintf("n%d", i)}))
	}
	for _, p := range rc.procs {
		rc.urls = append(rc.urls, p.waitReady(t))
	}
	return rc
}

var readyzClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// readyz returns the status of GET /readyz on base; 0 when there is no
// answer.
func readyz(base string) int {
	resp, err := readyzClient.Get(base + "/readyz")
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitReadyz waits until /readyz answers status on every node.
func (rc *redisCluster) waitReadyz(t *testing.T, status int) {
	t.Helper()
	for i, base := range rc.urls {
		waitFor(t, fmt.Sprintf("/readyz %d on node %d", status, i), func() bool { return readyz(base) == status })
	}
}

// ---- the ways a client reaches the nodes ----

// roundRobin is a reverse proxy on loopback in front of the nodes. It
// sends each new request (each HTTP request, each WebSocket upgrade, each
// SSE stream, each poll) to the next node in turn, with no stickiness of
// any kind. The turn is kept per path, so that every kind of request is
// spread over all the nodes: three clients' streams land on three nodes,
// and a client's ticket, stream, sends and successive polls go wherever
// the turn is. Streams pass as they come (FlushInterval -1); WebSocket
// upgrades are ReverseProxy's own.
type roundRobin struct {
	URL   string
	nodes map[string]int // node host:port → its index; static

	mu     sync.Mutex
	next   map[string]int   // path → the index of the node its next request goes to; guarded by mu
	served map[string][]int // path → answers under 400 from each node; guarded by mu
}

func newRoundRobin(t *testing.T, urls []string) *roundRobin {
	t.Helper()
	p := &roundRobin{nodes: map[string]int{}, next: map[string]int{}, served: map[string][]int{}}
	targets := make([]*url.URL, len(urls))
	for i, u := range urls {
		target, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		targets[i], p.nodes[target.Host] = target, i
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			p.mu.Lock()
			i := p.next[r.In.URL.Path]
			p.next[r.In.URL.Path] = (i + 1) % len(targets)
			p.mu.Unlock()
			r.SetURL(targets[i])
		},
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode < http.StatusBadRequest {
				p.mu.Lock()
				path := resp.Request.URL.Path
				if p.served[path] == nil {
					p.served[path] = make([]int, len(targets))
				}
				p.served[path][p.nodes[resp.Request.URL.Host]]++
				p.mu.Unlock()
			}
			return nil
		},
		Transport:     tr,
		FlushInterval: -1,
		ErrorLog:      log.New(io.Discard, "", 0), // cancelled streams at the end
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(tr.CloseIdleConnections)
	t.Cleanup(srv.Close) // after the clients' cleanups, registered later
	p.URL = srv.URL
	return p
}

// servedBy returns how many requests to path each node answered.
func (p *roundRobin) servedBy(path string) []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.served[path]; s != nil {
		return slices.Clone(s)
	}
	return make([]int, len(p.nodes))
}

// failover is a client that knows every node: it connects to the first
// node that takes the connection, its home node first, whatever address
// it was asked for. It records which node each connection reached.
type failover struct {
	addrs []string // the nodes' host:port, home first; static
	index []int    // each one's index in the cluster; static

	mu      sync.Mutex
	reached []int // the node of each connection, in order; guarded by mu
}

func newFailover(t *testing.T, urls []string, home int) *failover {
	t.Helper()
	f := &failover{}
	for k := range urls {
		i := (home + k) % len(urls)
		u, err := url.Parse(urls[i])
		if err != nil {
			t.Fatal(err)
		}
		f.addrs, f.index = append(f.addrs, u.Host), append(f.index, i)
	}
	return f
}

func (f *failover) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	var d net.Dialer
	var err error
	for k, addr := range f.addrs {
		var c net.Conn
		if c, err = d.DialContext(ctx, network, addr); err == nil {
			f.mu.Lock()
			f.reached = append(f.reached, f.index[k])
			f.mu.Unlock()
			return c, nil
		}
	}
	return nil, err
}

// config is the client.Config of a client that reaches the nodes
// through f: its HTTP requests and WebSockets alike.
func (f *failover) config(t *testing.T) client.Config {
	tr := &http.Transport{DialContext: f.dial, MaxIdleConnsPerHost: 8}
	t.Cleanup(tr.CloseIdleConnections)
	return client.Config{
		URL:        "http://" + f.addrs[0],
		HTTPClient: &http.Client{Transport: tr},
		WSDialer:   &websocket.Dialer{NetDialContext: f.dial, HandshakeTimeout: 5 * time.Second},
	}
}

// nodesReached returns the node of each connection made so far.
func (f *failover) nodesReached() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reached)
}

// ---- the room and its clients ----

// chat is one room and the Go clients in it, each one user, with
// everything they sent and received.
type chat struct {
	room   string
	total  int             // messages the room holds in the end; static
	ctx    context.Context // ends the clients and their sends
	cancel context.CancelFunc

	// phase is the test's own clock (0 before the failure), stamped on
	// every send when it begins and when it is acked.
	phase atomic.Int32

	mu      sync.Mutex
	members []*member        // guarded by mu
	sends   map[string]*sent // by id; guarded by mu
	nAcked  int              // guarded by mu
	marks   []ackMark        // guarded by mu
}

// sent is one message: who sent it, and its ack.
type sent struct {
	id, from, text string
	began, acked   int32  // phase when the send began, and when it was acked
	seq            uint64 // 0 until acked
}

type ackMark struct {
	n    int
	done chan struct{}
}

// member is one client in the room.
type member struct {
	user, tier string
	c          *client.Client
	joined     chan struct{} // closed at the first joined of the room
	full       chan struct{} // closed once total messages arrived
	ran        chan struct{} // closed when Run has returned
	runErr     error         // Run's result; read after ran closes

	mu        sync.Mutex
	firstHead *uint64             // head of the first joined; guarded by mu
	msgs      []protocol.Envelope // messages of the room, in arrival order; guarded by mu
}

// newChat returns a room that will hold total messages. Its clients and
// sends end with the test.
func newChat(t *testing.T, room string, total int) *chat {
	ctx, cancel := context.WithTimeout(context.Background(), 3*clusterWait)
	t.Cleanup(cancel)
	return &chat{room: room, total: total, ctx: ctx, cancel: cancel, sends: map[string]*sent{}}
}

// join starts a client for user on tier with cfg's way to the server
// (URL, HTTPClient, WSDialer), following the room live from now on. Its
// events are collected until the test ends.
func (ch *chat) join(t *testing.T, user, tier string, cfg client.Config) *member {
	t.Helper()
	tok := token(t, e2eSecret, user, user)
	cfg.Token = func(context.Context) (string, error) { return tok, nil }
	cfg.Rooms, cfg.Transports = []string{ch.room}, []string{tier}
	cfg.ConnectTimeout = 5 * time.Second
	cfg.BackoffBase, cfg.BackoffMax = 50*time.Millisecond, 500*time.Millisecond
	m := &member{user: user, tier: tier, c: client.New(cfg),
		joined: make(chan struct{}), full: make(chan struct{}), ran: make(chan struct{})}
	ctx, cancel := context.WithCancel(ch.ctx)
	go func() {
		defer close(m.ran)
		m.runErr = m.c.Run(ctx)
	}()
	go m.collect(ch.room, ch.total)
	t.Cleanup(func() {
		cancel()
		select {
		case <-m.ran:
			if !errors.Is(m.runErr, context.Canceled) {
				t.Errorf("%s (%s): Run ended with %v", user, tier, m.runErr)
			}
		case <-time.After(clusterWait):
			t.Errorf("%s (%s): Run did not return within %v of its end", user, tier, clusterWait)
		}
	})
	ch.mu.Lock()
	ch.members = append(ch.members, m)
	ch.mu.Unlock()
	return m
}

// collect reads the client's events until Run ends.
func (m *member) collect(room string, want int) {
	for e := range m.c.Events() {
		if e.Room != room {
			continue
		}
		switch e.Type {
		case protocol.TypeJoined:
			m.mu.Lock()
			first := m.firstHead == nil && e.Head != nil
			if first {
				m.firstHead = e.Head
			}
			m.mu.Unlock()
			if first {
				close(m.joined)
			}
		case protocol.TypeMessage:
			m.mu.Lock()
			m.msgs = append(m.msgs, e)
			n := len(m.msgs)
			m.mu.Unlock()
			if n == want {
				close(m.full)
			}
		}
	}
}

func (ch *chat) memberList() []*member {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return slices.Clone(ch.members)
}

// await waits for c to close, failing the test after clusterWait.
func await(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	timer := time.NewTimer(clusterWait)
	defer timer.Stop()
	select {
	case <-c:
	case <-timer.C:
		t.Fatalf("gave up waiting for %s after %v", what, clusterWait)
	}
}

// awaitMembers waits, under one bound, until every member's channel
// (picked by which) has closed.
func (ch *chat) awaitMembers(t *testing.T, what string, which func(*member) <-chan struct{}) {
	t.Helper()
	timer := time.NewTimer(clusterWait)
	defer timer.Stop()
	for _, m := range ch.memberList() {
		select {
		case <-which(m):
		case <-timer.C:
			m.mu.Lock()
			n := len(m.msgs)
			m.mu.Unlock()
			t.Fatalf("%s (%s) not %s within %v: %d messages, state %+v", m.user, m.tier, what, clusterWait, n, m.c.State())
		}
	}
}

func joinedCh(m *member) <-chan struct{} { return m.joined }
func fullCh(m *member) <-chan struct{}   { return m.full }

// begin records a send about to be made.
func (ch *chat) begin(id, from, text string) *sent {
	s := &sent{id: id, from: from, text: text, began: ch.phase.Load()}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.sends[id] = s
	return s
}

// settle records the ack of s, once it is checked.
func (ch *chat) settle(s *sent, ack protocol.Envelope) error {
	if ack.Type != protocol.TypeAck || ack.ID != s.id || ack.Room != ch.room || ack.Seq == 0 {
		return fmt.Errorf("send %s: answer %+v is not its ack", s.id, ack)
	}
	phase := ch.phase.Load()
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if s.seq != 0 && s.seq != ack.Seq {
		return fmt.Errorf("send %s: acked with seq %d, then %d", s.id, s.seq, ack.Seq)
	}
	if s.seq == 0 {
		s.seq, s.acked = ack.Seq, phase
		ch.nAcked++
	}
	for _, m := range ch.marks {
		if ch.nAcked == m.n {
			close(m.done)
		}
	}
	return nil
}

// reach returns a channel that closes once n sends are acked.
func (ch *chat) reach(n int) <-chan struct{} {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	done := make(chan struct{})
	if ch.nAcked >= n {
		close(done)
	} else {
		ch.marks = append(ch.marks, ackMark{n: n, done: done})
	}
	return done
}

// sendAll has every member send n messages, one every pace (0: one after
// the other), each by SendID, which retries under the same id until the
// message is acked. It returns at once; the channel closes when every
// sender has finished.
func (ch *chat) sendAll(t *testing.T, n int, pace time.Duration) <-chan struct{} {
	var wg sync.WaitGroup
	for _, m := range ch.memberList() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var tick <-chan time.Time
			if pace > 0 {
				ticker := time.NewTicker(pace)
				defer ticker.Stop()
				tick = ticker.C
			}
			for i := range n {
				if tick != nil {
					select {
					case <-tick:
					case <-ch.ctx.Done():
						return
					}
				}
				id := fmt.Sprintf("%s-m%02d", m.user, i)
				s := ch.begin(id, m.user, fmt.Sprintf("message %d from %s", i, m.user))
				ack, err := m.c.SendID(ch.ctx, ch.room, id, s.text)
				if err == nil {
					err = ch.settle(s, ack)
				}
				if err != nil {
					if ch.ctx.Err() == nil {
						t.Errorf("%s (%s): send %s: %v", m.user, m.tier, id, err)
					}
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t.Cleanup(func() { ch.cancel(); <-done }) // a send returns once ctx ends
	return done
}

// sentBy returns the sends of user, or of everyone for "".
func (ch *chat) sentBy(user string) []sent {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	var out []sent
	for _, s := range ch.sends {
		if user == "" || s.from == user {
			out = append(out, *s)
		}
	}
	return out
}

// verify checks the room once every send is acked and every member has
// received total messages: the acks number the room 1..total with no seq
// given twice; history (read through base, page by page) holds each
// message once, at its acked seq, from its sender; each member received
// every message exactly once, in seq order, and its client dropped no
// message as a duplicate (the server never sent one twice).
func (ch *chat) verify(t *testing.T, base string) {
	t.Helper()
	sends := ch.sentBy("")
	bySeq := map[uint64]sent{}
	for _, s := range sends {
		if s.seq == 0 {
			t.Errorf("send %s was never acked", s.id)
			continue
		}
		if other, dup := bySeq[s.seq]; dup {
			t.Errorf("sends %s and %s were both acked with seq %d", other.id, s.id, s.seq)
		}
		bySeq[s.seq] = s
	}
	if len(sends) != ch.total {
		t.Errorf("%d sends, want %d", len(sends), ch.total)
	}
	for seq := uint64(1); seq <= uint64(ch.total); seq++ {
		if _, ok := bySeq[seq]; !ok {
			t.Errorf("no send was acked with seq %d", seq)
		}
	}

	hc := newClient()
	defer hc.CloseIdleConnections()
	all, head := fullHistory(t, hc, base, token(t, e2eSecret, "reader", "Reader"), ch.room)
	if head != uint64(ch.total) {
		t.Errorf("history head %d, want %d", head, ch.total)
	}
	for _, m := range all {
		s, ok := bySeq[m.Seq]
		if !ok || s.id != m.ID || s.from != m.From || s.text != m.Text {
			t.Errorf("history seq %d holds %q from %q (%q), acked there: %+v", m.Seq, m.ID, m.From, m.Text, s)
		}
	}

	for _, mb := range ch.memberList() {
		mb.mu.Lock()
		got, first := slices.Clone(mb.msgs), mb.firstHead
		mb.mu.Unlock()
		who := mb.user + " (" + mb.tier + ")"
		if first == nil || *first != 0 {
			t.Errorf("%s: its first joined had head %v, want 0: the room was not fresh", who, first)
		}
		if len(got) != ch.total {
			t.Errorf("%s received %d messages, want %d", who, len(got), ch.total)
		}
		for i, e := range got {
			if e.Seq != uint64(i+1) {
				t.Errorf("%s: message %d has seq %d, want %d (lost, repeated or out of order)", who, i+1, e.Seq, i+1)
				break
			}
			if s := bySeq[e.Seq]; e.ID != s.id || e.From != s.from || e.Text != s.text {
				t.Errorf("%s: seq %d is %q from %q, acked as %q from %q", who, e.Seq, e.ID, e.From, s.id, s.from)
			}
		}
		if d := mb.c.Stats().Duplicates; d != 0 {
			t.Errorf("%s: the server sent %d messages the client already had", who, d)
		}
	}
}

// ---- tests ----

// TestE2EClusterRoundRobin (issue 10, done when 3): three nodes behind a
// round-robin proxy with no stickiness: a client's negotiate (which gives
// its ticket), stream, sends, polls and history pages each go to the next
// node in turn, and the three streams of a tier to three different nodes.
// On each tier, three clients each send 10 messages into one room: every
// client receives all 30 exactly once, in seq order 1..30, and history
// holds each once. Every node served each kind of request of the tier.
func TestE2EClusterRoundRobin(t *testing.T) {
	rc := startRedisCluster(t, clusterNodes)
	proxy := newRoundRobin(t, rc.urls)
	const clients, perClient = 3, 10
	spread := map[string][]string{ // the paths that must reach every node
		client.WebSocket: {"/v1/negotiate", "/v1/ws"},
		client.SSE:       {"/v1/negotiate", "/v1/sse", "/v1/send"},
		client.Poll:      {"/v1/negotiate", "/v1/poll", "/v1/send"},
	}
	for _, tier := range clientTiers {
		t.Run(tier, func(t *testing.T) {
			before := map[string][]int{}
			for _, path := range spread[tier] {
				before[path] = proxy.servedBy(path)
			}
			ch := newChat(t, "rr-"+tier, clients*perClient)
			for i := range clients {
				ch.join(t, fmt.Sprintf("rr-%s-%d", tier, i), tier, client.Config{URL: proxy.URL})
			}
			ch.awaitMembers(t, "joined", joinedCh)
			await(t, ch.sendAll(t, perClient, 0), "every send acked")
			ch.awaitMembers(t, "given every message", fullCh)
			ch.verify(t, proxy.URL)
			for _, path := range spread[tier] {
				after := proxy.servedBy(path)
				for node := range after {
					if after[node] == before[path][node] {
						t.Errorf("node %d served no %s through the proxy (%v before, %v after)", node, path, before[path], after)
					}
				}
			}
		})
	}
}

// TestE2EClusterNodeKill (issue 10, done when 4): nine clients, one per
// tier on each of three nodes, connect directly to their home node and
// know the others (failover: a client with every node's address, home
// first). They send 20 messages each, paced; once a third are acked, node
// 0 dies of SIGKILL. Its clients reconnect to the next node that answers,
// resume from their positions and send on, retrying what was in flight
// under the same id. Every message is acked, history holds each once in
// seq order 1..180, and every client, those that stayed and those that
// moved, received each exactly once.
func TestE2EClusterNodeKill(t *testing.T) {
	rc := startRedisCluster(t, clusterNodes)
	const perClient, victim = 20, 0
	ch := newChat(t, "node-kill", clusterNodes*len(clientTiers)*perClient)
	ways := map[*member]*failover{}
	homes := map[*member]int{}
	for _, tier := range clientTiers {
		for home := range rc.urls {
			f := newFailover(t, rc.urls, home)
			m := ch.join(t, fmt.Sprintf("nk-%s-n%d", tier, home), tier, f.config(t))
			ways[m], homes[m] = f, home
		}
	}
	ch.awaitMembers(t, "joined", joinedCh)
	done := ch.sendAll(t, perClient, 20*time.Millisecond)
	await(t, ch.reach(ch.total/3), "a third of the acks")
	rc.procs[victim].kill9(t)
	ch.phase.Store(1)
	await(t, done, "every send acked")
	ch.awaitMembers(t, "given every message", fullCh)
	ch.verify(t, rc.urls[1])

	moved := 0
	for m, f := range ways {
		reached := f.nodesReached()
		away := slices.IndexFunc(reached, func(n int) bool { return n != homes[m] })
		if homes[m] != victim {
			if away >= 0 {
				t.Errorf("%s (%s) left its live node %d: connections to %v", m.user, m.tier, homes[m], reached)
			}
			continue
		}
		after, across := 0, 0 // sends begun after the kill; begun before it and acked after
		for _, s := range ch.sentBy(m.user) {
			if s.began > 0 {
				after++
			} else if s.acked > 0 {
				across++
			}
		}
		switch {
		case len(reached) == 0 || reached[0] != victim:
			t.Errorf("%s (%s) did not start on node %d: connections to %v", m.user, m.tier, victim, reached)
		case away < 0:
			t.Errorf("%s (%s) never reached another node after the kill: connections to %v", m.user, m.tier, reached)
		case m.tier != client.Poll && m.c.Stats().Connects < 2:
			// A stream dies with its node. A poll link need not: its
			// next poll, with the same cursor, goes to the next node.
			t.Errorf("%s (%s) went live %d times, want a reconnect", m.user, m.tier, m.c.Stats().Connects)
		case after == 0:
			t.Errorf("%s (%s) had finished sending before the kill: not mid-run", m.user, m.tier)
		default:
			moved++
			t.Logf("%s (%s): %d sends after the kill, %d across it; %d links; connections to %v",
				m.user, m.tier, after, across, m.c.Stats().Connects, reached)
		}
	}
	if moved != len(clientTiers) {
		t.Errorf("%d of the %d clients of node %d moved", moved, len(clientTiers), victim)
	}
	for i, p := range rc.procs {
		if i != victim && p.hasExited() {
			t.Errorf("node %d exited: %v", i, p.err)
		}
	}
}

// TestE2EClusterRedisKill (issue 10, done when 5): three clients, one per
// node and tier, send 20 messages each, paced; once 20 are acked,
// redis-server dies of SIGKILL. Every node's /readyz turns 503, and a send
// to each node then is answered 503 unavailable. redis-server restarts on
// its AOF; every /readyz turns 200 again with no chatd restarted; the
// refused sends succeed when retried under the same id, and the clients'
// own sends, retried meanwhile, complete. No acked message is lost, and
// every send begun after the kill has a seq above every seq acked before
// the restart: seqs continue, none is given twice. Every client received
// all 63 messages exactly once.
func TestE2EClusterRedisKill(t *testing.T) {
	rc := startRedisCluster(t, clusterNodes)
	const perClient = 20
	ch := newChat(t, "redis-kill", len(clientTiers)*perClient+clusterNodes)
	for i, tier := range clientTiers {
		ch.join(t, fmt.Sprintf("rk-%s-n%d", tier, i), tier, client.Config{URL: rc.urls[i]})
	}
	ch.awaitMembers(t, "joined", joinedCh)
	done := ch.sendAll(t, perClient, 20*time.Millisecond)
	await(t, ch.reach(perClient), "the first acks")

	rc.redis.Kill()
	ch.phase.Store(1)
	rc.waitReadyz(t, http.StatusServiceUnavailable)
	// Every client has a send held by the outage: its SendID retries it.
	for _, m := range ch.memberList() {
		waitFor(t, m.user+"'s send held by the outage", func() bool {
			return slices.ContainsFunc(ch.sentBy(m.user), func(s sent) bool { return s.seq == 0 })
		})
	}
	hc := newClient()
	defer hc.CloseIdleConnections()
	const outageUser = "rk-outage"
	tok := token(t, e2eSecret, outageUser, outageUser)
	outage := make([]*sent, len(rc.urls))
	for i, base := range rc.urls {
		id := fmt.Sprintf("%s-n%d", outageUser, i)
		outage[i] = ch.begin(id, outageUser, "sent during the outage to node "+fmt.Sprint(i))
		status, env, _, err := send(hc, base, tok, ch.room, id, outage[i].text)
		if err != nil || status != http.StatusServiceUnavailable || env.Code != string(protocol.CodeUnavailable) {
			t.Errorf("send to node %d with Redis down: status %d, answer %+v, %v; want 503 unavailable", i, status, env, err)
		}
	}

	ch.phase.Store(2) // every ack recorded before this came before the restart
	rc.redis.Restart()
	rc.waitReadyz(t, http.StatusOK)
	for i, base := range rc.urls {
		s := outage[i]
		status, env, _, err := send(hc, base, tok, ch.room, s.id, s.text)
		if err != nil || status != http.StatusOK {
			t.Fatalf("retry of %s on node %d after the restart: status %d, answer %+v, %v", s.id, i, status, env, err)
		}
		ack := protocol.Envelope{Type: env.Type, Room: env.Room, ID: env.ID, Seq: env.Seq}
		if err := ch.settle(s, ack); err != nil {
			t.Fatal(err)
		}
	}
	await(t, done, "every send acked")
	ch.awaitMembers(t, "given every message", fullCh)
	ch.verify(t, rc.urls[0])

	var maxBefore uint64
	var began []sent
	for _, s := range ch.sentBy("") {
		if s.acked < 2 {
			maxBefore = max(maxBefore, s.seq)
		}
		if s.began > 0 {
			began = append(began, s)
		}
	}
	if maxBefore == 0 {
		t.Errorf("no send was acked before the restart")
	}
	for _, s := range began {
		if s.seq <= maxBefore {
			t.Errorf("%s, begun after the kill, got seq %d, not above %d, acked before the restart", s.id, s.seq, maxBefore)
		}
	}
	t.Logf("highest seq acked before the restart: %d; %d sends begun after the kill", maxBefore, len(began))
	for i, p := range rc.procs {
		if p.hasExited() {
			t.Errorf("node %d did not stay up through the outage: %v", i, p.err)
		}
	}
}
