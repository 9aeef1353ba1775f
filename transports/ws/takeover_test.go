package ws_test

import (
	"sync"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/transports/ws"
)

// With context takeover, each message leaves deflated against the ones
// before it and inflates, with the client's window, to exactly what was
// written: single frames, batches, through a heartbeat (which lets the
// history go), through compression turned off (plain messages, which the
// window does not take) and on again. The stream of typical chat lines
// takes under half its plain size, where each line alone does not.
func TestWriteTakeover(t *testing.T) {
	on := true
	compress := func(string) bool { return on }
	l := newLinks(t, 1, linkOptions{takeover: true, compress: compress})[0]
	frames := sharedFrames(t, 60)
	var plain, wire int
	for _, f := range frames[:40] {
		write(t, l, f)
		got := l.frames.next(t)
		if !got.rsv1 {
			t.Fatal("a single frame left plain")
		}
		wantText(t, got, string(f.Data))
		plain, wire = plain+len(f.Data), wire+len(got.payload)
	}
	t.Logf("40 chat lines: %d bytes plain, %d deflated with context takeover (%.2fx)", plain, wire, float64(plain)/float64(wire))
	if wire*2 > plain {
		t.Fatalf("40 chat lines of %d bytes took %d deflated: want under half", plain, wire)
	}

	// A batch: the control ping first, then each fanned-out frame as a
	// message of its own, and each run of other frames as one array.
	a, b, c := msgFrame("r", 1, "one"), msgFrame("r", 2, "two"), msgFrame("r", 3, "three")
	write(t, l, frames[40], pingFrame, a, b, frames[41], c)
	if f := l.frames.next(t); f.op != websocket.PingMessage || f.rsv1 {
		t.Fatalf("got op %d rsv1 %v, want a plain ping control frame", f.op, f.rsv1)
	}
	for _, want := range []string{string(frames[40].Data), "[" + string(a.Data) + "," + string(b.Data) + "]", string(frames[41].Data), string(c.Data)} {
		got := l.frames.next(t)
		if !got.rsv1 {
			t.Fatal("a message of a batch left plain")
		}
		wantText(t, got, want)
	}

	write(t, l, pingFrame) // idle: the history goes
	if f := l.frames.next(t); f.op != websocket.PingMessage {
		t.Fatalf("got op %d, want a ping control frame", f.op)
	}
	write(t, l, frames[42])
	wantText(t, l.frames.next(t), string(frames[42].Data))

	on = false
	for _, f := range frames[43:46] {
		write(t, l, f)
		got := l.frames.next(t)
		if got.rsv1 {
			t.Fatal("deflated with compression off")
		}
		wantText(t, got, string(f.Data))
	}
	on = true
	write(t, l, frames[46:50]...)
	for _, f := range frames[46:50] {
		got := l.frames.next(t)
		if !got.rsv1 {
			t.Fatal("not deflated once compression was back on")
		}
		wantText(t, got, string(f.Data))
	}
}

// The frames the writer builds and the pongs gorilla sends for the
// reader share the socket: under a stream of client pings, every frame
// arrives whole, every ping is answered, and the messages inflate in
// order.
func TestTakeoverPongsInterleave(t *testing.T) {
	const n = 300
	l := newLinks(t, 1, linkOptions{takeover: true, compress: func(string) bool { return true }})[0]
	frames := sharedFrames(t, 8)
	var wg sync.WaitGroup
	wg.Go(func() {
		ping := []byte{0x89, 0x84, 1, 2, 3, 4, 'p' ^ 1, 'i' ^ 2, 'n' ^ 3, 'g' ^ 4} // masked, as a client's must be
		for range n {
			if _, err := l.client.Write(ping); err != nil {
				t.Errorf("ping: %v", err)
				return
			}
		}
	})
	wg.Go(func() {
		for i := range n {
			if err := l.conn.Write([]core.Frame{frames[i%len(frames)]}); err != nil {
				t.Errorf("write %d: %v", i, err)
				return
			}
		}
	})
	pongs, msgs := 0, 0
	for pongs < n || msgs < n {
		f := l.frames.next(t)
		switch f.op {
		case websocket.PongMessage:
			if string(f.payload) != "ping" {
				t.Fatalf("pong %d carries %q", pongs, f.payload)
			}
			pongs++
		case websocket.TextMessage:
			if got, want := f.text(t), string(frames[msgs%len(frames)].Data); got != want {
				t.Fatalf("message %d: %s\nwant %s", msgs, got, want)
			}
			msgs++
		default:
			t.Fatalf("got op %d", f.op)
		}
	}
	wg.Wait()
}

// Connections whose histories are the same share one deflated form of a
// broadcast frame: three connections in step take one form each frame;
// one that got a message of its own meanwhile takes a second form until
// the broadcast has filled its history again, and all inflate to the
// same text throughout.
func TestTakeoverSharedForms(t *testing.T) {
	links := newLinks(t, 3, linkOptions{takeover: true, compress: func(string) bool { return true }})
	frames := sharedFrames(t, 40)
	check := func(l *link, f core.Frame) {
		t.Helper()
		got := l.frames.next(t)
		if !got.rsv1 {
			t.Fatal("not deflated")
		}
		wantText(t, got, string(f.Data))
	}
	for _, f := range frames[:5] {
		for _, l := range links {
			write(t, l, f)
			check(l, f)
		}
		if n := ws.TakeoverForms(f); n != 1 {
			t.Fatalf("%d deflated forms for connections in step, want 1", n)
		}
	}
	// A message of links[0]'s own: its history differs from then on.
	own := msgFrame("r", 1, "a reply to links[0] only")
	write(t, links[0], own)
	wantText(t, links[0].frames.next(t), string(own.Data))
	converged := -1
	for i, f := range frames[5:] {
		for _, l := range links {
			write(t, l, f)
			check(l, f)
		}
		n := ws.TakeoverForms(f)
		switch {
		case i == 0 && n != 2:
			t.Fatalf("first frame after the reply: %d forms, want 2", n)
		case n == 1 && converged < 0:
			converged = i
		case n != 1 && converged >= 0:
			t.Fatalf("frame %d: %d forms after the histories met again", i, n)
		}
	}
	if converged < 0 {
		t.Fatal("the histories never met again")
	}
	t.Logf("histories met again after %d frames", converged)
}
