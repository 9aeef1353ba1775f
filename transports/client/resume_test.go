package client

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/degrade"
)

// countTokens wraps cfg.Token to count its calls.
func countTokens(cfg *Config) *atomic.Int32 {
	var n atomic.Int32
	next := cfg.Token
	cfg.Token = func(ctx context.Context) (string, error) {
		n.Add(1)
		return next(ctx)
	}
	return &n
}

// waitConnects waits until the client's links have gone live n times and
// it is connected on tier.
func waitConnects(t *testing.T, c *Client, n uint64, tier string) {
	t.Helper()
	waitState(t, c, tier+" connected again", func(s State) bool {
		return connectedOn(tier)(s) && c.Stats().Connects >= n
	})
	if got := c.Stats().Connects; got != n {
		t.Fatalf("%d links went live, want %d", got, n)
	}
}

// TestResumeInHand: when the server dies (its address refuses dials)
// and comes back, the client reconnects on the offer and token it has,
// without Token, negotiate or a ticket request, however many dials were
// refused, and resumes exactly: what was sent while it was away
// arrives, once. After maxResumes links in a row went live that way, the
// next connect negotiates.
func TestResumeInHand(t *testing.T) {
	for _, tier := range []string{WebSocket, SSE, Poll} {
		t.Run(tier, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, serverOptions{})
			proxy := newTCPProxy(t, srv.URL)
			ct := &countingTransport{next: srv.http.Transport, n: map[string]int{}}
			cfg := testConfig(t, proxy.URL, "alice", []string{tier}, "lobby")
			cfg.HTTPClient = &http.Client{Transport: ct}
			tokens := countTokens(&cfg)
			c := start(t, cfg)
			waitConnects(t, c, 1, tier)
			srv.post(t, "bob", "lobby", "m1", text(1))
			recvMessages(t, c, 1)

			seq := uint64(1)
			for round := 1; round <= maxResumes+1; round++ {
				drainStates(c)
				proxy.stop()
				srv.post(t, "bob", "lobby", text(seq+1), text(seq+1))
				srv.post(t, "bob", "lobby", text(seq+2), text(seq+2))
				waitState(t, c, "dials refused", func(s State) bool { return s.Attempt >= 2 })
				proxy.restart(t)
				waitConnects(t, c, uint64(round+1), tier)
				wantSeqs(t, recvMessages(t, c, 2), "lobby", seq+1, text)
				seq += 2
				negotiates, calls := ct.count("/v1/negotiate"), tokens.Load()
				switch {
				case round <= maxResumes && (negotiates != 1 || calls != 1):
					t.Fatalf("after %d outages, %d negotiates and %d Token calls, want only the first connect's", round, negotiates, calls)
				case round > maxResumes && (negotiates < 2 || calls < 2):
					// Every cycle of this outage negotiated, the failed ones
					// too.
					t.Fatalf("after %d outages, %d negotiates and %d Token calls, want more than the first connect's", round, negotiates, calls)
				}
			}
			wantNoMore(t, srv, c, "lobby")
			if n := ct.count("/v1/ticket"); n != 0 {
				t.Errorf("%d POST /v1/ticket, want none", n)
			}
		})
	}
}

// drainStates empties c.States, so that what comes next is new.
func drainStates(c *Client) {
	for {
		select {
		case <-c.States():
		default:
			return
		}
	}
}

// TestResumeRefused: a client whose link is cut while the server turns
// its tier off resumes on the offer in hand, is refused, negotiates and
// connects on the tier now offered, missing nothing. Poll is offered at
// every level, so it is never refused (and its HTTP client retries a
// cut poll within the link).
func TestResumeRefused(t *testing.T) {
	for _, tc := range []struct {
		tiers []string
		level degrade.Level
		want  string
	}{
		{[]string{WebSocket, SSE, Poll}, 2, SSE},
		{[]string{SSE, Poll}, 3, Poll},
	} {
		t.Run(tc.tiers[0], func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, serverOptions{degrade: true, pollInterval: 100 * time.Millisecond})
			proxy := newTCPProxy(t, srv.URL)
			ct := &countingTransport{next: srv.http.Transport, n: map[string]int{}}
			cfg := testConfig(t, proxy.URL, "alice", tc.tiers, "lobby")
			cfg.HTTPClient = &http.Client{Transport: ct}
			c := start(t, cfg)
			waitConnects(t, c, 1, tc.tiers[0])
			srv.post(t, "bob", "lobby", "m1", text(1))
			recvMessages(t, c, 1)

			drainStates(c)
			release := proxy.hold(t)
			proxy.cut()
			select {
			case <-proxy.held:
			case <-stepCtx(t).Done():
				t.Fatal("the client did not reconnect")
			}
			srv.setLevel(t, tc.level) // no live session of alice's to move
			srv.post(t, "bob", "lobby", "m2", text(2))
			release()
			// Refused, the resume negotiates within the same connect
			// cycle: no cycle fails, so none backs off.
			failed := false
			waitStates(t, c, tc.want+" connected", func(s State) bool {
				failed = failed || s.Attempt > 0
				return connectedOn(tc.want)(s) && c.Stats().Connects >= 2
			})
			if failed {
				t.Error("a connect cycle failed after the refusal, want a negotiate within the cycle")
			}
			waitConnects(t, c, 2, tc.want)
			wantSeqs(t, recvMessages(t, c, 1), "lobby", 2, text)
			wantNoMore(t, srv, c, "lobby")
			if n := ct.count("/v1/negotiate"); n != 2 {
				t.Errorf("%d negotiates, want 2: the first connect's, and the one after the refusal", n)
			}
		})
	}
}

// TestRoomRefusedAtDial: a WebSocket client joins the rooms it has a
// position in by the dial's query (rooms=, since=). A room that its new
// token no longer allows gets an error that names it, which drops that
// room alone, as the refusal of its join envelope would; the other room
// resumes exactly.
func TestRoomRefusedAtDial(t *testing.T) {
	srv := newServer(t, serverOptions{})
	cfg := testConfig(t, srv.URL, "alice", []string{WebSocket}, "lobby", "secret")
	var calls atomic.Int32
	cfg.Token = func(context.Context) (string, error) {
		// The first token allows both rooms and expires within seconds
		// (4012); the next allows the lobby only.
		if calls.Add(1) == 1 {
			return signedToken(t, jwt.MapClaims{"sub": "alice", "rooms": []string{"lobby", "secret"},
				"exp": time.Now().Add(2 * time.Second).Unix()}), nil
		}
		return signedToken(t, jwt.MapClaims{"sub": "alice", "rooms": []string{"lobby"},
			"exp": time.Now().Add(time.Hour).Unix()}), nil
	}
	c := start(t, cfg)
	waitConnects(t, c, 1, WebSocket)
	for _, room := range []string{"lobby", "secret"} { // joined live: what is posted from now on arrives
		waitEvent(t, c, "joined "+room, func(e protocol.Envelope) bool { return e.Type == protocol.TypeJoined && e.Room == room })
	}
	srv.post(t, "bob", "lobby", "m1", text(1))
	srv.post(t, "bob", "secret", "s1", text(1))
	recvMessages(t, c, 2) // a position in each room
	srv.post(t, "bob", "lobby", "m2", text(2))
	ctx := stepCtx(t)
	for refused := false; !refused; {
		select {
		case e := <-c.Events():
			switch {
			case e.Type == protocol.TypeError && e.Room == "secret":
				if e.Code != string(protocol.CodeForbidden) {
					t.Fatalf("error for secret %+v, want forbidden", e)
				}
				refused = true
			case e.Type == protocol.TypeMessage && e.Room == "lobby" && e.Seq == 2:
			case e.Type == protocol.TypeMessage:
				t.Fatalf("unexpected message %+v", e)
			}
		case <-ctx.Done():
			t.Fatalf("no error for secret; state %+v", c.State())
		}
	}
	if got := c.Rooms(); len(got) != 1 || got[0] != "lobby" {
		t.Fatalf("rooms %v after the refusal, want [lobby]", got)
	}
	if c.Stats().Connects < 2 {
		t.Fatalf("%d links went live, want the reconnect after 4012 too", c.Stats().Connects)
	}
	srv.post(t, "bob", "lobby", "m3", text(3))
	for _, m := range recvMessages(t, c, 1) {
		if m.Room != "lobby" || m.Seq < 2 {
			t.Fatalf("message %+v, want lobby's", m)
		}
	}
}

// signedToken signs claims with the test server's secret.
func signedToken(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
