package client

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/bolt"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/degrade"
	"github.com/chatd/chatd/transports/node"
)

// testSecret is the HS256 secret the test server trusts.
const testSecret = "client-test-secret"

// serverOptions tune a test server; the zero value is the defaults, with
// send limits raised so that tests are not rate limited.
type serverOptions struct {
	hub      core.Config
	pollHold time.Duration
	// degrade wires the degradation controller as chatd does: the
	// greeting control envelope, gated upgrades and streams, the control
	// field of poll answers, and the mover (see setLevel).
	degrade bool
	// pollInterval is the level-3 poll interval offered; 5s.
	pollInterval time.Duration
}

// testServer is a real chatd server (bolt store, hub, the three
// transports and the REST API), built as transports/transporttest builds
// it, on a loopback httptest server.
type testServer struct {
	URL   string
	Hub   *core.Hub
	http  *http.Client        // for the test's own REST calls
	ctl   *degrade.Controller // with serverOptions.degrade
	mover *degrade.Mover      // with serverOptions.degrade
}

func newServer(t testing.TB, opts serverOptions) *testServer {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	v, err := auth.NewVerifier(auth.Config{HMACSecret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	tickets := auth.NewTickets(nil, time.Minute, nil)
	store, err := bolt.Open(bolt.Config{
		Path: filepath.Join(t.TempDir(), "chat.db"), Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{}
	cfg := opts.hub
	if cfg.SendRate == 0 {
		cfg.SendRate, cfg.SendBurst = 10000, 10000
	}
	n := node.New(node.Config{
		Engine: store, Verifier: v, Tickets: tickets, Hub: cfg, Logger: log,
		Degrade: opts.degrade, MoveWindow: 50 * time.Millisecond,
		PollHold: opts.pollHold, PollInterval: opts.pollInterval,
	})
	hub, api := n.Hub, n.API
	ts.ctl, ts.mover = n.Controller, n.Mover
	api.SetReady(true)
	srv := httptest.NewServer(api.Handler())
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: 10 * time.Second}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			t.Errorf("node close: %v", err)
		}
		srv.Close()
		hc.CloseIdleConnections()
		if err := store.Close(); err != nil {
			t.Errorf("store close: %v", err)
		}
	})
	ts.URL, ts.Hub, ts.http = srv.URL, hub, hc
	return ts
}

// setLevel pins the degradation level and moves the live sessions, as
// chatd does on a level change.
func (s *testServer) setLevel(t testing.TB, l degrade.Level) {
	t.Helper()
	if err := s.ctl.SetManual(l, 0, "test"); err != nil {
		t.Fatal(err)
	}
	s.mover.Apply()
}

// token returns an HS256 token for user, valid for an hour.
func token(t testing.TB, user string) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": user, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// post sends a message as user over POST /v1/send, straight to the
// server, and returns the ack.
func (s *testServer) post(t testing.TB, user, room, id, text string) protocol.Envelope {
	t.Helper()
	body := fmt.Sprintf(`{"room":%q,"id":%q,"text":%q}`, room, id, text)
	var ack protocol.Envelope
	s.do(t, user, http.MethodPost, "/v1/send", body, &ack)
	if ack.Type != protocol.TypeAck || ack.Seq == 0 {
		t.Fatalf("post %s: got %+v", id, ack)
	}
	return ack
}

// history returns the newest page of room's history.
func (s *testServer) history(t testing.TB, room string) []protocol.Envelope {
	t.Helper()
	var page struct{ Messages []protocol.Envelope }
	s.do(t, "auditor", http.MethodGet, "/v1/rooms/"+room+"/history?limit=200", "", &page)
	return page.Messages
}

func (s *testServer) do(t testing.TB, user, method, path, body string, out any) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token(t, user))
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s", method, path, serverError(resp))
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
}

// testConfig is a client config for user against url with short timings.
func testConfig(t testing.TB, url, user string, tiers []string, rooms ...string) Config {
	tok := token(t, user)
	return Config{
		URL:            url,
		Token:          func(context.Context) (string, error) { return tok, nil },
		Rooms:          rooms,
		Transports:     tiers,
		ConnectTimeout: 2 * time.Second,
		BackoffBase:    20 * time.Millisecond,
		BackoffMax:     200 * time.Millisecond,
		MoveJitter:     50 * time.Millisecond,
	}
}

// start runs a client until the test ends, and checks that Run returns
// only because its context ended.
func start(t testing.TB, cfg Config) *Client {
	t.Helper()
	c := New(cfg)
	run(t, c)
	return c
}

// run runs c until the test ends, and checks that Run returns only
// because its context ended.
func run(t testing.TB, c *Client) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
}

// stepCtx bounds one step of a test: generous, so that a slow machine
// does not fail a test, but bounded, so that a hang fails loudly.
func stepCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitState waits until the client's state satisfies ok.
func waitState(t testing.TB, c *Client, what string, ok func(State) bool) State {
	t.Helper()
	ctx := stepCtx(t)
	for {
		if s := c.State(); ok(s) {
			return s
		}
		select {
		case s := <-c.States():
			if ok(s) {
				return s
			}
		case <-ctx.Done():
			t.Fatalf("waiting for %s: state is %+v", what, c.State())
		}
	}
}

// waitStates is waitState for a predicate that must see every state on
// the way: it reads c.States only, in order, and never skips to the
// current state (the channel keeps the last 64).
func waitStates(t testing.TB, c *Client, what string, ok func(State) bool) {
	t.Helper()
	ctx := stepCtx(t)
	for {
		select {
		case s := <-c.States():
			if ok(s) {
				return
			}
		case <-ctx.Done():
			t.Fatalf("waiting for %s: state is %+v", what, c.State())
		}
	}
}

func connectedOn(tier string) func(State) bool {
	return func(s State) bool { return s.Connected && s.Transport == tier }
}

// recvMessages reads Events until n messages have arrived, and returns
// them. Other envelopes are skipped.
func recvMessages(t testing.TB, c *Client, n int) []protocol.Envelope {
	t.Helper()
	ctx := stepCtx(t)
	var got []protocol.Envelope
	for len(got) < n {
		select {
		case e, ok := <-c.Events():
			if !ok {
				t.Fatalf("events closed after %d of %d messages", len(got), n)
			}
			if e.Type == protocol.TypeMessage {
				got = append(got, e)
			}
		case <-ctx.Done():
			t.Fatalf("got %d of %d messages; state %+v", len(got), n, c.State())
		}
	}
	return got
}

// wantSeqs fails unless msgs are room's seqs from, from+1, ... in order,
// each with the text textOf(seq).
func wantSeqs(t testing.TB, msgs []protocol.Envelope, room string, from uint64, textOf func(uint64) string) {
	t.Helper()
	for i, m := range msgs {
		want := from + uint64(i)
		if m.Room != room || m.Seq != want || m.Text != textOf(want) {
			t.Fatalf("message %d: got %s #%d %q, want %s #%d %q", i, m.Room, m.Seq, m.Text, room, want, textOf(want))
		}
	}
}

// wantNoMore proves that nothing was delivered twice: the server gets one
// more message, and the next message the client receives must be it.
func wantNoMore(t testing.TB, s *testServer, c *Client, room string) {
	t.Helper()
	ack := s.post(t, "sentinel", room, "sentinel-"+NewID(), "sentinel")
	got := recvMessages(t, c, 1)
	if got[0].Seq != ack.Seq || got[0].Text != "sentinel" {
		t.Fatalf("after the last message got #%d %q, want the sentinel #%d", got[0].Seq, got[0].Text, ack.Seq)
	}
}

func text(seq uint64) string { return fmt.Sprintf("m%d", seq) }

// deadLinkHub is a hub config with a short heartbeat.
func deadLinkHub(hb time.Duration) core.Config {
	return core.Config{Heartbeat: hb}
}
