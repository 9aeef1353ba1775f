package ws_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/transporttest"
	"github.com/chatd/chatd/transports/ws"
)

// The tests and benchmarks of this package drive the transport's Write
// directly, on real WebSocket connections over loopback, and read what
// reaches the client byte by byte: one Write must be one message on the
// wire, compressed or not as asked.

// link is one server connection wrapped as the transport, and the raw
// client end of it.
type link struct {
	conn   core.Transport
	client net.Conn
	frames *wireReader
	server *countingConn // counts what the server writes
}

// linkOptions choose how a link is negotiated.
type linkOptions struct {
	deflate  bool                   // both ends offer permessage-deflate
	appPings bool                   // the transport sends ping envelopes
	compress func(user string) bool // the transport's Compress; nil: off
	takeover bool                   // with deflate: the client offers as a browser does, allowing context takeover
}

// newLinks opens n links to one loopback server.
func newLinks(tb testing.TB, n int, o linkOptions) []*link {
	tb.Helper()
	up, deflating := ws.Upgraders()
	if o.deflate || o.takeover {
		up = deflating
	}
	type upgraded struct {
		ws   *websocket.Conn
		conn core.Transport
	}
	conns := make(chan upgraded, n)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.takeover {
			tr, c, ok, err := ws.Upgrade(up, w, r, "u", o.compress)
			if err != nil {
				return
			}
			if !ok {
				tb.Errorf("context takeover not negotiated")
			}
			go func() { // answers the client's pings, as the transport's reader does
				for {
					if _, _, err := c.NextReader(); err != nil {
						return
					}
				}
			}()
			conns <- upgraded{c, tr}
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		conns <- upgraded{c, ws.NewConn(c, "u", o.appPings, o.compress)}
	}))
	cl := &countingListener{Listener: srv.Listener}
	srv.Listener = cl
	srv.Start()
	tb.Cleanup(srv.Close)
	d := websocket.Dialer{EnableCompression: o.deflate}
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	out := make([]*link, n)
	for i := range out {
		var client net.Conn
		if o.takeover {
			client = dialTakeover(tb, srv.Listener.Addr().String())
		} else {
			c, _, err := d.Dial(url, nil)
			if err != nil {
				tb.Fatalf("dial: %v", err)
			}
			client = c.UnderlyingConn()
		}
		sc := <-conns
		tb.Cleanup(func() { client.Close(); sc.ws.Close() })
		l := &link{conn: sc.conn, client: client,
			frames: &wireReader{c: client, br: bufio.NewReader(client), takeover: o.takeover},
			server: cl.conn(sc.ws.UnderlyingConn())}
		if o.takeover {
			l.server = cl.conn(sc.ws.UnderlyingConn().(interface{ Unwrap() net.Conn }).Unwrap())
		}
		l.server.n.Store(0) // the handshake
		out[i] = l
	}
	return out
}

// dialTakeover opens a WebSocket connection to addr that offers
// permessage-deflate as browsers do, without server_no_context_takeover,
// which gorilla's client always asks for, and checks that the server
// grants context takeover.
func dialTakeover(tb testing.TB, addr string) net.Conn {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		tb.Fatal(err)
	}
	// Read the answer byte by byte, so that no frame is left in a buffer.
	var head []byte
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil {
			tb.Fatalf("handshake: %v", err)
		}
		head = append(head, b[0])
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), nil)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		tb.Fatalf("handshake: %s", resp.Status)
	}
	if got := resp.Header.Get("Sec-Websocket-Extensions"); got != "permessage-deflate; client_no_context_takeover" {
		tb.Fatalf("negotiated %q, want context takeover", got)
	}
	_ = c.SetDeadline(time.Time{})
	return c
}

// countingListener wraps accepted connections to count what the server
// writes on each.
type countingListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[net.Conn]*countingConn
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &countingConn{Conn: c}
	l.mu.Lock()
	if l.conns == nil {
		l.conns = make(map[net.Conn]*countingConn)
	}
	l.conns[cc] = cc
	l.mu.Unlock()
	return cc, nil
}

// conn returns the counting wrapper of server connection c, which may
// be under c's own wrappers (httpx.SlotConn).
func (l *countingListener) conn(c net.Conn) *countingConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	for range 4 {
		if cc, ok := l.conns[c]; ok {
			return cc
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	return nil
}

type countingConn struct {
	net.Conn
	n      atomic.Int64 // bytes written
	writes atomic.Int64 // Write calls
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	c.writes.Add(1)
	return n, err
}

// wireFrame is one WebSocket frame as it came off the wire.
type wireFrame struct {
	op      int // websocket.TextMessage, websocket.PingMessage…
	rsv1    bool
	fin     bool
	payload []byte // as sent: still deflated when rsv1 is set
	plain   []byte // a takeover link's deflated message, inflated
}

// text returns the frame's payload, inflated if it was deflated.
func (f wireFrame) text(tb testing.TB) string {
	tb.Helper()
	if !f.rsv1 {
		return string(f.payload)
	}
	if f.plain != nil {
		return string(f.plain)
	}
	tail := []byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}
	r := flate.NewReader(io.MultiReader(bytes.NewReader(f.payload), bytes.NewReader(tail)))
	defer r.Close()
	out, err := io.ReadAll(r)
	if err != nil {
		tb.Fatalf("inflate: %v", err)
	}
	return string(out)
}

// wireReader parses server frames from the client's socket. The gorilla
// client above it is used for the handshake only.
type wireReader struct {
	c        net.Conn
	br       *bufio.Reader
	takeover bool   // inflate deflated messages against the ones before
	window   []byte // what they carried, the last 32 KiB
}

// next returns the next frame; it fails the test after 10 s.
func (r *wireReader) next(tb testing.TB) wireFrame {
	tb.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		tb.Fatalf("frame header: %v", err)
	}
	f := wireFrame{op: int(h[0] & 0x0f), rsv1: h[0]&0x40 != 0, fin: h[0]&0x80 != 0}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		_, _ = io.ReadFull(r.br, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		_, _ = io.ReadFull(r.br, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(r.br, f.payload); err != nil {
		tb.Fatalf("frame payload: %v", err)
	}
	if r.takeover && f.rsv1 {
		if !f.fin {
			tb.Fatal("a fragmented message deflated with context takeover")
		}
		tail := []byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}
		in := flate.NewReaderDict(io.MultiReader(bytes.NewReader(f.payload), bytes.NewReader(tail)), r.window)
		plain, err := io.ReadAll(in)
		if err != nil {
			tb.Fatalf("inflate with the window: %v", err)
		}
		f.plain = plain
		r.window = append(r.window, plain...)
		if len(r.window) > 32<<10 {
			r.window = append(r.window[:0], r.window[len(r.window)-32<<10:]...)
		}
	}
	return f
}

// message returns the next data message, its fragments joined; rsv1 is
// the first fragment's.
func (r *wireReader) message(tb testing.TB) wireFrame {
	tb.Helper()
	m := r.next(tb)
	for !m.fin {
		f := r.next(tb)
		if f.op != 0 {
			tb.Fatalf("got op %d inside a fragmented message", f.op)
		}
		m.payload = append(m.payload, f.payload...)
		m.fin = f.fin
	}
	return m
}

// drain reads and discards until the connection closes, for benchmarks.
func (r *wireReader) drain() {
	_ = r.c.SetReadDeadline(time.Time{})
	_, _ = io.Copy(io.Discard, r.br)
}

// capture is a core.Transport that hands every frame to a channel, so
// that tests get fanned-out frames that carry their shared cache.
type capture struct{ frames chan core.Frame }

func (c *capture) Name() string { return "capture" }
func (c *capture) Write(fs []core.Frame) error {
	for _, f := range fs {
		c.frames <- f
	}
	return nil
}
func (c *capture) Close(core.Disconnect) {}

// texts are typical chat lines, about 100 characters each.
var texts = []string{
	"hey, are we still on for the standup at 10? I pushed the fix for the login bug, can you take a look",
	"yes! just reviewed it, looks good to me. one nit about the error message but not a blocker at all",
	"does anyone know why the staging deploy is failing again? the logs say something about a missing env",
	"I think Sam rotated the keys yesterday afternoon, so the old secret is gone. let me check the vault",
	"lunch at the usual place? they have the new menu now and I heard the soup of the day is really good",
	"sorry I'm running about ten minutes late, the train is stuck outside the station. start without me",
	"can you send me the slides from yesterday's meeting? I want to reuse the chart about weekly signups",
	"heads up: the office wifi will be down between 6 and 7 tonight for maintenance, use the guest network",
}

// sharedFrames returns n message frames of room as a real hub fans them
// out: each carries the shared cache that core.Frame.Shared uses. The
// messages are handed to the hub directly, as the engine does after a
// commit, so that making many costs no disk.
func sharedFrames(tb testing.TB, n int) []core.Frame {
	tb.Helper()
	e := transporttest.NewEnv(tb, transporttest.Options{})
	capt := &capture{frames: make(chan core.Frame, n+16)}
	sess, err := e.Hub.Connect(auth.Identity{User: "capture", Name: "capture"}, capt, core.SessionOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { sess.Close(core.DisconnectNormal); <-sess.Done() }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const room = "bench"
	sess.HandleFrame(ctx, []byte(`{"type":"join","room":"`+room+`"}`))
	wait := func(typ string) core.Frame {
		for {
			select {
			case f := <-capt.frames:
				if f.Type == typ {
					return f
				}
			case <-ctx.Done():
				tb.Fatalf("no %s frame", typ)
			}
		}
	}
	wait(protocol.TypeJoined)
	out := make([]core.Frame, 0, n)
	for i := 1; i <= n; i++ {
		e.Hub.Publish([]protocol.Message{{Room: room, Seq: uint64(i), ID: fmt.Sprintf("c-%016x", i*7919),
			From: "alice", Name: "Alice Smith", Text: texts[i%len(texts)], TS: 1764689000000 + int64(i)*1500}})
		out = append(out, wait(protocol.TypeMessage))
	}
	return out
}

// plainFrame is a frame that nothing shares, as a reply or a replayed
// message is.
func plainFrame(e protocol.Envelope) core.Frame {
	return core.Frame{Type: e.Type, Room: e.Room, Seq: e.Seq, Data: protocol.Encode(e)}
}

var pingFrame = plainFrame(protocol.Envelope{Type: protocol.TypePing})
