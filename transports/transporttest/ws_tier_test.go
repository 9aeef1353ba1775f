package transporttest

import (
	"context"
	"encoding/json"
	"fmt"
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
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/httpx"
	"github.com/chatd/chatd/transports/ws"
	"github.com/chatd/chatd/transports/wsinflate"
)

// The tests in this file cover the WebSocket tier: heartbeats as ping
// control frames (and as envelopes for clients that ask), shared prepared
// frames, coalesced batches and permessage-deflate. They use bare gorilla
// connections wherever the control frames matter.

// tierFast lets the filler send as fast as the test asks.
var tierFast = core.Config{SendRate: 1e6, SendBurst: 1e6}

// tierConn is a bare gorilla connection with a background reader that
// records envelopes and counts pings of both kinds.
type tierConn struct {
	conn     *websocket.Conn
	wmu      sync.Mutex             // serialises writes: the test's and the reader's pongs
	autoPong bool                   // the reader answers ping envelopes with pong envelopes; static
	envs     chan protocol.Envelope // every envelope but pings, in order
	pings    atomic.Int32           // control pings received
	appPings atomic.Int32           // ping envelopes received
	pinged   chan struct{}          // cap 1: a ping of either kind came
	closed   chan int               // the close code, once the reader ends
}

// dialTier opens /v1/ws?query for user. answer says whether control
// pings are answered with a pong, as every WebSocket library does by
// default while it reads; autoPong whether the reader, once started,
// answers ping envelopes.
func dialTier(t *testing.T, e *Env, user, query string, answer, autoPong bool) *tierConn {
	t.Helper()
	h := http.Header{"Authorization": {"Bearer " + e.Token(t, user, Claims{})}}
	conn, _, err := websocket.DefaultDialer.Dial(WSURL(e, query), h)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c := &tierConn{conn: conn, autoPong: autoPong, envs: make(chan protocol.Envelope, 1024),
		pinged: make(chan struct{}, 1), closed: make(chan int, 1)}
	conn.SetPingHandler(func(data string) error {
		c.pings.Add(1)
		c.signal()
		if !answer {
			return nil
		}
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(10*time.Second))
	})
	t.Cleanup(func() { conn.Close() })
	return c
}

func (c *tierConn) signal() {
	select {
	case c.pinged <- struct{}{}:
	default:
	}
}

// start runs the reader until the connection ends.
func (c *tierConn) start(t *testing.T) {
	done := make(chan struct{})
	t.Cleanup(func() { c.conn.Close(); <-done })
	go func() {
		defer close(done)
		for {
			_, data, err := c.conn.ReadMessage()
			if err != nil {
				c.closed <- closeCode(err)
				return
			}
			list, err := decodeEnvelopes(data)
			if err != nil {
				t.Errorf("reader: %v", err)
				c.closed <- 0
				return
			}
			for _, env := range list {
				if env.Type != protocol.TypePing {
					c.envs <- env
					continue
				}
				c.appPings.Add(1)
				c.signal()
				if c.autoPong {
					_ = c.write(protocol.Envelope{Type: protocol.TypePong})
				}
			}
		}
	}()
}

// decodeEnvelopes splits a server frame into envelopes, for goroutines
// other than the test's, which must not call decodeFrame's t.Fatal.
func decodeEnvelopes(data []byte) ([]protocol.Envelope, error) {
	if len(data) > 0 && data[0] == '[' {
		var list []protocol.Envelope
		return list, json.Unmarshal(data, &list)
	}
	var env protocol.Envelope
	err := json.Unmarshal(data, &env)
	return []protocol.Envelope{env}, err
}

func (c *tierConn) write(e protocol.Envelope) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.conn.WriteMessage(websocket.TextMessage, protocol.Encode(e))
}

func (c *tierConn) send(t *testing.T, e protocol.Envelope) {
	t.Helper()
	if err := c.write(e); err != nil {
		t.Fatalf("write %s: %v", e.Type, err)
	}
}

// alive proves the connection is up and served: a ping envelope with a
// ref is answered by a pong carrying it.
func (c *tierConn) alive(t *testing.T, ref string) {
	t.Helper()
	c.send(t, protocol.Envelope{Type: protocol.TypePing, Ref: ref})
	for {
		if env := c.next(t); env.Type == protocol.TypePong && env.Ref == ref {
			return
		}
	}
}

// waitPings waits until count holds n pings, failing if the connection
// ends first.
func (c *tierConn) waitPings(t *testing.T, count *atomic.Int32, n int32) {
	t.Helper()
	ctx := Ctx(t)
	for count.Load() < n {
		select {
		case <-c.pinged:
		case code := <-c.closed:
			t.Fatalf("closed with %d after %d pings, want %d", code, count.Load(), n)
		case <-ctx.Done():
			t.Fatalf("%d pings, want %d", count.Load(), n)
		}
	}
}

// next returns the next envelope that is not presence, failing if the
// connection ends first.
func (c *tierConn) next(t *testing.T) protocol.Envelope {
	t.Helper()
	ctx := Ctx(t)
	for {
		select {
		case env := <-c.envs:
			if env.Type != protocol.TypePresence {
				return env
			}
		case code := <-c.closed:
			t.Fatalf("closed with %d", code)
		case <-ctx.Done():
			t.Fatal("no envelope")
		}
	}
}

// A client that follows the contract and stays quiet — it reads, so its
// library answers the server's ping control frames, but it sends no
// frame of its own — stays open well past three heartbeats, and gets no
// ping envelopes. (The interval leaves a busy machine room to delay a
// pong.)
func TestWSTierQuietClientStaysOpen(t *testing.T) {
	e := NewEnv(t, Options{Hub: core.Config{Heartbeat: 150 * time.Millisecond}})
	c := dialTier(t, e, "alice", "", true, false)
	c.start(t)
	c.waitPings(t, &c.pings, 10) // ten intervals: three without a pong would have closed it
	if n := e.Hub.Sessions()[wsName]; n != 1 {
		t.Fatalf("%d websocket sessions, want 1", n)
	}
	c.alive(t, "still-there")
	if n := c.appPings.Load(); n != 0 {
		t.Fatalf("got %d ping envelopes; control pings only without ?heartbeat=app", n)
	}
}

// A client that does not read cannot answer the server's pings: it is
// closed with 4009 after three heartbeats. When it reads at last, it
// finds the control pings, then the close.
func TestWSTierUnreadClientClosed(t *testing.T) {
	e := NewEnv(t, Options{Hub: core.Config{Heartbeat: 50 * time.Millisecond}})
	c := dialTier(t, e, "alice", "", false, false)
	eventually(t, "the silent session to be closed", func() bool { return e.Hub.Sessions()[wsName] == 0 })
	var disconnect int
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			if code := closeCode(err); code != protocol.CloseHeartbeatTimeout {
				t.Fatalf("closed with %d (%v), want %d", code, err, protocol.CloseHeartbeatTimeout)
			}
			break
		}
		for _, env := range decodeFrame(t, data) {
			switch env.Type {
			case protocol.TypeDisconnect:
				disconnect = env.CloseCode
			case protocol.TypePing:
				t.Fatalf("got a ping envelope; control pings only without ?heartbeat=app")
			}
		}
	}
	if c.pings.Load() == 0 {
		t.Fatal("closed for silence without a control ping")
	}
	if disconnect != 0 && disconnect != protocol.CloseHeartbeatTimeout {
		t.Fatalf("disconnect envelope says %d, want %d", disconnect, protocol.CloseHeartbeatTimeout)
	}
}

// With ?heartbeat=app the heartbeat is a ping envelope, for clients that
// cannot see control frames (browsers): a client that answers each with
// a pong envelope stays open; one that reads them and never answers is
// closed with 4009. Neither gets control pings.
func TestWSTierAppHeartbeat(t *testing.T) {
	e := NewEnv(t, Options{Hub: core.Config{Heartbeat: 150 * time.Millisecond}})
	query := ws.HeartbeatParam + "=" + ws.HeartbeatApp
	answering := dialTier(t, e, "alice", query, true, true)
	answering.start(t)
	silent := dialTier(t, e, "bob", query, true, false)
	silent.start(t)

	select {
	case code := <-silent.closed:
		if code != protocol.CloseHeartbeatTimeout {
			t.Fatalf("closed with %d, want %d", code, protocol.CloseHeartbeatTimeout)
		}
	case <-Ctx(t).Done():
		t.Fatal("a client that never answers was not closed")
	}
	if silent.appPings.Load() == 0 || silent.pings.Load() != 0 {
		t.Fatalf("silent app client: %d ping envelopes, %d control pings; want envelopes only",
			silent.appPings.Load(), silent.pings.Load())
	}

	answering.waitPings(t, &answering.appPings, 10)
	answering.alive(t, "alive")
	if n := answering.pings.Load(); n != 0 {
		t.Fatalf("an app-heartbeat client got %d control pings", n)
	}
}

// deflateServer serves /v1/ws from e's hub with Compress set, on its own
// address; it returns the WebSocket URL.
func deflateServer(t *testing.T, e *Env, compress func(user string) bool) string {
	t.Helper()
	srv := httptest.NewServer(deflateHandler(e, compress))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// deflateHandler is deflateServer's handler.
func deflateHandler(e *Env, compress func(user string) bool) http.Handler {
	return ws.New(ws.Config{Hub: e.Hub, Auth: &httpx.Authenticator{Verifier: e.Verifier, Tickets: e.Tickets},
		Compress: compress, Logger: e.log})
}

// countingDialer dials connections that count the bytes they read.
func countingDialer(deflate bool, read *atomic.Int64) *websocket.Dialer {
	return &websocket.Dialer{EnableCompression: deflate,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countedReads{Conn: c, n: read}, nil
		}}
}

// tierText is a typical chat line, about 100 characters.
func tierText(i int) string {
	return fmt.Sprintf("message %d: are we still on for the standup at 10? I pushed the fix for the login bug, take a look", i)
}

// Compression is negotiated only with a client that offers it and a user
// whom Compress allows.
func TestWSTierDeflateNegotiation(t *testing.T) {
	e := NewEnv(t, Options{})
	url := deflateServer(t, e, func(user string) bool { return user != "nozip" })
	for _, tc := range []struct {
		user   string
		offers bool
		want   bool
	}{{"alice", true, true}, {"nozip", true, false}, {"alice", false, false}} {
		h := http.Header{"Authorization": {"Bearer " + e.Token(t, tc.user, Claims{})}}
		conn, resp, err := (&websocket.Dialer{EnableCompression: tc.offers}).Dial(url, h)
		if err != nil {
			t.Fatalf("dial as %s: %v", tc.user, err)
		}
		got := strings.Contains(resp.Header.Get("Sec-Websocket-Extensions"), "permessage-deflate")
		conn.Close()
		if got != tc.want {
			t.Fatalf("%s, offering deflate %v: negotiated %v, want %v", tc.user, tc.offers, got, tc.want)
		}
	}
}

// A broadcast to many WebSocket sessions, some deflating and some not,
// reaches each exactly once and in order, whether it leaves one message
// at a time (one prepared frame shared by every session) or in a burst
// (coalesced into arrays); a deflating client resumes mid-stream without
// loss or duplicates; and deflate sends fewer bytes for the same stream.
func TestWSTierBroadcastExactlyOnce(t *testing.T) {
	const room, singles, burst = "tier-broadcast", 20, 300
	e := NewEnv(t, Options{Hub: tierFast})
	url := deflateServer(t, e, func(string) bool { return true })
	var plainBytes, zipBytes atomic.Int64
	var clients []Client
	for i := range 6 {
		h := http.Header{"Authorization": {"Bearer " + e.Token(t, fmt.Sprint("u", i), Claims{})}}
		plain, zipped := &atomic.Int64{}, &atomic.Int64{}
		if i == 0 {
			plain, zipped = &plainBytes, &zipBytes
		}
		p, err := DialWSURL(WSURL(e, ""), h, countingDialer(false, plain))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		z, err := DialWSURL(url, h, countingDialer(true, zipped))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(z.Close)
		clients = append(clients, p, z)
	}
	for _, c := range clients {
		join(t, c, room, nil)
	}
	plainBytes.Store(0)
	zipBytes.Store(0)

	for i := uint64(1); i <= singles; i++ {
		hubSend(t, e, room, tierText(int(i)))
		for _, c := range clients {
			expectSeqs(t, c, room, i, i)
		}
	}
	fill(t, e, room, burst, tierText(0))
	for _, c := range clients {
		expectSeqs(t, c, room, singles+1, singles+burst)
	}
	t.Logf("wire bytes for %d messages: plain %d, deflate %d (%.2fx)", singles+burst,
		plainBytes.Load(), zipBytes.Load(), float64(plainBytes.Load())/float64(zipBytes.Load()))
	if zipBytes.Load()*10 > plainBytes.Load()*9 {
		t.Fatalf("deflate read %d bytes, plain %d: want at least 10%% fewer", zipBytes.Load(), plainBytes.Load())
	}

	// Mid-stream resume on a deflating connection: the next seq, exactly.
	last := uint64(singles + burst)
	clients[1].Close()
	fill(t, e, room, 50, tierText(1))
	h := http.Header{"Authorization": {"Bearer " + e.Token(t, "u0", Claims{})}}
	again, err := DialWSURL(url, h, &websocket.Dialer{EnableCompression: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(again.Close)
	if j := join(t, again, room, ptr(last)); !*j.Recovered {
		t.Fatalf("rejoin: %+v", j)
	}
	expectSeqs(t, again, room, last+1, last+50)
	for _, c := range append([]Client{clients[0]}, clients[2:]...) {
		expectSeqs(t, c, room, last+1, last+50)
	}
	fence(t, e, room, append([]Client{again, clients[0]}, clients[2:]...)...)
}

// A client that lets the server keep its compression context from one
// message to the next, as browsers do, gets each message deflated against
// the ones before it: every message arrives exactly once and in order
// through single messages, a burst, compression turned off and on again,
// and a resume, and the stream takes fewer bytes than on a connection
// that deflates each message on its own.
func TestWSTierTakeover(t *testing.T) {
	const room, singles, burst = "tier-takeover", 40, 200
	e := NewEnv(t, Options{Hub: tierFast})
	var on atomic.Bool
	on.Store(true)
	url := deflateServer(t, e, func(string) bool { return on.Load() })
	header := func(user string) http.Header {
		return http.Header{"Authorization": {"Bearer " + e.Token(t, user, Claims{})}}
	}
	var tk TakeoverStats
	var alone atomic.Int64
	a, err := DialWSURL(url, header("u0"), TakeoverDialer(&tk))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	b, err := DialWSURL(url, header("u1"), countingDialer(true, &alone))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if tk.Negotiated.Load() != 1 {
		t.Fatal("the server did not grant context takeover to a client that allows it")
	}
	join(t, a, room, nil)
	join(t, b, room, nil)
	tk.Read.Store(0)
	alone.Store(0)

	for i := uint64(1); i <= singles; i++ {
		hubSend(t, e, room, tierText(int(i)))
		expectSeqs(t, a, room, i, i)
		expectSeqs(t, b, room, i, i)
	}
	t.Logf("%d single messages: %d bytes with context takeover, %d deflated one by one (%.2fx)",
		singles, tk.Read.Load(), alone.Load(), float64(alone.Load())/float64(tk.Read.Load()))
	if got := tk.Inflated.Load(); got < singles {
		t.Fatalf("%d of %d messages came deflated with context takeover", got, singles)
	}
	if tk.Read.Load() >= alone.Load() {
		t.Fatalf("context takeover read %d bytes, each message alone %d", tk.Read.Load(), alone.Load())
	}

	fill(t, e, room, burst, tierText(0))
	expectSeqs(t, a, room, singles+1, singles+burst)
	expectSeqs(t, b, room, singles+1, singles+burst)

	// Compression off: plain messages, which the client's window does not
	// take; then on again, against a fresh history.
	last := uint64(singles + burst)
	on.Store(false)
	inflated := tk.Inflated.Load()
	for i := last + 1; i <= last+10; i++ {
		hubSend(t, e, room, tierText(int(i)))
		expectSeqs(t, a, room, i, i)
	}
	if got := tk.Inflated.Load(); got != inflated {
		t.Fatalf("%d messages came deflated with compression off", got-inflated)
	}
	on.Store(true)
	for i := last + 11; i <= last+20; i++ {
		hubSend(t, e, room, tierText(int(i)))
		expectSeqs(t, a, room, i, i)
	}
	if tk.Inflated.Load() == inflated {
		t.Fatal("no message came deflated once compression was back on")
	}
	last += 20
	expectSeqs(t, b, room, last-19, last)

	// A resume on a new connection starts a new context.
	a.Close()
	fill(t, e, room, 30, tierText(1))
	again, err := DialWSURL(url, header("u0"), TakeoverDialer(&tk))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(again.Close)
	if j := join(t, again, room, ptr(last)); !*j.Recovered {
		t.Fatalf("rejoin: %+v", j)
	}
	expectSeqs(t, again, room, last+1, last+30)
	expectSeqs(t, b, room, last+1, last+30)
	fence(t, e, room, again, b)
}

// Over TLS (wss) too, a takeover client inflates above the TLS layer and
// gets every message.
func TestWSTierTakeoverTLS(t *testing.T) {
	const room = "tier-takeover-tls"
	e := NewEnv(t, Options{Hub: tierFast})
	srv := httptest.NewUnstartedServer(deflateHandler(e, func(string) bool { return true }))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	var st wsinflate.Stats
	d := wsinflate.Dialer(&websocket.Dialer{HandshakeTimeout: 10 * time.Second,
		TLSClientConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig}, &st)
	h := http.Header{"Authorization": {"Bearer " + e.Token(t, "u0", Claims{})}}
	c, err := DialWSURL("wss"+strings.TrimPrefix(srv.URL, "https"), h, d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	join(t, c, room, nil)
	for i := uint64(1); i <= 5; i++ {
		hubSend(t, e, room, tierText(int(i)))
		expectSeqs(t, c, room, i, i)
	}
	if st.Negotiated.Load() != 1 || st.Inflated.Load() < 5 {
		t.Fatalf("takeover on %d connections, %d messages inflated: want 1 and at least 5", st.Negotiated.Load(), st.Inflated.Load())
	}
}
