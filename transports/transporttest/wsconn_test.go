package transporttest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/ws"
	"github.com/chatd/chatd/transports/wsinflate"
)

// The tests in this file are WebSocket-specific: they need close codes,
// raw frames, or a client that controls when it reads. They use a bare
// gorilla connection with no background reader.

// rawWS is a gorilla connection read and written only by the test
// goroutine.
type rawWS struct {
	t    testing.TB
	conn *websocket.Conn
	ctx  context.Context
}

// dialRaw opens a bare WebSocket for token. d may be nil.
func dialRaw(t testing.TB, e *Env, token string, d *websocket.Dialer) *rawWS {
	t.Helper()
	return dialRawQuery(t, e, token, "", d)
}

// dialRawQuery is dialRaw with a query on /v1/ws.
func dialRawQuery(t testing.TB, e *Env, token, query string, d *websocket.Dialer) *rawWS {
	t.Helper()
	if d == nil {
		d = websocket.DefaultDialer
	}
	h := http.Header{"Authorization": {"Bearer " + token}}
	conn, _, err := d.Dial(WSURL(e, query), h)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawWS{t: t, conn: conn, ctx: Ctx(t)}
}

func (c *rawWS) send(e protocol.Envelope) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(deadlineOf(c.ctx))
	if err := c.conn.WriteMessage(websocket.TextMessage, protocol.Encode(e)); err != nil {
		c.t.Fatalf("write %s: %v", e.Type, err)
	}
}

// read returns the envelopes of the next frame, or the error that ended
// the connection.
func (c *rawWS) read() ([]protocol.Envelope, error) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(deadlineOf(c.ctx))
	_, data, err := c.conn.ReadMessage()
	if err != nil {
		return nil, err
	}
	return decodeFrame(c.t, data), nil
}

// until reads until an envelope matches ok and returns it with the rest
// of its frame; everything before it is passed to seen, which may be nil.
func (c *rawWS) until(what string, ok func(protocol.Envelope) bool, seen func(protocol.Envelope)) (protocol.Envelope, []protocol.Envelope) {
	c.t.Helper()
	for {
		list, err := c.read()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", what, err)
		}
		for i, e := range list {
			if ok(e) {
				return e, list[i+1:]
			}
			if seen != nil {
				seen(e)
			}
		}
	}
}

// closeCode returns the WebSocket close code of a read error, or 1006 for
// a connection that ended without one.
func closeCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return websocket.CloseAbnormalClosure
}

// appHeartbeat asks for heartbeats as ping envelopes, as browsers do; by
// default they are ping control frames (see ws_tier_test.go).
const appHeartbeat = ws.HeartbeatParam + "=" + ws.HeartbeatApp

// Guarantee 7: a client that sends nothing gets pings, then is closed
// with 4009 after three silent intervals.
func TestHeartbeatTimeoutWS(t *testing.T) {
	e := NewEnv(t, Options{Hub: core.Config{Heartbeat: 100 * time.Millisecond}})
	c := dialRawQuery(t, e, e.Token(t, "alice", Claims{}), appHeartbeat, nil)
	pings, disconnect := 0, 0
	for {
		list, err := c.read()
		if err != nil {
			if code := closeCode(err); code != protocol.CloseHeartbeatTimeout {
				t.Fatalf("closed with %d (%v), want %d", code, err, protocol.CloseHeartbeatTimeout)
			}
			break
		}
		for _, env := range list {
			switch env.Type {
			case protocol.TypePing:
				pings++
			case protocol.TypeDisconnect:
				disconnect = env.CloseCode
			default:
				t.Fatalf("unexpected %+v", env)
			}
		}
	}
	if pings == 0 {
		t.Fatal("closed for silence without having been pinged")
	}
	if disconnect != 0 && disconnect != protocol.CloseHeartbeatTimeout {
		t.Fatalf("disconnect envelope says %d", disconnect)
	}
	eventually(t, "the session to be gone", func() bool { return e.Hub.Sessions()[wsName] == 0 })
}

const wsName = "websocket"

// Guarantee 7: a client that answers pings stays open well past three
// intervals. The interval is longer than in the timeout test so that a
// busy machine that delays the test's pongs (by up to three intervals,
// 1.2 s) does not fail it.
func TestHeartbeatAnsweredWS(t *testing.T) {
	e := NewEnv(t, Options{Hub: core.Config{Heartbeat: 400 * time.Millisecond}})
	c := dialRawQuery(t, e, e.Token(t, "alice", Claims{}), appHeartbeat, nil)
	for pings := 0; pings < 5; {
		list, err := c.read()
		if err != nil {
			t.Fatalf("after %d pings: %v (code %d)", pings, err, closeCode(err))
		}
		for _, env := range list {
			if env.Type != protocol.TypePing {
				t.Fatalf("unexpected %+v", env)
			}
			pings++
			c.send(protocol.Envelope{Type: protocol.TypePong})
		}
	}
	// Five intervals have passed; the session still answers.
	c.send(protocol.Envelope{Type: protocol.TypePing, Ref: "still-there"})
	c.until("pong", func(env protocol.Envelope) bool {
		return env.Type == protocol.TypePong && env.Ref == "still-there"
	}, nil)
	if n := e.Hub.Sessions()[wsName]; n != 1 {
		t.Fatalf("%d websocket sessions, want 1", n)
	}
}

// tinyReadBuffer dials TCP connections whose receive buffer is small, so
// that a client that stops reading blocks the server quickly. The buffer
// is set before connecting: shrinking it on an established connection
// (net.TCPConn.SetReadBuffer after the handshake) leaves Linux advertising
// a window that is then too small to send into (silly-window avoidance),
// and the stream crawls along on zero-window probes, which would stall the
// test for reasons that have nothing to do with the server.
var tinyReadBuffer = &websocket.Dialer{
	ReadBufferSize: 1024,
	NetDialContext: (&net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return setReadBuffer(rc, 4096)
	}}).DialContext,
}

// Guarantee 8: a client that stops reading is closed with 4008 once its
// queue overflows; it sees the close code when it reads again, and a
// resume from the last seq it got loses and doubles nothing.
func TestSlowConsumerWS(t *testing.T) { testSlowConsumerWS(t, false) }

// The same on a connection deflated with context takeover, whose writer
// frames its messages itself (text that deflate cannot shrink much, so
// that the socket's buffers still fill).
func TestSlowConsumerWSTakeover(t *testing.T) { testSlowConsumerWS(t, true) }

func testSlowConsumerWS(t *testing.T, takeover bool) {
	const room = "firehose"
	cfg := fast
	cfg.QueueFrames, cfg.QueueBytes = 8, 64<<10
	// Heartbeats on: a control ping queued behind the backlog is answered
	// with a pong while the client drains, after the server's close frame.
	// The server reads on until the client answers its close (closing a
	// socket with that pong unread would reset the connection, and the
	// client would lose its unread frames and see 1006, not 4008).
	cfg.Heartbeat = 500 * time.Millisecond
	// Degrade brings the policy, whose compression flag is on; without
	// load signals the level stays 0.
	e := NewEnv(t, Options{Hub: cfg, Degrade: takeover})
	tok := e.Token(t, "alice", Claims{})
	d, text := tinyReadBuffer, strings.Repeat("x", 4000)
	var st wsinflate.Stats
	if takeover {
		d = wsinflate.Dialer(tinyReadBuffer, &st)
		rng := rand.New(rand.NewPCG(1, 2))
		b := make([]byte, 4000)
		for i := range b {
			b[i] = byte('a' + rng.IntN(26))
		}
		text = string(b)
	}
	c := dialRaw(t, e, tok, d)
	if takeover && st.Negotiated.Load() != 1 {
		t.Fatal("context takeover not negotiated")
	}
	c.send(protocol.Envelope{Type: protocol.TypeJoin, Room: room, Since: ptr(0), Ref: "j"})
	_, rest := c.until("joined", func(env protocol.Envelope) bool { return env.Type == protocol.TypeJoined && env.Ref == "j" }, nil)
	for _, env := range rest {
		if env.Type != protocol.TypePresence {
			t.Fatalf("after joined an empty room: %+v", env)
		}
	}

	// Stop reading and publish until the server gives the session up.
	// The client still sends an unsolicited pong (a one-way heartbeat,
	// RFC 6455 5.5.3) after each round: on a busy machine the flood can
	// outlast three heartbeats, and a client silent that long is closed
	// 4009 before its queue overflows.
	sent := 0
	for e.Hub.Sessions()[wsName] > 0 {
		if sent >= 20000 {
			t.Fatalf("sent %d messages of %d bytes and the session is still open", sent, len(text))
		}
		fill(t, e, room, 32, text)
		sent += 32
		if err := c.conn.WriteControl(websocket.PongMessage, nil, deadlineOf(c.ctx)); err != nil {
			t.Fatalf("pong: %v", err)
		}
	}
	t.Logf("session closed as slow after %d messages", sent)

	// Read again: a contiguous run from seq 1, then 4008.
	var last uint64
	var disconnect int
	for {
		list, err := c.read()
		if err != nil {
			if code := closeCode(err); code != protocol.CloseSlow {
				t.Fatalf("after seq %d: connection ended with %d (%v), want %d", last, code, err, protocol.CloseSlow)
			}
			break
		}
		for _, env := range list {
			switch env.Type {
			case protocol.TypeMessage:
				if env.Seq != last+1 || env.Room != room {
					t.Fatalf("got %s/%d after %d", env.Room, env.Seq, last)
				}
				last = env.Seq
			case protocol.TypeDisconnect:
				disconnect = env.CloseCode
			case protocol.TypePresence, protocol.TypeRoom: // the join is told to the user's stream
			default:
				t.Fatalf("unexpected %+v", env)
			}
		}
	}
	if disconnect != 0 && disconnect != protocol.CloseSlow {
		t.Fatalf("disconnect envelope says %d", disconnect)
	}
	if last >= uint64(sent) {
		t.Fatalf("got all %d messages before the slow close: the test did not overflow the queue", last)
	}
	t.Logf("received %d of %d before the close", last, sent)
	if takeover {
		// The resume is the plain run's: here the new connection would
		// also get the policy's greeting, at a moment of its own.
		return
	}

	// Resume: exactly last+1..sent, then live.
	again := DialWS(t, e, tok, nil)
	if j := join(t, again, room, ptr(last)); *j.Head != uint64(sent) || !*j.Recovered {
		t.Fatalf("rejoined %+v; want head %d, recovered", j, sent)
	}
	expectSeqs(t, again, room, last+1, uint64(sent))
	fence(t, e, room, again)
}

// The WebSocket reader hands each frame to a frame worker and waits for
// it (transports/ws, workers.go), and goes on in a new goroutine should
// reading a frame grow its stack (read.go): frames pipelined on one
// connection are still handled once each and in order, the connection
// keeps exactly one reader, and the workers exit once idle.
func TestReaderHandsFramesToWorkersWS(t *testing.T) {
	e := NewEnv(t, Options{})
	c := dialRaw(t, e, e.Token(t, "alice", Claims{}), nil)
	c.send(protocol.Envelope{Type: protocol.TypeJoin, Room: "lobby", Ref: "j"})
	c.until("joined", func(env protocol.Envelope) bool { return env.Type == protocol.TypeJoined && env.Ref == "j" }, nil)
	const n = 20 // the send rate limit's burst
	for i := range n {
		id := fmt.Sprintf("m%02d", i)
		c.send(protocol.Envelope{Type: protocol.TypeSend, Room: "lobby", ID: id, Text: strings.Repeat(id, 40), Ref: id})
	}
	var seq uint64
	for i := 0; i < n; {
		list, err := c.read()
		if err != nil {
			t.Fatalf("after %d acks: %v", i, err)
		}
		for _, env := range list {
			if env.Type == protocol.TypeError {
				t.Fatalf("after %d acks: %+v", i, env)
			}
			if env.Type != protocol.TypeAck {
				continue
			}
			if want := fmt.Sprintf("m%02d", i); env.Ref != want || (seq != 0 && env.Seq != seq+1) {
				t.Fatalf("ack %d: ref %q seq %d after seq %d, want ref %q", i, env.Ref, env.Seq, seq, want)
			}
			seq = env.Seq
			i++
		}
	}
	var restarted bool
	eventually(t, "one reader goroutine and no frame worker", func() bool {
		var n, workers int
		n, restarted, workers = wsReaders()
		return n == 1 && workers == 0
	})
	t.Logf("the reader went on in a new goroutine: %v", restarted)
}

// wsReaders counts the goroutines running the WebSocket reader, reports
// whether one was started by a reader (it went on after a frame), and
// counts the frame workers.
func wsReaders() (n int, restarted bool, workers int) {
	buf := make([]byte, 1<<20)
	for {
		if m := runtime.Stack(buf, true); m < len(buf) {
			buf = buf[:m]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "\ngithub.com/chatd/chatd/transports/ws.(*reader).read(") {
			n++
			restarted = restarted || strings.Contains(g, "\ncreated by github.com/chatd/chatd/transports/ws.(*reader).read ")
		}
		if strings.Contains(g, "\ngithub.com/chatd/chatd/transports/ws.(*workers).work(") {
			workers++
		}
	}
	return n, restarted, workers
}
