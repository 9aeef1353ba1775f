package core_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// TestWriteDelayPolicy: a writer waits a tenth of the recent delivery
// latency, at most MaxWriteDelay, and not at all while latency is low or
// the delay is turned off.
func TestWriteDelayPolicy(t *testing.T) {
	reg := prometheus.NewRegistry()
	hub := newHub(t, core.Config{Metrics: reg})
	if d := core.WriteDelay(hub); d != 0 {
		t.Fatalf("an idle node delays writes by %v", d)
	}
	core.SetDeliveryLatency(hub, 5*time.Millisecond)
	if d := core.WriteDelay(hub); d != 0 {
		t.Fatalf("at 5 ms of latency writes wait %v, want none", d)
	}
	core.SetDeliveryLatency(hub, 200*time.Millisecond)
	if d := core.WriteDelay(hub); d < 19*time.Millisecond || d > 20*time.Millisecond {
		t.Fatalf("at 200 ms of latency writes wait %v, want about 20 ms", d)
	}
	core.SetDeliveryLatency(hub, 5*time.Second)
	if d := core.WriteDelay(hub); d != 50*time.Millisecond {
		t.Fatalf("at 5 s of latency writes wait %v, want the default cap, 50 ms", d)
	}
	if v := gaugeValue(t, reg, "chat_write_delay_seconds"); v != 0.05 {
		t.Fatalf("chat_write_delay_seconds = %v, want 0.05", v)
	}

	off := newHub(t, core.Config{MaxWriteDelay: -1})
	core.SetDeliveryLatency(off, 5*time.Second)
	if d := core.WriteDelay(off); d != 0 {
		t.Fatalf("with MaxWriteDelay < 0 writes wait %v", d)
	}
}

// TestRelievedWriteDelay: while the node relieves load, a writer waits a
// quarter of the recent delivery latency, between half of
// RelievedWriteDelay and all of it, however low the latency; and the
// ordinary rule again once relief ends.
func TestRelievedWriteDelay(t *testing.T) {
	var relieving atomic.Bool
	hub := newHub(t, core.Config{Relieving: relieving.Load})
	core.SetDeliveryLatency(hub, 5*time.Millisecond)
	if d := core.WriteDelay(hub); d != 0 {
		t.Fatalf("at 5 ms of latency, writes wait %v, want none", d)
	}
	relieving.Store(true)
	for _, c := range []struct{ latency, want time.Duration }{
		{0, 500 * time.Millisecond}, // however low: batching is part of the relief
		{5 * time.Millisecond, 500 * time.Millisecond},
		{40 * time.Millisecond, 500 * time.Millisecond}, // half of the default 1 s
		{time.Second, 500 * time.Millisecond},
		{3 * time.Second, 750 * time.Millisecond}, // a quarter
		{10 * time.Second, time.Second},
	} {
		core.SetDeliveryLatency(hub, c.latency)
		if d := core.WriteDelay(hub); d < c.want-time.Millisecond || d > c.want {
			t.Fatalf("relieving at %v of latency, writes wait %v, want %v", c.latency, d, c.want)
		}
	}
	relieving.Store(false)
	if d := core.WriteDelay(hub); d != 50*time.Millisecond {
		t.Fatalf("relief over, at 10 s of latency writes wait %v, want the ordinary cap, 50 ms", d)
	}

	plain := newHub(t, core.Config{Relieving: relieving.Load, RelievedWriteDelay: -1})
	relieving.Store(true)
	core.SetDeliveryLatency(plain, 10*time.Second)
	if d := core.WriteDelay(plain); d != 50*time.Millisecond {
		t.Fatalf("with RelievedWriteDelay < 0, relieving at 10 s of latency writes wait %v, want 50 ms", d)
	}
	off := newHub(t, core.Config{Relieving: relieving.Load, MaxWriteDelay: -1})
	core.SetDeliveryLatency(off, 10*time.Second)
	if d := core.WriteDelay(off); d != 0 {
		t.Fatalf("with MaxWriteDelay < 0, relieving writes wait %v", d)
	}
}

// TestWriteDelayEndsEarly: a writer waiting its write delay (here an
// hour, as a relieving node's could be long) takes its queue at once when
// the queue is a quarter full, and a close does not wait for the delay.
func TestWriteDelayEndsEarly(t *testing.T) {
	var relieving atomic.Bool
	hub := newHub(t, core.Config{SendRate: 1e6, SendBurst: 1e6, QueueFrames: 16,
		Relieving: relieving.Load, RelievedWriteDelay: time.Hour})
	sess, rec := joinedLea(t, hub)
	relieving.Store(true)
	core.SetDeliveryLatency(hub, 100*time.Hour)
	if d := core.WriteDelay(hub); d != time.Hour {
		t.Fatalf("writes wait %v, want an hour", d)
	}
	send := bobSends(t, hub)
	pausing := func() bool { return core.Pausing(sess) }

	send(0)
	eventuallyCore(t, "the writer to begin its write delay", pausing)
	if n := rec.messages(); n != 0 {
		t.Fatalf("%d messages written before the delay ended", n)
	}
	for i := 1; i < 4; i++ { // a quarter of QueueFrames
		send(i)
	}
	rec.waitMessages(t, 4, "with the queue a quarter full")

	send(4)
	eventuallyCore(t, "the writer to begin its write delay", pausing)
	closeDuringDelay(t, sess)
}

// TestWriteDelayOfParkedWriter: a writer parked after a write (for an
// hour), when a message comes while writes are delayed, waits its write
// delay before it writes, and then writes: after 50 ms, not after its
// hour-long linger (the kick resets the timer it is parked on; that it
// does so without waking the writer is not visible here); a quarter
// full queue ends that wait at once, and so does a close, which writes
// what waited.
func TestWriteDelayOfParkedWriter(t *testing.T) {
	var relieving atomic.Bool
	hub := newHub(t, core.Config{SendRate: 1e6, SendBurst: 1e6, QueueFrames: 16, WriterLinger: time.Hour,
		Relieving: relieving.Load, RelievedWriteDelay: time.Hour})
	sess, rec := joinedLea(t, hub)
	send := bobSends(t, hub)
	pausing := func() bool { return core.Pausing(sess) }
	lingering := func() bool { return core.Lingering(sess) }

	send(0) // no latency yet, not relieving: written at once
	rec.waitMessages(t, 1, "with no write delay")
	eventuallyCore(t, "the writer to park after its write", lingering)
	relieving.Store(true)
	core.SetDeliveryLatency(hub, 100*time.Hour)
	if d := core.WriteDelay(hub); d != time.Hour {
		t.Fatalf("writes wait %v, want an hour", d)
	}
	send(1)
	eventuallyCore(t, "the parked writer to begin its write delay", pausing)
	if n := rec.messages(); n != 1 {
		t.Fatalf("%d messages written before the delay ended, want 1", n)
	}
	for i := 2; i < 5; i++ { // with message 1, a quarter of QueueFrames
		send(i)
	}
	rec.waitMessages(t, 5, "with the queue a quarter full")

	// The ordinary rule: 50 ms. The writer, parked for an hour, wakes
	// when the delay ends, not when its linger does.
	eventuallyCore(t, "the writer to park after its write", lingering)
	relieving.Store(false)
	send(5)
	rec.waitMessages(t, 6, "by a writer parked for an hour, woken to wait 50 ms")

	relieving.Store(true)
	eventuallyCore(t, "the writer to park after its write", lingering)
	send(6)
	eventuallyCore(t, "the parked writer to begin its write delay", pausing)
	closeDuringDelay(t, sess)
	if n := rec.messages(); n != 7 {
		t.Fatalf("%d messages written, want 7: a close writes what waited its delay", n)
	}
}

// TestWriteDelayNotCountedBehind: the wait a writer chose is in the
// delivery histogram, what the client saw, but not in the latency the
// controller and the write delay read, or level 1's delay, at least half
// of RelievedWriteDelay, would keep that latency over the breaker's
// threshold for as long as messages flow.
func TestWriteDelayNotCountedBehind(t *testing.T) {
	reg := prometheus.NewRegistry()
	var relieving atomic.Bool
	hub := newHub(t, core.Config{Metrics: reg, Relieving: relieving.Load, RelievedWriteDelay: 2 * time.Second})
	_, rec := joinedLea(t, hub)
	relieving.Store(true)
	core.SetDeliveryLatency(hub, 100*time.Millisecond)
	if d := core.WriteDelay(hub); d != time.Second {
		t.Fatalf("writes wait %v, want 1 s", d)
	}
	primed := hub.Stats().DeliveryLatency
	bobSends(t, hub)(0)
	rec.waitMessages(t, 1, "after the write delay")
	// The writer records the delivery after its Write returns.
	eventuallyCore(t, "the delivery to be recorded", func() bool { return hub.Stats().DeliveryLatency != primed })
	if n, sum := histogram(t, reg, "chat_delivery_seconds"); n != 1 || sum < 1 {
		t.Fatalf("chat_delivery_seconds: %d deliveries taking %v s, want one of at least the 1 s delay", n, sum)
	}
	// The average was about 100 ms; one more sample of the whole wait
	// would have raised it by an eighth of the difference, to at least
	// 212 ms.
	if lat := hub.Stats().DeliveryLatency; lat >= 150*time.Millisecond {
		t.Fatalf("delivery latency after a message delayed 1 s = %v, want it to have fallen from %v", lat, primed)
	}
}

// TestDelayedWritesLoseNothing: while writers wait to batch, a session
// still gets every message of its room once, in order.
func TestDelayedWritesLoseNothing(t *testing.T) {
	hub := newHub(t, core.Config{SendRate: 1e6, SendBurst: 1e6, MaxWriteDelay: 20 * time.Millisecond})
	ctx := context.Background()
	_, rec := joinedLea(t, hub)
	core.SetDeliveryLatency(hub, 10*time.Second)
	if core.WriteDelay(hub) != 20*time.Millisecond {
		t.Fatal("writes are not delayed")
	}
	const n = 40
	bob := auth.Identity{User: "bob", Name: "Bob"}
	for i := range n {
		if _, err := hub.Send(ctx, bob, "r", fmt.Sprint("m", i), "hi"); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.After(10 * time.Second)
	for {
		rec.mu.Lock()
		var seqs []uint64
		for _, f := range rec.frames {
			if f.Type == protocol.TypeMessage {
				seqs = append(seqs, f.Seq)
			}
		}
		rec.mu.Unlock()
		if len(seqs) >= n {
			for i, s := range seqs {
				if s != uint64(i+1) || i >= n {
					t.Fatalf("messages written %v, want seq 1 to %d once each, in order", seqs, n)
				}
			}
			return
		}
		select {
		case <-rec.more:
		case <-deadline:
			t.Fatalf("%d of %d messages written", len(seqs), n)
		}
	}
}

// joinedLea connects lea to hub and joins her to room "r", written
// through: her joined reply is in the recorder. The session closes when
// the test ends.
func joinedLea(t *testing.T, hub *core.Hub) (*core.Session, *recorder) {
	t.Helper()
	rec := newRecorder()
	sess, err := hub.Connect(auth.Identity{User: "lea", Name: "Lea"}, rec, core.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close(core.DisconnectNormal) })
	if err := sess.Join(context.Background(), "r", nil, false); err != nil {
		t.Fatal(err)
	}
	rec.waitType(t, protocol.TypeJoined)
	return sess, rec
}

// bobSends returns a function that sends message i to room r as bob.
func bobSends(t *testing.T, hub *core.Hub) func(i int) {
	bob := auth.Identity{User: "bob", Name: "Bob"}
	return func(i int) {
		t.Helper()
		if _, err := hub.Send(context.Background(), bob, "r", fmt.Sprint("m", i), "hi"); err != nil {
			t.Fatal(err)
		}
	}
}

// closeDuringDelay closes sess, whose writer waits a long write delay,
// and fails if the writer does not exit at once.
func closeDuringDelay(t *testing.T, sess *core.Session) {
	t.Helper()
	sess.Close(core.DisconnectNormal)
	select {
	case <-sess.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a closing session's writer still waits its write delay")
	}
}

// messages counts the messages r has been written.
func (r *recorder) messages() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, f := range r.frames {
		if f.Type == protocol.TypeMessage {
			n++
		}
	}
	return n
}

// waitMessages waits until r has been written n messages, and fails,
// saying what should have written them, if that takes over 10 s.
func (r *recorder) waitMessages(t *testing.T, n int, what string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for r.messages() < n {
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("%d of %d messages written %s", r.messages(), n, what)
		}
	}
}

// gaugeValue gathers reg and returns the value of the gauge name.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

// histogram gathers reg and returns the count and sum of the histogram
// name, over all its labels.
func histogram(t *testing.T, reg *prometheus.Registry, name string) (uint64, float64) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			n += m.GetHistogram().GetSampleCount()
			sum += m.GetHistogram().GetSampleSum()
		}
	}
	return n, sum
}
