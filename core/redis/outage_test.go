package redis

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/core/redis/redistest"
)

// holdReconnect makes e's pub/sub reader stop at its first lost link
// until the returned release is called (also at the test's end). held is
// closed once it has stopped there.
func holdReconnect(t *testing.T, e *Engine) (held <-chan struct{}, release func()) {
	h, r := make(chan struct{}), make(chan struct{})
	var first, done sync.Once
	hold := func() { first.Do(func() { close(h); <-r }) }
	e.hold.Store(&hold)
	release = func() { done.Do(func() { close(r) }) }
	t.Cleanup(release)
	return h, release
}

// metric sums the series of the metric family name in reg.
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// wantUnavailable fails unless err carries CodeUnavailable.
func wantUnavailable(t *testing.T, what string, err error) {
	t.Helper()
	if code, _ := protocol.CodeOf(err); code != protocol.CodeUnavailable {
		t.Fatalf("%s: %v, want a %s error", what, err, protocol.CodeUnavailable)
	}
}

// TestOutage: Redis is killed and restarted on its AOF. Meanwhile calls
// answer unavailable (fast, once the breaker trips) and Health says so;
// afterwards appends work again with seqs continuing, and a subscriber
// whose link was down while a message was appended gets it once, from
// its resync.
func TestOutage(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Durable: true})
	sub := open(t, srv, Config{Node: "sub", URL: srv.SockURL(), Timeout: time.Second})
	reg := prometheus.NewRegistry()
	pub := open(t, srv, Config{Node: "pub", Timeout: time.Second, Metrics: reg})
	rec := newRecorder()
	sub.Register(rec)
	subBack, pubBack := reconnects(sub), reconnects(pub)
	sub.Subscribe("r")
	appendOK(t, pub, "r", "m1", 1)
	rec.wait(t, "r", 1)
	held, release := holdReconnect(t, sub)

	srv.Kill()
	_, _, err := pub.Append(t.Context(), testMsg("r", "m2"))
	wantUnavailable(t, "Append with Redis down", err)
	if pub.Health() == nil {
		t.Fatal("Health() = nil with Redis down")
	}
	for range breakerTrip {
		_, err = pub.Since(t.Context(), "r", 0, 10)
		wantUnavailable(t, "Since with Redis down", err)
	}
	_, err = pub.Since(t.Context(), "r", 0, 10)
	wantUnavailable(t, "Since with the breaker open", err)
	if !errors.Is(err, gobreaker.ErrOpenState) {
		t.Fatalf("Since after %d failures: %v, want the breaker open (failing fast)", breakerTrip, err)
	}
	if s, n := metric(t, reg, "chat_redis_breaker_state"), metric(t, reg, "chat_redis_errors_total"); s != 2 || n < 1 {
		t.Fatalf("metrics: breaker state %v, errors %v; want 2 (open) and some", s, n)
	}
	receive(t, "the subscriber to lose its link", held)
	if sub.Health() == nil {
		t.Fatal("subscriber's Health() = nil with its link down")
	}

	srv.Restart()
	receive(t, "the publisher to reconnect", pubBack)
	appendOK(t, pub, "r", "m2", 2) // the AOF kept seq 1: no reuse

	// The restart emptied the script cache: the pipelined EVALSHA loads it.
	reads := []core.ReadPosition{{Room: "r", User: "ann", Seq: 2}}
	if err := pub.SetReads(t.Context(), reads); err != nil || reads[0].Seq != 2 {
		t.Fatalf("SetReads after the restart: %v, %v", reads, err)
	}
	release()
	receive(t, "the subscriber to reconnect", subBack)
	rec.wait(t, "r", 2) // m2, appended while its link was down, from the resync
	appendOK(t, pub, "r", "m3", 3)
	rec.wait(t, "r", 3) // live again, and m2 not twice
	if err := sub.Health(); err != nil {
		t.Fatalf("subscriber's Health() after recovery: %v", err)
	}
	if err := pub.Health(); err != nil {
		t.Fatalf("publisher's Health() after recovery: %v", err)
	}
}

// TestLostData: Redis without persistence loses everything (FLUSHALL).
// The node that had delivered seqs raises the heads, by its own next
// append (q) or by the resync after a reconnect (r), so that no seq a
// client may have seen is given out again, and pages stay consistent.
func TestLostData(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	e := open(t, srv, Config{AcceptRisk: true})
	rec := newRecorder()
	e.Register(rec)
	back := reconnects(e)
	e.Subscribe("r")
	e.Subscribe("q")
	for i := range 5 {
		appendOK(t, e, "r", "r"+string(rune('a'+i)), uint64(i+1))
	}
	for i := range 3 {
		appendOK(t, e, "q", "q"+string(rune('a'+i)), uint64(i+1))
	}
	rec.wait(t, "r", 5)
	rec.wait(t, "q", 3)

	if r, err := srv.Do("FLUSHALL"); err != nil || r != "+OK" {
		t.Fatalf("FLUSHALL: %q %v", r, err)
	}
	appendOK(t, e, "q", "q-after", 4) // raised by the append's floor
	rec.wait(t, "q", 4)
	if r, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil || r == ":0" {
		t.Fatalf("CLIENT KILL TYPE pubsub: %q %v", r, err)
	}
	receive(t, "the resync", back)

	other := open(t, srv, Config{AcceptRisk: true, Node: "other"}) // knows nothing of r
	appendOK(t, other, "r", "r-after", 6)
	rec.wait(t, "r", 6)
	p, err := e.Since(t.Context(), "r", 5, 10)
	if err != nil || p.Head != 6 || p.First != 6 || len(p.Messages) != 1 || p.Messages[0].ID != "r-after" {
		t.Fatalf("Since(r, 5) = %+v, %v; want head 6, first 6, the new message", p, err)
	}
	if !p.Recovered(5) || p.Recovered(4) || p.Recovered(0) {
		t.Fatalf("Recovered(5, 4, 0) = %v %v %v; want true false false", p.Recovered(5), p.Recovered(4), p.Recovered(0))
	}
}
