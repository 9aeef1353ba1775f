package sse

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// BenchmarkWrite measures what the session's writer spends per delivered
// chat message, over a real loopback connection read by a client: events
// built, compressed when asked, written and flushed. It reports the bytes
// on the wire (after HTTP framing is removed) per delivery. Frames here are
// not fanned out, so their data lines are built on every Write: a
// broadcast builds them once for all its sessions.
//
//	go test -run '^$' -bench Write -benchmem ./transports/sse/
func BenchmarkWrite(b *testing.B) {
	for _, per := range []int{1, 16} {
		for _, mode := range []string{"plain", "gzip", "gzip-off"} {
			b.Run(fmt.Sprintf("%s/batch=%d", mode, per), func(b *testing.B) { benchWrite(b, mode, per) })
		}
	}
}

// BenchmarkEncode measures the CPU Write spends before the socket: the
// events built and, for gzip, compressed; wire-B/msg is their size.
func BenchmarkEncode(b *testing.B) {
	for _, per := range []int{1, 16} {
		for _, mode := range []string{"plain", "gzip", "gzip-off"} {
			b.Run(fmt.Sprintf("%s/batch=%d", mode, per), func(b *testing.B) {
				frames, h := benchSetup(mode)
				c := newConn(h, "u", protocol.Cursor{}, nil)
				if mode != "plain" {
					c.gz = &gzipStream{}
				}
				var wire int
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i += per {
					k := i % (len(frames) - per)
					bt := getBatch()
					wire += len(c.encode(bt, frames[k:k+per]))
					putBatch(bt)
				}
				b.ReportMetric(float64(wire)/float64(b.N), "wire-B/msg")
			})
		}
	}
}

// benchSetup returns chat message frames and a handler compressing if mode
// is "gzip".
func benchSetup(mode string) ([]core.Frame, *Handler) {
	var frames []core.Frame
	for i, ev := range chatEvents(512) {
		data := ev[bytes.Index(ev, []byte("data: "))+6 : len(ev)-2]
		frames = append(frames, core.Frame{Type: protocol.TypeMessage, Room: "lobby", Seq: uint64(1000 + i), Data: data})
	}
	compress := mode == "gzip"
	return frames, &Handler{cfg: Config{WriteTimeout: 10 * time.Second, Compress: func(string) bool { return compress }}, retry: "2000"}
}

func benchWrite(b *testing.B, mode string, per int) {
	frames, h := benchSetup(mode)
	done := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := newConn(h, "u", protocol.Cursor{}, []string{"lobby"})
		c.start(openWire(w, r, mode != "plain", true), mode != "plain")
		b.ResetTimer()
		for i := 0; i < b.N; i += per {
			k := i % (len(frames) - per)
			if err := c.Write(frames[k : k+per]); err != nil {
				done <- err
				return
			}
		}
		b.StopTimer()
		c.Close(core.DisconnectNormal)
		done <- nil
	}))
	defer srv.Close()
	var wire atomic.Int64
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL, nil)
	req.Header.Set("Accept-Encoding", "gzip") // the body stays compressed: we count wire bytes
	resp, err := srv.Client().Do(req)
	if err != nil {
		b.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	wire.Store(n)
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(wire.Load())/float64(b.N), "wire-B/msg")
}
