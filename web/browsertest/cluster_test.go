package browsertest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chatd/chatd/core/redis/redistest"
	"github.com/chatd/chatd/internal/syncbuf"
	"github.com/chatd/chatd/transports/transporttest"
	"github.com/chatd/chatd/web"
)

// roundRobin is a reverse proxy with no stickiness: each HTTP request,
// WebSocket upgrade and event stream goes to the next node in turn. It
// records where tickets were issued and redeemed, and where each poll
// went.
type roundRobin struct {
	*httptest.Server

	mu       sync.Mutex
	next     int
	served   []int          // requests per node
	issued   map[string]int // ticket → the node that issued it
	redeemed [][2]int       // (issuer, redeemer) of each ticket used
	polls    []int          // the node of each /v1/poll, in order
}

// startRoundRobin runs the proxy in front of nodes; its own errors (a
// request the browser gave up on) go to logs.
func startRoundRobin(t *testing.T, nodes []string, logs *syncbuf.Buffer) *roundRobin {
	t.Helper()
	rr := &roundRobin{served: make([]int, len(nodes)), issued: map[string]int{}}
	errLog := slog.NewLogLogger(slog.NewTextHandler(logs, nil).WithAttrs([]slog.Attr{slog.String("from", "proxy")}), slog.LevelWarn)
	proxies := make([]*httputil.ReverseProxy, len(nodes))
	for i, n := range nodes {
		target, err := url.Parse(n)
		if err != nil {
			t.Fatal(err)
		}
		proxies[i] = httputil.NewSingleHostReverseProxy(target)
		proxies[i].ErrorLog = errLog
		proxies[i].ModifyResponse = func(resp *http.Response) error { return rr.noteTicket(i, resp) }
	}
	rr.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rr.mu.Lock()
		i := rr.next
		rr.next = (rr.next + 1) % len(nodes)
		rr.served[i]++
		if r.URL.Path == "/v1/poll" {
			rr.polls = append(rr.polls, i)
		}
		if tk := r.URL.Query().Get("ticket"); tk != "" {
			issuer, ok := rr.issued[tk]
			if !ok {
				issuer = -1
			}
			rr.redeemed = append(rr.redeemed, [2]int{issuer, i})
		}
		rr.mu.Unlock()
		proxies[i].ServeHTTP(w, r)
	}))
	// Cleanups run last-in first-out: this runs after the tabs of the
	// subtests are closed, and before the nodes stop.
	t.Cleanup(func() {
		rr.CloseClientConnections()
		rr.Close()
	})
	return rr
}

// noteTicket records which node issued a ticket: POST /v1/ticket's, or
// the one negotiate gives with the offer.
func (rr *roundRobin) noteTicket(node int, resp *http.Response) error {
	if p := resp.Request.URL.Path; p != "/v1/ticket" && p != "/v1/negotiate" || resp.StatusCode != http.StatusOK {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var t struct{ Ticket string }
	if json.Unmarshal(body, &t) == nil && t.Ticket != "" {
		rr.mu.Lock()
		rr.issued[t.Ticket] = node
		rr.mu.Unlock()
	}
	return nil
}

// loginToken signs in through the form's JWT field.
func (tb *tab) loginToken(token string) {
	tb.t.Helper()
	tb.waitJS("the sign-in form", `!document.getElementById('login').hidden`, 10*time.Second)
	tb.mustEval(`document.getElementById('login-token').value = `+jsString(token)+`; true`, nil)
	tb.do(chromedp.Click(chromedp.ID("login-go")))
	tb.waitConnected("")
}

// TestRoundRobinCluster: three nodes on one Redis behind a round-robin
// proxy with no stickiness. Two people chat through it, each page in
// Chromium; every request may land on another node than the one before
// (the page, its ticket, the stream the ticket opens, each send, each
// poll). Each page shows every message exactly once, in the server's
// order, and every node's history agrees. Over WebSocket, then with one
// page on SSE and the other on long-polling, whose consecutive polls go
// to different nodes.
func TestRoundRobinCluster(t *testing.T) {
	if browserCtx == nil {
		t.Skipf("no browser: %s is missing (make deps installs it)", chromiumPath)
	}
	rds := redistest.Start(t, redistest.Options{Durable: true})
	logs := &syncbuf.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node logs:\n%s", logs)
		}
	})
	// Three nodes wired as cmd/chatd wires them (degradation and the
	// cluster's shared state on, the pages served), sharing the JWT secret
	// and the ticket key derived from it.
	cluster := transporttest.NewClusterOn(t, rds, 3, transporttest.Options{
		Web: web.Handler(), Degrade: true, Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	token := func(user string) string { return cluster.Token(t, user, transporttest.Claims{Name: user}) }
	nodes := make([]string, len(cluster.Nodes))
	for i, n := range cluster.Nodes {
		nodes[i] = n.URL
	}
	rr := startRoundRobin(t, nodes, logs)
	checkers := make([]*api, len(nodes))
	for i, n := range nodes {
		checkers[i] = &api{t: t, base: n, token: token("checker")}
	}

	t.Run("websocket", func(t *testing.T) {
		chatThroughCluster(t, rr.URL, checkers, token, "ws",
			clusterUser{name: "alice", tier: "websocket"}, clusterUser{name: "bob", tier: "websocket"})
	})

	t.Run("sse and poll", func(t *testing.T) {
		rr.mu.Lock()
		rr.polls = nil
		rr.mu.Unlock()
		chatThroughCluster(t, rr.URL, checkers, token, "low",
			clusterUser{name: "carol", preScript: `delete window.WebSocket;`, tier: "sse"},
			clusterUser{name: "dave", preScript: legacyScript, tier: "poll"})

		rr.mu.Lock()
		polls := slices.Clone(rr.polls)
		rr.mu.Unlock()
		moved := 0
		for i := 1; i < len(polls); i++ {
			if polls[i] != polls[i-1] {
				moved++
			}
		}
		if moved == 0 {
			t.Errorf("dave's consecutive polls never changed node: %v", polls)
		}
		t.Logf("dave's polls went to nodes %v", polls)
	})

	rr.mu.Lock()
	defer rr.mu.Unlock()
	across := 0
	for _, r := range rr.redeemed {
		if r[0] < 0 {
			t.Errorf("a ticket was used that the proxy never saw issued")
		} else if r[0] != r[1] {
			across++
		}
	}
	if across == 0 {
		t.Errorf("no ticket was redeemed on another node than its issuer's: %v", rr.redeemed)
	}
	for i, n := range rr.served {
		if n == 0 {
			t.Errorf("node-%d served no request: %v", i+1, rr.served)
		}
	}
	t.Logf("requests per node %v; tickets (issuer, redeemer) %v", rr.served, rr.redeemed)
}

// clusterUser is one person of a subtest: what their browser lacks (a
// preScript), and the tier their page must then be on.
type clusterUser struct{ name, preScript, tier string }

// chatThroughCluster opens a page at base for each of two users and signs
// them in; each sends several messages, interleaved and without waiting
// for the other; then each page must show every message of the room
// exactly once, in order, as every node's history has it, still on its
// tier.
func chatThroughCluster(t *testing.T, base string, checkers []*api, token func(user string) string, tag string, users ...clusterUser) {
	t.Helper()
	tabs := make([]*tab, len(users))
	for i, u := range users {
		tabs[i] = newUser(t).open(u.name, base, tabOptions{preScript: u.preScript})
	}
	for i, u := range users {
		tabs[i].loginToken(token(u.name))
		tabs[i].waitConnected(u.tier)
	}
	const each = 4
	var all []string
	sent := map[string][]string{}
	for i := 1; i <= each; i++ {
		for _, tb := range tabs {
			text := fmt.Sprintf("%s %s %d", tb.name, tag, i)
			tb.send(text)
			all = append(all, text)
			sent[tb.name] = append(sent[tb.name], text)
		}
	}
	for _, tb := range tabs {
		for _, text := range all {
			tb.waitText(text)
		}
	}

	// Every node reads the same history, with each message once and each
	// sender's messages in the order they were typed.
	hist := checkers[0].history("general")
	for i, c := range checkers[1:] {
		if other := c.history("general"); !slices.Equal(other, hist) {
			t.Fatalf("node-%d's history differs from node-1's:\n%v\n%v", i+2, other, hist)
		}
	}
	count := map[string]int{}
	byUser := map[string][]string{}
	for _, m := range hist {
		count[m.Text]++
		byUser[m.From] = append(byUser[m.From], m.Text)
	}
	for _, text := range all {
		if count[text] != 1 {
			t.Errorf("the server's history holds %q %d times", text, count[text])
		}
	}
	for _, tb := range tabs {
		if got := byUser[tb.name]; !slices.Equal(got, sent[tb.name]) {
			t.Errorf("%s's messages in the server's history: %q, want %q", tb.name, got, sent[tb.name])
		}
	}

	// Each page: exactly the server's messages (seq and id), in its
	// order, each once and sent, with the server's texts.
	want := make([]string, len(hist))
	for i, m := range hist {
		want[i] = m.Text
	}
	for _, tb := range tabs {
		tb.sameAsServer(checkers[0], "general")
		var texts []string
		for _, m := range tb.messages() {
			texts = append(texts, m.Text)
		}
		if !slices.Equal(texts, want) {
			t.Errorf("%s shows %q, want %q", tb.name, texts, want)
		}
		tb.checkCSP()
	}
	for i, u := range users {
		tabs[i].waitConnected(u.tier)
	}
	if t.Failed() {
		t.Logf("history: %s", strings.Join(want, " | "))
	}
}
