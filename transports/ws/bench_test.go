package ws_test

import (
	"sync"
	"testing"

	"github.com/chatd/chatd/core"
)

// BenchmarkWrite measures one delivery — one chat message (about 100
// characters of text, a 230-byte envelope) written to one connection —
// with compression off and on. Its figures are ns per delivery on the
// writing goroutine (system call included), wire-B/delivery (what the
// server sent) and json-B/delivery (the envelope bytes before framing).
//
//   - single: each message is its own batch, fanned out to 64
//     connections, as under light traffic: one prepared message per
//     broadcast, deflated once for all 64 when compression is on.
//   - unshared: the same, with frames that nothing shares (replies, a
//     replay), so each connection frames and deflates its own.
//   - batch16: 16 queued messages per write, one JSON array per
//     connection, as under heavy traffic; each connection deflates its own.
//   - -takeover: the connections negotiated context takeover, as a
//     browser's do: each connection deflates each message against the
//     last 2 KiB it sent.
func BenchmarkWrite(b *testing.B) {
	cases := []struct {
		name     string
		deflate  bool
		takeover bool
		shared   bool
		batch    int
	}{
		{"single", false, false, true, 1},
		{"single-deflate", true, false, true, 1},
		{"single-takeover", true, true, true, 1},
		{"unshared-deflate", true, false, false, 1},
		{"batch16", false, false, true, 16},
		{"batch16-deflate", true, false, true, 16},
		{"batch16-takeover", true, true, true, 16},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) { benchWrite(b, bc.deflate, bc.takeover, bc.shared, bc.batch) })
	}
}

func benchWrite(b *testing.B, deflate, takeover, shared bool, batch int) {
	const conns = 64
	frames := sharedFrames(b, b.N/conns+batch)
	if !shared {
		for i, f := range frames {
			frames[i] = core.Frame{Type: f.Type, Room: f.Room, Seq: f.Seq, Data: f.Data}
		}
	}
	var drained sync.WaitGroup
	b.Cleanup(drained.Wait) // after the links' cleanups close them
	o := linkOptions{deflate: deflate, takeover: takeover}
	if deflate {
		o.compress = func(string) bool { return true }
	}
	links := newLinks(b, conns, o)
	for _, l := range links {
		drained.Go(l.frames.drain)
	}
	var payload int64
	b.ReportAllocs()
	b.ResetTimer()
	for w := 0; w*batch < b.N; w++ {
		l := links[w%conns]
		first := (w / conns) * batch
		out := frames[first : first+batch]
		if err := l.conn.Write(out); err != nil {
			b.Fatal(err)
		}
		for _, f := range out {
			payload += int64(len(f.Data))
		}
	}
	b.StopTimer()
	var wire int64
	for _, l := range links {
		wire += l.server.n.Load()
	}
	deliveries := float64((b.N + batch - 1) / batch * batch)
	b.ReportMetric(float64(wire)/deliveries, "wire-B/delivery")
	b.ReportMetric(float64(payload)/deliveries, "json-B/delivery")
}
