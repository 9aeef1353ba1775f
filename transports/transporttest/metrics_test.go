package transporttest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/client"
)

// Tests of what the server reports about itself: /metrics, the admin
// status and the Observer, over every transport.

// fakeClock is a hub clock a test moves forward: the real time plus an
// offset, so that token expiries and timers stay sane.
type fakeClock struct{ offset atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *fakeClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// scrape reads e's /metrics.
func scrape(t testing.TB, e *Env) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequestWithContext(Ctx(t), http.MethodGet, e.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	return mfs
}

// series returns the value of name's series with the label pairs: a
// counter's or gauge's value, a histogram's sample count; 0 if absent.
func series(mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	for _, m := range mfs[name].GetMetric() {
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return 0
}

// connectionsOf reads the admin status's connections per transport.
func connectionsOf(t testing.TB, e *Env) map[string]int {
	t.Helper()
	status, body := httpDo(t, e, http.MethodGet, "/v1/admin/status", e.Token(t, "ops", Claims{Admin: true}), nil)
	if status != http.StatusOK {
		t.Fatalf("admin status: %d %s", status, body)
	}
	var st struct {
		Connections map[string]int `json:"connections"`
	}
	decodeJSON(t, body, &st)
	return st.Connections
}

// goClient runs a transports/client Client for user until the test ends,
// and waits until it is connected on tier.
func goClient(t testing.TB, e *Env, user, tier string, cfg client.Config) *client.Client {
	t.Helper()
	c, stop := startClient(t, e, user, cfg)
	t.Cleanup(stop)
	waitConnected(t, c, user, tier)
	return c
}

// startClient starts a transports/client Client for user; stop ends it
// and waits until it has.
func startClient(t testing.TB, e *Env, user string, cfg client.Config) (c *client.Client, stop func()) {
	t.Helper()
	tok := e.Token(t, user, Claims{})
	cfg.URL = e.URL
	cfg.Token = func(context.Context) (string, error) { return tok, nil }
	cfg.Logger = slog.New(slog.DiscardHandler)
	c = client.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx)
	}()
	go func() { // Events must be read, or a full buffer would stall the client
		for range c.Events() {
		}
	}()
	return c, func() { cancel(); <-done }
}

// waitConnected waits until c is connected on tier.
func waitConnected(t testing.TB, c *client.Client, user, tier string) {
	t.Helper()
	ctx := Ctx(t)
	for {
		select {
		case s := <-c.States():
			if s.Connected && s.Transport == tier {
				return
			}
		case <-ctx.Done():
			t.Fatalf("%s never connected on %s: %+v", user, tier, c.State())
		}
	}
}

// At level 3, 20 polling clients (ten users with two tabs each) show as
// 20 poll connections in the admin status and chat_sessions, between
// their polls too; once they stop, they fall back to 0 after twice the
// poll interval, each with one normal disconnect.
func TestPollClientsAtLevel3(t *testing.T) {
	clk := &fakeClock{}
	e := NewEnv(t, Options{Degrade: true, Hub: core.Config{Now: clk.Now}})
	adminPut(t, e, "/v1/admin/level", `{"level":3,"mode":"manual"}`)
	clients := make([]*client.Client, 20)
	stops := make([]func(), 20)
	for i := range clients {
		clients[i], stops[i] = startClient(t, e, fmt.Sprint("poller", i/2), client.Config{Rooms: []string{"general"}})
		t.Cleanup(stops[i]) // in case the test fails before it stops them
	}
	for i, c := range clients {
		waitConnected(t, c, fmt.Sprint("poller", i/2), client.Poll)
	}
	if got := connectionsOf(t, e); got["poll"] != 20 || got["websocket"] != 0 || got["sse"] != 0 {
		t.Fatalf("admin status connections %v at level 3, want 20 poll", got)
	}
	mfs := scrape(t, e)
	if n := series(mfs, "chat_sessions", "transport", "poll"); n != 20 {
		t.Fatalf("chat_sessions{poll} = %v, want 20", n)
	}
	if n := series(mfs, "chat_connects_total", "transport", "poll"); n != 20 {
		t.Fatalf("chat_connects_total{poll} = %v, want 20", n)
	}

	for _, stop := range stops {
		stop()
	}
	waitPollsEnded(t, e)
	if got := connectionsOf(t, e); got["poll"] != 20 {
		t.Fatalf("connections %v right after the clients stopped: within twice the interval they count", got)
	}
	clk.Advance(2*5*time.Second + time.Second)
	if got := connectionsOf(t, e); got["poll"] != 0 {
		t.Fatalf("connections %v after twice the poll interval, want no poll client", got)
	}
	mfs = scrape(t, e)
	if n := series(mfs, "chat_sessions", "transport", "poll"); n != 0 {
		t.Fatalf("chat_sessions{poll} = %v, want 0", n)
	}
	if n := series(mfs, "chat_disconnects_total", "transport", "poll", "code", "1000", "reason", "normal"); n != 20 {
		t.Fatalf("chat_disconnects_total{poll,1000,normal} = %v, want 20", n)
	}
}

// waitPollsEnded waits until the poll sessions open on e have ended: a
// poll client counts until twice the interval after its last poll ends,
// so a test that moves the clock past that waits for the end first.
func waitPollsEnded(t testing.TB, e *Env) {
	t.Helper()
	var open []*core.Session
	e.Hub.ForEachSession(func(s *core.Session) {
		if s.TransportName() == "poll" {
			open = append(open, s)
		}
	})
	ctx := Ctx(t)
	for _, s := range open {
		select {
		case <-s.Done():
		case <-ctx.Done():
			t.Fatalf("a poll of %s did not end", s.User())
		}
	}
}

// An upgrade that gorilla refuses (here, no Sec-WebSocket-Key) is
// answered with the contract's error and counted like any HTTP error
// reply, with the user the request proved: the upgrade's own writer
// must not hide the reporting one.
func TestRefusedUpgradeCounted(t *testing.T) {
	obs := newWatcher()
	e := NewEnv(t, Options{Hub: core.Config{Observer: obs}})
	req, err := http.NewRequest(http.MethodGet, e.URL+"/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.Token(t, "carol", Claims{}))
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Version", "13")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	httpError(t, "an upgrade without a key", resp.StatusCode, body, http.StatusBadRequest, protocol.CodeBadRequest)
	if n := series(scrape(t, e), "chat_error_replies_total", "code", "bad_request", "via", "http"); n != 1 {
		t.Errorf(`chat_error_replies_total{code="bad_request",via="http"} = %v, want 1`, n)
	}
	obs.wait(t, "error carol bad_request")
}

// REST errors count in chat_error_replies_total by code with via="http",
// session errors with via="session"; the Observer gets each with the
// user the request proved. A send and a history read leave samples in
// chat_store_seconds.
func TestErrorRepliesByCode(t *testing.T) {
	obs := newWatcher()
	e := NewEnv(t, Options{Hub: core.Config{SendRate: 0.01, SendBurst: 1, Observer: obs}})
	alice := e.Token(t, "alice", Claims{Rooms: []string{"general"}})
	send := func(body any) (int, []byte) { return httpDo(t, e, http.MethodPost, "/v1/send", alice, body) }

	status, body := send(map[string]string{"room": "general", "id": "m1", "text": "hi"})
	if status != http.StatusOK {
		t.Fatalf("send: %d %s", status, body)
	}
	status, body = send("{")
	httpError(t, "a broken body", status, body, http.StatusBadRequest, protocol.CodeBadRequest)
	status, body = send(map[string]string{"room": "elsewhere", "id": "m2", "text": "hi"})
	httpError(t, "a room the token does not allow", status, body, http.StatusForbidden, protocol.CodeForbidden)
	status, body = send(map[string]string{"room": "general", "id": "m3", "text": strings.Repeat("x", 70<<10)})
	httpError(t, "a body over 64 KiB", status, body, http.StatusRequestEntityTooLarge, protocol.CodeTooLarge)
	status, body = send(map[string]string{"room": "general", "id": "m4", "text": "again"})
	httpError(t, "a second send with a burst of 1", status, body, http.StatusTooManyRequests, protocol.CodeRateLimited)
	status, body = httpDo(t, e, http.MethodGet, "/v1/rooms/general/history", "", nil)
	httpError(t, "no credentials", status, body, http.StatusUnauthorized, protocol.CodeUnauthorized)
	if status, body = httpDo(t, e, http.MethodGet, "/v1/rooms/general/history", alice, nil); status != http.StatusOK {
		t.Fatalf("history: %d %s", status, body)
	}

	ws := DialWS(t, e, e.Token(t, "bob", Claims{}), nil)
	defer ws.Close()
	got := reply(t, ws, protocol.Envelope{Type: protocol.TypeSend, Room: "general", Ref: "no-id"})
	wantError(t, "a send without an id", got, protocol.CodeBadRequest)

	mfs := scrape(t, e)
	for _, c := range []struct{ code, via string }{
		{"bad_request", "http"}, {"forbidden", "http"}, {"too_large", "http"}, {"rate_limited", "http"},
		{"unauthorized", "http"}, {"bad_request", "session"},
	} {
		if n := series(mfs, "chat_error_replies_total", "code", c.code, "via", c.via); n != 1 {
			t.Errorf("chat_error_replies_total{code=%q,via=%q} = %v, want 1", c.code, c.via, n)
		}
	}
	for _, op := range []string{"append", "read"} {
		if n := series(mfs, "chat_store_seconds", "op", op); n == 0 {
			t.Errorf("chat_store_seconds{op=%q} has no samples after a send and a history read", op)
		}
	}
	obs.wait(t, "error alice bad_request", "error alice forbidden", "error alice too_large",
		"error alice rate_limited", "error bob bad_request")
	if obs.count("error  unauthorized") != 0 {
		t.Errorf("an error to a request with no identity reached the Observer: %v", obs.snapshot())
	}
}

// The Observer sees, on every transport, the session open, a live
// message delivered, an error answered to the user and the session's
// end (for poll, the poll client's: twice the interval after its last
// poll).
func TestObserverSeesEveryTransport(t *testing.T) {
	Run(t, func(t *testing.T, dial Dialer) {
		clk := &fakeClock{}
		obs := newWatcher()
		// A poll is held for 1 s at most, so a stopped client's last one
		// ends at once, parked or not.
		e := NewEnv(t, Options{PollHold: time.Second, Hub: core.Config{Now: clk.Now, Observer: obs}})
		c := dial(t, e, e.Token(t, "carol", Claims{}), []Join{{Room: "obs"}})
		tr := c.Transport()
		obs.wait(t, "opened carol "+tr)

		// Only a live message counts as delivered; a poll that opens after
		// a message reads it from the store, so a few may be needed.
		for i := 0; i < 5 && !obs.has("delivered carol"); i++ {
			hubSend(t, e, "obs", fmt.Sprint("hello ", i))
			nextOf(t, c, protocol.TypeMessage)
		}
		obs.wait(t, "delivered carol")

		status, body := httpDo(t, e, http.MethodPost, "/v1/send", e.Token(t, "carol", Claims{}), map[string]string{"room": "obs"})
		httpError(t, "a send without an id", status, body, http.StatusBadRequest, protocol.CodeBadRequest)
		obs.wait(t, "error carol bad_request")

		c.Close()
		if tr == "poll" {
			waitPollsEnded(t, e)
			clk.Advance(11 * time.Second)
			e.Hub.Connections() // sweeps, as a scrape or the janitor would
		}
		obs.waitPrefix(t, "closed carol "+tr+" ")
		if n := obs.count("opened carol " + tr); n != 1 {
			t.Errorf("%d opens for one client, want 1: %v", n, obs.snapshot())
		}
	})
}

// A Go client on each tier reports its sends' round trips, and they
// land in chat_client_rtt_seconds under its tier; a report out of
// bounds, in a header or on an envelope, is ignored.
func TestClientRTTReports(t *testing.T) {
	e := NewEnv(t, Options{})
	for _, tier := range []string{client.WebSocket, client.SSE, client.Poll} {
		t.Run(tier, func(t *testing.T) {
			// It follows one room and sends to another, so its held poll
			// has no news to answer and the send carries the report.
			c := goClient(t, e, "rtt-"+tier, tier, client.Config{Transports: []string{tier}, Rooms: []string{"quiet-" + tier}})
			counted := func() float64 { return series(scrape(t, e), "chat_client_rtt_seconds", "transport", tier) }
			for i := 0; counted() == 0; i++ {
				if i == 5 {
					t.Fatalf("no round trip counted for %s after 5 sends", tier)
				}
				if _, err := c.Send(Ctx(t), "rtt", fmt.Sprint(tier, " ", i)); err != nil {
					t.Fatal(err)
				}
			}
		})
	}

	before := series(scrape(t, e), "chat_client_rtt_seconds")
	tok := e.Token(t, "mallory", Claims{})
	for _, v := range []string{"sse=99999999", "poll=0", "sse=-3", "websocket=abc", "pigeon=20"} {
		h := http.Header{"Authorization": {"Bearer " + tok}, "X-Chat-Rtt": {v}}
		if status, _, body := rawDo(t, http.MethodGet, e.URL+"/v1/negotiate", h, nil); status != http.StatusOK {
			t.Fatalf("negotiate with X-Chat-RTT %q: %d %s", v, status, body)
		}
	}
	ws := DialWS(t, e, tok, nil)
	defer ws.Close()
	for i, ms := range []float64{1e9, -1, 60001} {
		reply(t, ws, protocol.Envelope{Type: protocol.TypePing, Ref: fmt.Sprint("absurd-", i), RTTMS: ms})
	}
	if after := series(scrape(t, e), "chat_client_rtt_seconds"); after != before {
		t.Fatalf("round trips counted %v -> %v from reports out of bounds", before, after)
	}
	reply(t, ws, protocol.Envelope{Type: protocol.TypePing, Ref: "sane", RTTMS: 42})
	if n := series(scrape(t, e), "chat_client_rtt_seconds", "transport", "websocket"); n < 2 {
		t.Fatalf("a sane rtt_ms on a ping was not counted: %v websocket reports", n)
	}
}

// watcher is an Observer that keeps what it is told, as
// "what user transport-or-code".
type watcher struct {
	mu     sync.Mutex
	events []string
	more   chan struct{} // cap 1: an event came
}

func newWatcher() *watcher { return &watcher{more: make(chan struct{}, 1)} }

func (w *watcher) add(f string, args ...any) {
	w.mu.Lock()
	w.events = append(w.events, fmt.Sprintf(f, args...))
	w.mu.Unlock()
	select {
	case w.more <- struct{}{}:
	default:
	}
}

func (w *watcher) SessionOpened(user, transport string) { w.add("opened %s %s", user, transport) }
func (w *watcher) SessionClosed(user, transport string, code int) {
	w.add("closed %s %s %d", user, transport, code)
}
func (w *watcher) ErrorReply(user, code string)           { w.add("error %s %s", user, code) }
func (w *watcher) Delivered(user string, _ time.Duration) { w.add("delivered %s", user) }

func (w *watcher) snapshot() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.events)
}

func (w *watcher) has(event string) bool { return slices.Contains(w.snapshot(), event) }

func (w *watcher) count(event string) int {
	n := 0
	for _, e := range w.snapshot() {
		if e == event {
			n++
		}
	}
	return n
}

// waitFor waits until ok holds for the events seen.
func (w *watcher) waitFor(t testing.TB, what string, ok func([]string) bool) {
	t.Helper()
	ctx := Ctx(t)
	for !ok(w.snapshot()) {
		select {
		case <-w.more:
		case <-ctx.Done():
			t.Fatalf("the observer never saw %s; it saw %v", what, w.snapshot())
		}
	}
}

// wait waits until every event in want has been seen.
func (w *watcher) wait(t testing.TB, want ...string) {
	t.Helper()
	w.waitFor(t, fmt.Sprint(want), func(seen []string) bool {
		for _, x := range want {
			if !slices.Contains(seen, x) {
				return false
			}
		}
		return true
	})
}

// waitPrefix waits for an event that starts with prefix.
func (w *watcher) waitPrefix(t testing.TB, prefix string) {
	t.Helper()
	w.waitFor(t, prefix+"...", func(seen []string) bool {
		return slices.ContainsFunc(seen, func(s string) bool { return strings.HasPrefix(s, prefix) })
	})
}

var _ core.Observer = (*watcher)(nil)

// A held poll with no news parks (after the poll handler's Quiet and
// Park), and the node counts it in chat_poll_parked_total; a client that
// sends nothing while parked is no overflow. A parked poll's answer then
// still brings the next message.
func TestParkedPollsCounted(t *testing.T) {
	const room = "quiet"
	e := NewEnv(t, Options{})
	c := DialPoll(t, e, e.Token(t, "parker", Claims{}), []Join{{Room: room, Since: ptr(0)}})
	eventually(t, "a parked poll counted", func() bool { return series(scrape(t, e), "chat_poll_parked_total") >= 1 })
	if n := series(scrape(t, e), "chat_poll_park_overflows_total"); n != 0 {
		t.Fatalf("chat_poll_park_overflows_total %v, want 0", n)
	}
	other := DialWS(t, e, e.Token(t, "talker", Claims{}), []Join{{Room: room, Since: ptr(0)}})
	if ack, err := other.Send(Ctx(t), room, "p1", "wake up"); err != nil || ack.Type != protocol.TypeAck {
		t.Fatalf("send: %+v, %v", ack, err)
	}
	if got := nextOf(t, c, protocol.TypeMessage); got.Text != "wake up" {
		t.Fatalf("got %+v, want the message", got)
	}
}

// A poll client's polls one after another carry on with the session
// kept from its last answer, found by the note on their connection once
// the lane serves them: the Go client asks again with the same query
// but the cursor. Each message arrives exactly once.
func TestPollSessionsCounted(t *testing.T) {
	const room = "noted"
	e := NewEnv(t, Options{})
	c := DialPoll(t, e, e.Token(t, "noter", Claims{}), []Join{{Room: room, Since: ptr(0)}})
	other := DialWS(t, e, e.Token(t, "talker", Claims{}), []Join{{Room: room, Since: ptr(0)}})
	if n := series(scrape(t, e), "chat_poll_sessions_opened_total"); n < 1 {
		t.Fatalf("chat_poll_sessions_opened_total %v after a poll client joined, want 1 or more", n)
	}
	for i := 0; series(scrape(t, e), "chat_poll_sessions_resumed_total", "found", "note") < 1; i++ {
		if i == 50 {
			t.Fatal("fifty messages in, no poll carried on by its connection's note")
		}
		text := fmt.Sprint("m", i)
		if ack, err := other.Send(Ctx(t), room, "k"+text, text); err != nil || ack.Type != protocol.TypeAck {
			t.Fatalf("send: %+v, %v", ack, err)
		}
		if got := nextOf(t, c, protocol.TypeMessage); got.Text != text {
			t.Fatalf("got %q, want %q", got.Text, text)
		}
	}
}
