package core_test

import (
	"context"
	"fmt"
	"runtime"
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
// quarter of the recent delivery latency, between a fifth of
// RelievedWriteDelay and all of it; still none while latency is low; and
// the ordinary rule again once relief ends.
func TestRelievedWriteDelay(t *testing.T) {
	var relieving atomic.Bool
	hub := newHub(t, core.Config{Relieving: relieving.Load})
	core.SetDeliveryLatency(hub, 5*time.Millisecond)
	relieving.Store(true)
	if d := core.WriteDelay(hub); d != 0 {
		t.Fatalf("relieving at 5 ms of latency, writes wait %v, want none", d)
	}
	for _, c := range []struct{ latency, want time.Duration }{
		{40 * time.Millisecond, 200 * time.Millisecond}, // a fifth of the default 1 s
		{time.Second, 250 * time.Millisecond},
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
	hub := newHub(t, core.Config{SendRate: 1e6, SendBurst: 1e6, QueueFrames: 16,
		Relieving: func() bool { return true }, RelievedWriteDelay: time.Hour})
	ctx := context.Background()
	sess, rec := joinedLea(t, hub)
	core.SetDeliveryLatency(hub, 100*time.Hour)
	if d := core.WriteDelay(hub); d != time.Hour {
		t.Fatalf("writes wait %v, want an hour", d)
	}
	bob := auth.Identity{User: "bob", Name: "Bob"}
	send := func(i int) {
		t.Helper()
		if _, err := hub.Send(ctx, bob, "r", fmt.Sprint("m", i), "hi"); err != nil {
			t.Fatal(err)
		}
	}
	waitPausing := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !core.Pausing(sess) {
			if time.Now().After(deadline) {
				t.Fatal("the writer never began its write delay")
			}
			runtime.Gosched()
		}
	}
	messages := func() int {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		n := 0
		for _, f := range rec.frames {
			if f.Type == protocol.TypeMessage {
				n++
			}
		}
		return n
	}

	send(0)
	waitPausing()
	if n := messages(); n != 0 {
		t.Fatalf("%d messages written before the delay ended", n)
	}
	for i := 1; i < 4; i++ { // a quarter of QueueFrames
		send(i)
	}
	deadline := time.After(10 * time.Second)
	for messages() < 4 {
		select {
		case <-rec.more:
		case <-deadline:
			t.Fatalf("%d of 4 messages written with the queue a quarter full", messages())
		}
	}

	send(4)
	waitPausing()
	sess.Close(core.DisconnectNormal)
	select {
	case <-sess.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a closing session's writer still waits its write delay")
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
