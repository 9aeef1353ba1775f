package ws_test

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/ws"
)

func msgFrame(room string, seq uint64, text string) core.Frame {
	return plainFrame(protocol.Envelope{Type: protocol.TypeMessage, Room: room, Seq: seq, ID: "id", From: "a", Text: text})
}

// wantText fails unless f is one final text frame whose payload is want.
func wantText(t *testing.T, f wireFrame, want string) {
	t.Helper()
	if f.op != websocket.TextMessage || !f.fin {
		t.Fatalf("got frame op %d fin %v, want one final text frame", f.op, f.fin)
	}
	if got := f.text(t); got != want {
		t.Fatalf("got payload %s\nwant %s", got, want)
	}
}

func write(t *testing.T, l *link, frames ...core.Frame) {
	t.Helper()
	if err := l.conn.Write(frames); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// A batch is one control ping, then its other frames as one JSON array
// in one text frame, in order; the ping envelope is not sent.
func TestWriteBatchWithControlPing(t *testing.T) {
	l := newLinks(t, 1, linkOptions{})[0]
	a, b, c := msgFrame("r", 1, "one"), msgFrame("r", 2, "two"), msgFrame("r", 3, "three")
	write(t, l, a, pingFrame, b, pingFrame, c)
	if f := l.frames.next(t); f.op != websocket.PingMessage || len(f.payload) != 0 {
		t.Fatalf("first frame: op %d payload %q, want an empty ping control frame", f.op, f.payload)
	}
	wantText(t, l.frames.next(t), "["+string(a.Data)+","+string(b.Data)+","+string(c.Data)+"]")

	// A batch of a heartbeat alone is the control frame alone.
	write(t, l, pingFrame)
	if f := l.frames.next(t); f.op != websocket.PingMessage {
		t.Fatalf("got op %d, want a ping control frame", f.op)
	}
	// A heartbeat and one frame: the frame on its own, not in an array.
	write(t, l, pingFrame, a)
	if f := l.frames.next(t); f.op != websocket.PingMessage {
		t.Fatalf("got op %d, want a ping control frame", f.op)
	}
	wantText(t, l.frames.next(t), string(a.Data))
}

// With ?heartbeat=app the heartbeat is the ping envelope, in the batch
// like any other, and no control frame is sent.
func TestWriteAppPings(t *testing.T) {
	l := newLinks(t, 1, linkOptions{appPings: true})[0]
	a := msgFrame("r", 1, "one")
	write(t, l, pingFrame)
	wantText(t, l.frames.next(t), `{"type":"ping"}`)
	write(t, l, a, pingFrame)
	wantText(t, l.frames.next(t), "["+string(a.Data)+`,{"type":"ping"}]`)
}

// A fanned-out frame written to several connections reaches each as it
// is, from one prepared message built once; a frame written by one
// connection only is written as it is, without preparing anything.
func TestWriteSharedFrame(t *testing.T) {
	frames := sharedFrames(t, 2)
	links := newLinks(t, 3, linkOptions{})
	for _, l := range links {
		write(t, l, frames[0])
	}
	for i, l := range links {
		var env protocol.Envelope
		got := l.frames.next(t)
		wantText(t, got, string(frames[0].Data))
		if err := json.Unmarshal(got.payload, &env); err != nil || env.Seq != 1 {
			t.Fatalf("link %d: %q: %+v, %v", i, got.payload, env, err)
		}
	}
	if uses, built := ws.PreparedState(frames[0]); uses != 3 || !built {
		t.Fatalf("shared frame: %d uses, prepared %v; want 3 uses and a prepared message", uses, built)
	}
	write(t, links[0], frames[1])
	wantText(t, links[0].frames.next(t), string(frames[1].Data))
	if uses, built := ws.PreparedState(frames[1]); uses != 1 || built {
		t.Fatalf("frame written once: %d uses, prepared %v; want 1 use and nothing prepared", uses, built)
	}
}

// With permessage-deflate negotiated and Compress on, single frames and
// batches leave deflated (RSV1 set) and inflate to the same bytes; the
// shared frame is deflated once for every connection. Compress turning
// off stops compression from the next batch.
func TestWriteDeflate(t *testing.T) {
	on := true
	compress := func(string) bool { return on }
	frames := sharedFrames(t, 3)
	links := newLinks(t, 2, linkOptions{deflate: true, compress: compress})
	plain := newLinks(t, 1, linkOptions{})[0]
	for _, l := range append(links, plain) {
		write(t, l, frames[0])
	}
	for _, l := range links {
		f := l.frames.next(t)
		if !f.rsv1 {
			t.Fatal("single frame not compressed")
		}
		wantText(t, f, string(frames[0].Data))
		if len(f.payload) >= len(frames[0].Data) {
			t.Fatalf("deflated to %d bytes from %d", len(f.payload), len(frames[0].Data))
		}
	}
	if f := plain.frames.next(t); f.rsv1 {
		t.Fatal("a connection without the extension got a compressed frame")
	} else {
		wantText(t, f, string(frames[0].Data))
	}
	if uses, built := ws.PreparedState(frames[0]); uses != 3 || !built {
		t.Fatalf("%d uses, prepared %v", uses, built)
	}

	write(t, links[0], frames[1], pingFrame, frames[2])
	if f := links[0].frames.next(t); f.op != websocket.PingMessage || f.rsv1 {
		t.Fatalf("got op %d rsv1 %v, want an uncompressed ping", f.op, f.rsv1)
	}
	f := links[0].frames.next(t)
	if !f.rsv1 {
		t.Fatal("batch not compressed")
	}
	wantText(t, f, "["+string(frames[1].Data)+","+string(frames[2].Data)+"]")

	on = false
	write(t, links[1], frames[1], frames[2])
	f = links[1].frames.next(t)
	if f.rsv1 {
		t.Fatal("compressed after Compress turned off")
	}
	wantText(t, f, "["+string(frames[1].Data)+","+string(frames[2].Data)+"]")
}

// A large batch leaves as one frame, not as fragments of the write buffer.
func TestWriteLargeBatchOneFrame(t *testing.T) {
	l := newLinks(t, 1, linkOptions{})[0]
	var batch []core.Frame
	var want []string
	for i := range 64 {
		f := msgFrame("r", uint64(i+1), strings.Repeat("x", 500))
		batch = append(batch, f)
		want = append(want, string(f.Data))
	}
	write(t, l, batch...)
	wantText(t, l.frames.next(t), "["+strings.Join(want, ",")+"]")
}

// A message to deflate that could be larger than the write buffer once
// deflated is deflated in memory, then written in one piece (one write
// call) rather than flushed fragment by fragment while the flate writer
// is held: a batch, and a single frame. The text is random letters, so
// that it stays larger than the 16 KiB buffer once deflated.
func TestWriteDeflateLarge(t *testing.T) {
	l := newLinks(t, 1, linkOptions{deflate: true, compress: func(string) bool { return true }})[0]
	rng := rand.New(rand.NewPCG(1, 2))
	letters := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('a' + rng.IntN(26))
		}
		return string(b)
	}
	var batch []core.Frame
	var want []string
	for i := range 200 {
		f := msgFrame("r", uint64(i+1), letters(200))
		batch = append(batch, f)
		want = append(want, string(f.Data))
	}
	big := msgFrame("r", 201, letters(40000))
	for _, tc := range []struct {
		name   string
		frames []core.Frame
		want   string
	}{
		{"batch", batch, "[" + strings.Join(want, ",") + "]"},
		{"frame", []core.Frame{big}, string(big.Data)},
	} {
		before := l.server.writes.Load()
		write(t, l, tc.frames...)
		m := l.frames.message(t)
		if !m.rsv1 || len(m.payload) <= 16<<10 {
			t.Fatalf("%s: compressed %v to %d bytes; want compressed, still over 16 KiB", tc.name, m.rsv1, len(m.payload))
		}
		wantText(t, m, tc.want)
		if n := l.server.writes.Load() - before; n != 1 {
			t.Fatalf("%s: written in %d calls, want 1", tc.name, n)
		}
	}
}
