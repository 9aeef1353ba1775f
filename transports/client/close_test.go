package client

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/core/protocol"
)

// runUntil runs c until Run returns or the step times out, and returns
// Run's error.
func runUntil(t *testing.T, c *Client) error {
	t.Helper()
	ctx := stepCtx(t)
	err := c.Run(ctx)
	if ctx.Err() != nil {
		t.Fatalf("Run did not return on its own; state %+v", c.State())
	}
	return err
}

// TestClose4003 ends Run with a *CloseError: forbidden is permanent.
func TestClose4003(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t, func(f *fakeServer) {
		f.wsScripts = []func(*websocket.Conn){closeWith(4003, "forbidden")}
	})
	tok, calls := countingTokens()
	cfg := testConfig(t, f.URL, "alice", nil, "lobby")
	cfg.Token = tok
	err := runUntil(t, New(cfg))
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != protocol.CloseForbidden {
		t.Fatalf("Run returned %v, want a 4003 CloseError", err)
	}
	if ws, _ := f.tokens(); len(ws) != 1 || calls() != 1 {
		t.Fatalf("%d WebSockets and %d tokens, want 1 and 1: no reconnect after 4003", len(ws), calls())
	}
}

// TestClose4012 gets a new token from Token and reconnects with it.
func TestClose4012(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t, func(f *fakeServer) {
		f.wsScripts = []func(*websocket.Conn){closeWith(4012, "token expired")}
	})
	tok, calls := countingTokens()
	cfg := testConfig(t, f.URL, "alice", nil, "lobby")
	cfg.Token = tok
	c := start(t, cfg)
	waitState(t, c, "second websocket", func(s State) bool {
		ws, _ := f.tokens()
		return len(ws) == 2 && connectedOn(WebSocket)(s)
	})
	ws, _ := f.tokens()
	if !slices.Equal(ws, []string{"tok-1", "tok-2"}) || calls() != 2 {
		t.Fatalf("websockets used tokens %v after %d Token calls, want [tok-1 tok-2] after 2", ws, calls())
	}
}

// TestClose1001 reconnects after the reconnect_ms the close reason gives.
func TestClose1001(t *testing.T) {
	t.Parallel()
	const hint = 300 * time.Millisecond
	f := newFakeServer(t, func(f *fakeServer) {
		f.wsScripts = []func(*websocket.Conn){closeWith(1001, "server shutting down; reconnect_ms=300")}
	})
	c := start(t, testConfig(t, f.URL, "alice", nil, "lobby"))
	waitState(t, c, "second websocket", func(s State) bool {
		ws, _ := f.tokens()
		return len(ws) == 2 && connectedOn(WebSocket)(s)
	})
	f.mu.Lock()
	gap := f.wsTimes[1].Sub(f.wsTimes[0])
	f.mu.Unlock()
	if gap < hint {
		t.Fatalf("reconnected after %v, want at least the %v hint", gap, hint)
	}
}

// TestClose4001Control follows a control envelope down to SSE on 4001, and
// back up to WebSocket when a later control envelope offers it again.
func TestClose4001Control(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t, func(f *fakeServer) {
		f.wsScripts = []func(*websocket.Conn){func(c *websocket.Conn) {
			_ = c.WriteJSON(f.control(2, SSE, Poll))
			closeWith(4001, "switch transport")(c)
		}}
		f.sseScripts = []func(http.ResponseWriter){func(w http.ResponseWriter) {
			sseEvent(w, f.control(2, SSE, Poll)) // the greeting: no news
			sseEvent(w, f.control(0, WebSocket, SSE, Poll))
		}}
	})
	c := start(t, testConfig(t, f.URL, "alice", nil, "lobby"))
	sawLevel2 := false
	waitStates(t, c, "sse connected", func(s State) bool {
		sawLevel2 = sawLevel2 || (s.Level == 2 && s.Transport == WebSocket)
		return connectedOn(SSE)(s)
	})
	if !sawLevel2 {
		t.Fatal("the state never showed the control envelope's level 2")
	}
	if ws, _ := f.tokens(); len(ws) != 1 {
		t.Fatalf("%d WebSockets before SSE, want 1: 4001 moves at once", len(ws))
	}
	waitState(t, c, "back on websocket", connectedOn(WebSocket))
	ws, sse := f.tokens()
	if len(ws) != 2 || len(sse) != 1 {
		t.Fatalf("%d WebSockets and %d SSE streams, want 2 and 1", len(ws), len(sse))
	}
}

// TestPong answers a server ping with a pong.
func TestPong(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t, func(f *fakeServer) {
		f.wsScripts = []func(*websocket.Conn){func(c *websocket.Conn) {
			_ = c.WriteMessage(websocket.TextMessage, []byte(`[{"type":"ping"}]`))
		}}
	})
	start(t, testConfig(t, f.URL, "alice", nil, "lobby"))
	select {
	case <-f.pongs:
	case <-stepCtx(t).Done():
		t.Fatal("no pong")
	}
}

// TestUnauthorized ends Run when the server refuses the token, and a new
// one from Token is refused too.
func TestUnauthorized(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{})
	tok, calls := countingTokens()
	cfg := testConfig(t, srv.URL, "alice", nil, "lobby")
	cfg.Token = tok
	err := runUntil(t, New(cfg))
	if !isUnauthorized(err) {
		t.Fatalf("Run returned %v, want unauthorized", err)
	}
	if calls() != 2 {
		t.Fatalf("Token called %d times, want 2: once, and once more to refresh", calls())
	}
}

// TestJoinQueryRefused: a dial refused for the joins in its query (414
// from a proxy with a short request line) is made again at once without
// them, the rooms joined by envelopes, and later dials join that way too.
func TestJoinQueryRefused(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t, func(f *fakeServer) {
		f.refuseQuery = true
		f.wsScripts = []func(*websocket.Conn){closeWith(4008, "slow"), closeWith(4008, "slow")}
	})
	c := start(t, testConfig(t, f.URL, "alice", nil, "lobby"))
	waitState(t, c, "third websocket", func(s State) bool {
		ws, _ := f.tokens()
		return len(ws) == 3 && connectedOn(WebSocket)(s)
	})
	if !c.noJoinQuery.Load() {
		t.Fatal("the refusal did not turn the joins in the query off")
	}
	if st := c.Stats(); st.Connects != 3 {
		t.Fatalf("%d links went live, want 3 (no cycle lost to the refusal)", st.Connects)
	}
}

// TestJoinsInQueryBounds: the rooms a dial joins by its query are those
// with a position, in order, up to maxQueryRooms and maxJoinQuery bytes,
// and the user's stream if it has a position.
func TestJoinsInQueryBounds(t *testing.T) {
	since := map[string]uint64{protocol.UserRoom: 7}
	var rooms []string
	for i := range 100 {
		room := fmt.Sprintf("room-%03d", i)
		rooms = append(rooms, room)
		if i != 3 {
			since[room] = uint64(i)
		}
	}
	asked, pos, q := joinsInQuery(rooms, since)
	if len(asked) != maxQueryRooms || slices.Contains(asked, "room-003") || asked[0] != "room-000" {
		t.Fatalf("asked %d rooms %v, want the first %d with a position", len(asked), asked, maxQueryRooms)
	}
	if pos[protocol.UserRoom] != 7 || len(pos) != maxQueryRooms+1 || len(q) > maxJoinQuery {
		t.Fatalf("positions %v, query of %d bytes", pos, len(q))
	}
	long := []string{strings.Repeat("a", 200), strings.Repeat("b", 200)}
	var many []string
	for i := range 40 {
		many = append(many, fmt.Sprintf("%s-%02d", long[i%2], i))
		since[many[i]] = 1
	}
	asked, _, q = joinsInQuery(many, since)
	if len(q) > maxJoinQuery || len(asked) == 0 || len(asked) == len(many) {
		t.Fatalf("%d of %d long rooms in a query of %d bytes, want as many as fit in %d", len(asked), len(many), len(q), maxJoinQuery)
	}
	if asked, pos, q := joinsInQuery([]string{"x"}, map[string]uint64{}); asked != nil || pos != nil || q != "" {
		t.Fatalf("no positions: %v %v %q, want nothing in the query", asked, pos, q)
	}
}

// TestJoinQueryIgnored: a server that ignores the joins in the query (an
// older chatd) greets with the control envelope alone; the client then
// joins those rooms by envelopes, from their positions.
func TestJoinQueryIgnored(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t, func(f *fakeServer) {
		f.ignoreQuery = true
		f.wsScripts = []func(*websocket.Conn){closeWith(4008, "slow")}
	})
	c := start(t, testConfig(t, f.URL, "alice", nil, "lobby"))
	ctx := stepCtx(t)
	for range 2 { // the first connect's join, then the second's
		select {
		case <-f.joined:
		case <-ctx.Done():
			t.Fatalf("the second WebSocket got no join envelope; state %+v", c.State())
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if j := f.joins[1]; j.Room != "lobby" || j.Since == nil || *j.Since != 0 {
		t.Fatalf("second join %+v, want lobby from its position 0", j)
	}
}

// TestBriefLinksBackOff: links that a server ends soon after they go live
// (1011, as for a room whose history it cannot read) are retried at a
// growing backoff, as failed connects are, not from its first step each
// time; a close that reconnects at once (4009) neither waits nor counts;
// none of them counts as a failed connect in State.Attempt.
func TestBriefLinksBackOff(t *testing.T) {
	t.Parallel()
	const reason = "join failed: internal: internal error"
	closes := []int{1011, 1011, 4009, 1011, 1011}
	for _, tier := range []string{WebSocket, SSE, Poll} {
		t.Run(tier, func(t *testing.T) {
			t.Parallel()
			f := newFakeServer(t, func(f *fakeServer) {
				for _, code := range closes {
					f.wsScripts = append(f.wsScripts, closeWith(code, reason))
					f.sseScripts = append(f.sseScripts, func(w http.ResponseWriter) {
						sseEvent(w, protocol.Envelope{Type: protocol.TypeDisconnect, CloseCode: code, Reason: reason})
					})
					f.pollEnds = append(f.pollEnds, protocol.Envelope{Type: protocol.TypeDisconnect, CloseCode: code, Reason: reason})
				}
			})
			cfg := testConfig(t, f.URL, "alice", []string{tier}, "lobby")
			cfg.Rand = rand.New(topSource{}) // each backoff its longest: BackoffBase·2^n
			c := start(t, cfg)
			var waits []string
			attempts, closed := 0, 0
			waitStates(t, c, "the link that stays", func(s State) bool {
				// Counted by the closes, not by the links seen up: a link
				// closed in the same read as its greeting may end before
				// its Connected state is published.
				if strings.Contains(s.Reason, "connection closed with") && !s.Connected {
					closed++
					if _, d, ok := strings.Cut(s.Reason, "retrying in "); ok {
						waits = append(waits, d)
					}
				}
				attempts = max(attempts, s.Attempt)
				return s.Connected && closed == len(closes)
			})
			if waits = slices.Compact(waits); !slices.Equal(waits, []string{"20ms", "40ms", "80ms", "160ms"}) {
				t.Fatalf("waits %v, want the backoff doubling from 20ms: each brief link that backs off one step more", waits)
			}
			if attempts != 0 {
				t.Fatalf("State.Attempt reached %d, want 0: brief links are not failed connects", attempts)
			}
			ws, sse := f.tokens()
			if n := map[string]int{WebSocket: len(ws), SSE: len(sse), Poll: len(f.polls())}[tier]; n != len(closes)+1 {
				t.Fatalf("%d %s links, want %d: the client stayed on its tier", n, tier, len(closes)+1)
			}
		})
	}
}

// topSource makes every draw of a rand.Rand its largest.
type topSource struct{}

func (topSource) Uint64() uint64 { return ^uint64(0) }
