package core_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/internal/syncbuf"
)

// clock is a hub clock that a test moves forward: the real time plus an
// offset, so timers and token expiries stay sane.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }
func named(name string) *namedRecorder   { return &namedRecorder{newRecorder(), name} }
func (r *namedRecorder) Name() string    { return r.name }
func ident(user string) auth.Identity    { return auth.Identity{User: user, Name: user} }
func pollOpts(client string) core.SessionOptions {
	return core.SessionOptions{PresenceTTL: 10 * time.Second, Client: client}
}

// namedRecorder is a recorder under a transport name of the test's.
type namedRecorder struct {
	*recorder
	name string
}

// observed is an Observer that keeps what it is told, as "what user
// transport-or-code".
type observed struct {
	mu     sync.Mutex
	events []string
	more   chan struct{} // cap 1: an event came
}

func newObserved() *observed { return &observed{more: make(chan struct{}, 1)} }

func (o *observed) add(f string, args ...any) {
	o.mu.Lock()
	o.events = append(o.events, fmt.Sprintf(f, args...))
	o.mu.Unlock()
	select {
	case o.more <- struct{}{}:
	default:
	}
}

// wait waits until every event in want has been seen.
func (o *observed) wait(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !o.has(want...) {
		select {
		case <-o.more:
		case <-deadline:
			t.Fatalf("observer saw %v, want %v", o.snapshot(), want)
		}
	}
}

func (o *observed) SessionOpened(user, transport string) { o.add("opened %s %s", user, transport) }
func (o *observed) SessionClosed(user, transport string, code int) {
	o.add("closed %s %s %d", user, transport, code)
}
func (o *observed) ErrorReply(user, code string)                 { o.add("error %s %s", user, code) }
func (o *observed) Delivered(user string, latency time.Duration) { o.add("delivered %s", user) }

func (o *observed) snapshot() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.events)
}

// has reports whether every event in want was seen.
func (o *observed) has(want ...string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, w := range want {
		if !slices.Contains(o.events, w) {
			return false
		}
	}
	return true
}

func (o *observed) count(event string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, e := range o.events {
		if e == event {
			n++
		}
	}
	return n
}

// metric returns the value of the series of name with labels in reg: a
// counter's or gauge's value, a histogram's sample count; 0 when absent.
func metric(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !hasLabels(m, labels) {
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
	}
	return 0
}

func hasLabels(m *dto.Metric, pairs []string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			found = found || l.GetName() == pairs[i] && l.GetValue() == pairs[i+1]
		}
		if !found {
			return false
		}
	}
	return true
}

// A poll client counts from its first poll until twice its interval
// (PresenceTTL) after its last one ended, however many polls it makes;
// clients are told apart by user and key. Its lapse is one normal
// disconnect, and the Observer sees one open and one close per client.
func TestPollClientsCountOnceUntilTheyLapse(t *testing.T) {
	clk := &clock{}
	reg := prometheus.NewRegistry()
	obs := newObserved()
	hub := newHub(t, core.Config{Now: clk.Now, Metrics: reg, Observer: obs})
	poll := func(user, key string) *core.Session {
		s, err := hub.Connect(ident(user), named("poll"), pollOpts(key))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// alice polls from two tabs, bob from one without a key; each poll is
	// a session that ends once answered.
	for range 3 {
		for _, s := range []*core.Session{poll("alice", "tab1"), poll("alice", "tab2"), poll("bob", "")} {
			s.Close(core.DisconnectNormal)
		}
	}
	held := poll("carol", "k") // a poll held open
	ws, err := hub.Connect(ident("dave"), named("websocket"), core.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"poll": 4, "websocket": 1}
	if got := hub.Connections(); got["poll"] != 4 || got["websocket"] != 1 {
		t.Fatalf("connections %v, want %v", got, want)
	}
	if n := metric(t, reg, "chat_sessions", "transport", "poll"); n != 4 {
		t.Fatalf("chat_sessions{poll} = %v, want 4 clients (10 polls)", n)
	}
	if n := metric(t, reg, "chat_connects_total", "transport", "poll"); n != 4 {
		t.Fatalf("chat_connects_total{poll} = %v, want 4", n)
	}
	if n := hub.Stats().Sessions; n != 2 {
		t.Fatalf("Stats().Sessions = %d, want the 2 open sessions (a load reading, not clients)", n)
	}

	clk.Advance(9 * time.Second) // within twice the interval: still connected
	if got := hub.Connections()["poll"]; got != 4 {
		t.Fatalf("9 s after the last poll: %d poll clients, want 4", got)
	}
	clk.Advance(2 * time.Second) // past it: the three idle clients lapse, carol's poll is open
	if got := hub.Connections()["poll"]; got != 1 {
		t.Fatalf("11 s after the last poll: %d poll clients, want carol's", got)
	}
	if n := metric(t, reg, "chat_disconnects_total", "transport", "poll", "code", "1000", "reason", "normal"); n != 3 {
		t.Fatalf("chat_disconnects_total{poll,1000,normal} = %v, want 3 lapses", n)
	}
	if n := metric(t, reg, "chat_sessions", "transport", "poll"); n != 1 {
		t.Fatalf("chat_sessions{poll} = %v after the lapses, want 1", n)
	}
	// A poll that fails (here a write failure) ends its client at once,
	// with its code; the next poll connects it again.
	held.Close(core.DisconnectWriteErr)
	if n := metric(t, reg, "chat_disconnects_total", "transport", "poll", "code", "1011", "reason", "write failed"); n != 1 {
		t.Fatalf("chat_disconnects_total{poll,1011,write failed} = %v, want 1", n)
	}
	if got := hub.Connections()["poll"]; got != 0 {
		t.Fatalf("%d poll clients after carol's failed poll, want 0", got)
	}
	poll("carol", "k").Close(core.DisconnectNormal)
	if n := metric(t, reg, "chat_connects_total", "transport", "poll"); n != 5 {
		t.Fatalf("chat_connects_total{poll} = %v, want 5 (carol again)", n)
	}
	ws.Close(core.DisconnectSlow)
	if n := metric(t, reg, "chat_disconnects_total", "transport", "websocket", "code", "4008", "reason", "slow consumer"); n != 1 {
		t.Fatalf("chat_disconnects_total{websocket,4008,slow consumer} = %v, want 1", n)
	}
	for _, user := range []string{"alice", "bob", "carol"} {
		if n := obs.count("opened " + user + " poll"); user == "alice" && n != 2 || user != "alice" && n < 1 {
			t.Errorf("observer: %d opens for %s's poll clients", n, user)
		}
	}
	if !obs.has("closed alice poll 1000", "closed bob poll 1000", "closed carol poll 1011",
		"opened dave websocket", "closed dave websocket 4008") {
		t.Errorf("observer saw %v", obs.snapshot())
	}
	if f := hub.Figures(); f.AbnormalPerMin["poll"] != 0.2 || f.AbnormalPerMin["websocket"] != 0.2 {
		t.Errorf("abnormal disconnects a minute %v, want 0.2 on poll and websocket (one each in 5 min)", f.AbnormalPerMin)
	}
	clk.Advance(6 * time.Minute)
	if f := hub.Figures(); len(f.AbnormalPerMin) != 0 {
		t.Errorf("abnormal disconnects a minute %v six minutes later, want none", f.AbnormalPerMin)
	}
}

// Disconnect reasons are labels from a fixed set: a reason that carries
// an error text (SSE's failed join) counts under its head, any other
// under "other".
func TestDisconnectReasonsAreBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	hub := newHub(t, core.Config{Metrics: reg})
	for i, reason := range []string{"join failed: forbidden: no access to room x1", "join failed: internal: boom", "made up " + t.Name()} {
		s, err := hub.Connect(ident(fmt.Sprint("u", i)), named("sse"), core.SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.Close(core.Disconnect{Code: protocol.CloseBadRequest, Reason: reason})
	}
	if n := metric(t, reg, "chat_disconnects_total", "transport", "sse", "code", "4000", "reason", "join failed"); n != 2 {
		t.Fatalf(`chat_disconnects_total{sse,4000,"join failed"} = %v, want 2`, n)
	}
	if n := metric(t, reg, "chat_disconnects_total", "reason", "other"); n != 1 {
		t.Fatalf(`chat_disconnects_total{reason="other"} = %v, want 1`, n)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "chat_disconnects_total" && len(mf.GetMetric()) != 2 {
			t.Fatalf("%d disconnect series, want 2: %v", len(mf.GetMetric()), mf.GetMetric())
		}
	}
}

// Session errors count with via="session" and reach the Observer; a live
// message written counts as delivered to its user; rtt_ms on any client
// envelope is a round trip report, inside (0, 60 s] only; the store's
// calls are timed by op.
func TestSessionOutcomes(t *testing.T) {
	reg := prometheus.NewRegistry()
	obs := newObserved()
	hub := newHub(t, core.Config{Metrics: reg, Observer: obs})
	ctx := context.Background()
	rec := named("websocket")
	s, err := hub.Connect(ident("erin"), rec, core.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Join(ctx, "room", nil, false); err != nil {
		t.Fatal(err)
	}
	s.HandleFrame(ctx, []byte(`{"type":"send"`))
	rec.waitType(t, protocol.TypeError)
	if n := metric(t, reg, "chat_error_replies_total", "code", "bad_request", "via", "session"); n != 1 {
		t.Fatalf("chat_error_replies_total{bad_request,session} = %v, want 1", n)
	}
	if !obs.has("error erin bad_request") {
		t.Fatalf("observer saw %v, want erin's bad_request", obs.snapshot())
	}

	for _, frame := range []string{
		`{"type":"pong","rtt_ms":120}`, `{"type":"send","room":"room","id":"m1","text":"hi","rtt_ms":30.5}`,
		`{"type":"pong","rtt_ms":0}`, `{"type":"pong","rtt_ms":-5}`, `{"type":"pong","rtt_ms":60001}`, `{"type":"pong","rtt_ms":1e300}`,
	} {
		s.HandleFrame(ctx, []byte(frame))
	}
	if n := metric(t, reg, "chat_client_rtt_seconds", "transport", "websocket"); n != 2 {
		t.Fatalf("chat_client_rtt_seconds{websocket} has %v samples, want the 2 sane reports", n)
	}
	if hub.ClientRTT("websocket", time.Hour) || hub.ClientRTT("websocket", 0) {
		t.Fatal("ClientRTT took a report outside (0, 60 s]")
	}

	rec.waitType(t, protocol.TypeMessage) // erin's own message, live
	obs.wait(t, "delivered erin")
	if _, err := hub.History(ctx, ident("erin"), "room", 0, 10); err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"append", "read"} {
		if n := metric(t, reg, "chat_store_seconds", "op", op); n == 0 {
			t.Errorf("chat_store_seconds{op=%q} has no samples after a send and a history read", op)
		}
	}
	hub.RequestError("erin", "forbidden")
	hub.RequestError("", "unauthorized")
	if n := metric(t, reg, "chat_error_replies_total", "code", "forbidden", "via", "http"); n != 1 {
		t.Fatalf("chat_error_replies_total{forbidden,http} = %v, want 1", n)
	}
	if !obs.has("error erin forbidden") || obs.count("error  unauthorized") != 0 {
		t.Fatalf("observer saw %v: want erin's forbidden, and nothing for an unknown user", obs.snapshot())
	}
	f := hub.Figures()
	if f.ErrorsPerMin["bad_request"] != 0.2 || f.ErrorsPerMin["unauthorized"] != 0.2 || f.RTTReports != 2 {
		t.Errorf("figures %+v: want 0.2 bad_request and unauthorized a minute, 2 round trips", f)
	}
}

// The round trip p99 is interpolated within the histogram's buckets as
// histogram_quantile does.
func TestRTTPercentile(t *testing.T) {
	hub := newHub(t, core.Config{})
	if f := hub.Figures(); f.RTTP99 != 0 || f.RTTReports != 0 {
		t.Fatalf("figures %+v with no reports", f)
	}
	for range 100 {
		hub.ClientRTT("sse", 150*time.Millisecond) // all in (0.1 s, 0.2 s]
	}
	// rank 99 of 100 in the bucket (0.1, 0.2]: 0.1 + 0.1·99/100.
	if got, want := hub.Figures().RTTP99, 199*time.Millisecond; got < want-time.Millisecond || got > want+time.Millisecond {
		t.Fatalf("p99 %v, want %v", got, want)
	}
	for range 10 {
		hub.ClientRTT("sse", 30*time.Second) // beyond the last bucket
	}
	if got := hub.Figures().RTTP99; got != 10*time.Second {
		t.Fatalf("p99 %v with 9%% of reports past 10 s, want the highest bound, 10s", got)
	}
}

// TestInternalErrorLogsCause: the cause of an error a REST answer shows
// only as "internal error" goes to the hub's log, with the user.
func TestInternalErrorLogsCause(t *testing.T) {
	var buf syncbuf.Buffer
	hub := newHub(t, core.Config{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	hub.InternalError("erin", errors.New("disk on fire"))
	hub.InternalError("erin", fmt.Errorf("history: %w", core.ErrClosed)) // shutting down: not a fault to log
	line := buf.String()
	if strings.Count(line, "\n") != 1 || !strings.Contains(line, "level=ERROR") || !strings.Contains(line, "user=erin") ||
		!strings.Contains(line, "via=http") || !strings.Contains(line, `err="disk on fire"`) {
		t.Fatalf("logged %q, want one error line with the user, via=http and the cause", line)
	}
}

// EndJoinFailed closes with 1011 for the server's trouble and 4000 for the
// request's fault, says the code and the client's message (never the
// cause), sends its disconnect and counts no failed write; it logs the
// cause of an internal error only.
func TestEndJoinFailed(t *testing.T) {
	var buf syncbuf.Buffer
	hub := newHub(t, core.Config{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	for _, tc := range []struct {
		err    error
		code   int
		reason string
		logged bool
	}{
		{errors.New("disk on fire"), 1011, "join failed: internal: internal error", true},
		{protocol.Errorf(protocol.CodeUnavailable, "the store is unavailable"), 1011, "join failed: unavailable: the store is unavailable", false},
		{protocol.Errorf(protocol.CodeForbidden, "no access to room x"), 4000, "join failed: forbidden: no access to room x", false},
		{fmt.Errorf("since: %w", core.ErrClosed), 1011, "join failed: internal: internal error", false},
	} {
		before := buf.String()
		rec := newRecorder()
		s, err := hub.Connect(auth.Identity{User: "fay"}, rec, core.SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.EndJoinFailed(tc.err)
		d := <-rec.closed
		if d.Code != tc.code || d.Reason != tc.reason {
			t.Errorf("%v: closed %d %q, want %d %q", tc.err, d.Code, d.Reason, tc.code, tc.reason)
		}
		if f := rec.waitType(t, protocol.TypeDisconnect); f.Type != protocol.TypeDisconnect {
			t.Errorf("%v: no disconnect frame", tc.err)
		}
		if logged := strings.Contains(strings.TrimPrefix(buf.String(), before), "request failed"); logged != tc.logged {
			t.Errorf("%v: logged %v, want %v", tc.err, logged, tc.logged)
		}
	}
	if st := hub.Stats(); st.WriteFailed != 0 || len(st.Failures) != 0 {
		t.Fatalf("write failed %d, failures %v; want none", st.WriteFailed, st.Failures)
	}
	if !strings.Contains(buf.String(), "disk on fire") {
		t.Fatalf("the internal cause is not in the log: %q", buf.String())
	}
}
