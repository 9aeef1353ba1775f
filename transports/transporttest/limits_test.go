package transporttest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/httpx"
	"github.com/chatd/chatd/transports/ws"
)

// Guarantee 9: text over the limit is too_large; the limit counts
// characters, not bytes; the connection stays up.
func TestTextTooLarge(t *testing.T) { Run(t, testTextTooLarge) }

func testTextTooLarge(t *testing.T, dial Dialer) {
	const room = "limits"
	e := NewEnv(t, Options{Hub: core.Config{MaxTextLen: 10}})
	c := dial(t, e, e.Token(t, "alice", Claims{}), []Join{{Room: room}})
	got, err := c.Send(Ctx(t), room, "long", strings.Repeat("a", 11))
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, "11 characters", got, protocol.CodeTooLarge)
	alive(t, c)
	// Ten two-byte characters are ten characters.
	ok, err := c.Send(Ctx(t), room, "ten", strings.Repeat("é", 10))
	if err != nil || ok.Type != protocol.TypeAck || ok.Seq != 1 {
		t.Fatalf("10 characters: %+v, %v", ok, err)
	}
	if m := expectSeqs(t, c, room, 1, 1)[0]; m.ID != "ten" {
		t.Fatalf("got %+v; the rejected message must not be stored", m)
	}
}

// Guarantee 9: a frame over 64 KiB closes the WebSocket with 1009; one
// just under is served. WebSocket-specific (close code, raw frame).
func TestFrameTooLargeWS(t *testing.T) {
	e := NewEnv(t, Options{})
	c, err := DialWSRaw(e, e.Token(t, "alice", Claims{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	under := fmt.Sprintf(`{"type":"ping","ref":"under","pad":%q}`, strings.Repeat("x", 60<<10))
	reply := c.expect("under")
	if err := c.Write([]byte(under)); err != nil {
		t.Fatal(err)
	}
	if got, err := c.wait(Ctx(t), reply); err != nil || got.Type != protocol.TypePong {
		t.Fatalf("a %d-byte frame: %+v, %v", len(under), got, err)
	}
	over := fmt.Sprintf(`{"type":"ping","pad":%q}`, strings.Repeat("x", 65<<10))
	if err := c.Write([]byte(over)); err != nil {
		t.Fatal(err)
	}
	closedWith(t, c, protocol.CloseTooLarge, "a frame over 64 KiB")
}

// Guarantee 9, compressed: the 64 KiB limit counts a message as it
// inflates, not its bytes on the wire. A frame deflated (permessage-
// deflate) to a few KiB that inflates past 64 KiB closes with 1009, and
// the server reads no more of it than the limit: one such frame of 63
// KB inflated to 62 MiB and took gigabytes.
func TestInflatedFrameTooLargeWS(t *testing.T) {
	e := NewEnv(t, Options{})
	url := deflateServer(t, e, func(string) bool { return true })
	h := http.Header{"Authorization": {"Bearer " + e.Token(t, "alice", Claims{})}}
	c, err := DialWSURL(url, h, &websocket.Dialer{EnableCompression: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	over := fmt.Sprintf(`{"type":"ping","pad":%q}`, strings.Repeat("x", 256<<10))
	if err := c.Write([]byte(over)); err != nil {
		t.Fatal(err)
	}
	closedWith(t, c, protocol.CloseTooLarge, "a frame that inflates past 64 KiB")
}

// Guarantee 9: a POST /v1/send body over 64 KiB is 413 too_large.
func TestSendBodyTooLarge(t *testing.T) {
	e := NewEnv(t, Options{})
	tok := e.Token(t, "alice", Claims{})
	body := fmt.Sprintf(`{"room":"general","id":"big","text":%q}`, strings.Repeat("x", 65<<10))
	status, data := httpDo(t, e, http.MethodPost, "/v1/send", tok, body)
	httpError(t, "big body", status, data, http.StatusRequestEntityTooLarge, protocol.CodeTooLarge)
	// An ordinary send still works, and the big one was not stored.
	status, data = httpDo(t, e, http.MethodPost, "/v1/send", tok, map[string]string{"room": "general", "id": "small", "text": "hi"})
	var ack protocol.Envelope
	decodeJSON(t, data, &ack)
	if status != http.StatusOK || ack.Type != protocol.TypeAck || ack.Seq != 1 || ack.ID != "small" {
		t.Fatalf("small send: %d %s", status, data)
	}
}

// A POST /v1/send body that is not UTF-8, or that has more than white
// space after its object, is bad_request, as a WebSocket frame of either
// is: decoded as it was, the bytes were stored as U+FFFD and the rest
// ignored. Nothing is stored.
func TestSendBodyNotJSONText(t *testing.T) {
	e := NewEnv(t, Options{})
	tok := e.Token(t, "alice", Claims{})
	for _, body := range []string{
		"{\"room\":\"general\",\"id\":\"u\",\"text\":\"bad \xff\xfe byte\"}",
		`{"room":"general","id":"t","text":"one"}{"room":"general","id":"t2","text":"two"}`,
		`{"room":"general","id":"g","text":"one"} garbage`,
	} {
		status, data := httpDo(t, e, http.MethodPost, "/v1/send", tok, body)
		httpError(t, fmt.Sprintf("body %q", body), status, data, http.StatusBadRequest, protocol.CodeBadRequest)
	}
	status, data := httpDo(t, e, http.MethodPost, "/v1/send", tok, "{\"room\":\"general\",\"id\":\"ok\",\"text\":\"hi\"}\r\n")
	var ack protocol.Envelope
	decodeJSON(t, data, &ack)
	if status != http.StatusOK || ack.Seq != 1 {
		t.Fatalf("a good send after them: %d %s; want seq 1, nothing stored before", status, data)
	}
}

// Guarantee 9: the burst is allowed, the next send is rate_limited, over
// the socket and over HTTP alike, and the connection stays up.
func TestSendRateLimited(t *testing.T) { Run(t, testSendRateLimited) }

func testSendRateLimited(t *testing.T, dial Dialer) {
	const room = "rate"
	// A slow refill, so that the burst cannot be refilled while the test
	// runs however slow the machine: no timing is assumed.
	e := NewEnv(t, Options{Hub: core.Config{SendRate: 0.01, SendBurst: 3}})
	tok := e.Token(t, "alice", Claims{})
	c := dial(t, e, tok, []Join{{Room: room}})
	for i := 1; i <= 3; i++ {
		if ack, err := c.Send(Ctx(t), room, fmt.Sprint("b", i), "x"); err != nil || ack.Type != protocol.TypeAck {
			t.Fatalf("send %d of the burst: %+v, %v", i, ack, err)
		}
	}
	got, err := c.Send(Ctx(t), room, "b4", "x")
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, "4th send", got, protocol.CodeRateLimited)
	alive(t, c)
	status, data := httpDo(t, e, http.MethodPost, "/v1/send", tok, map[string]string{"room": room, "id": "b5", "text": "x"})
	httpError(t, "send over HTTP past the burst", status, data, http.StatusTooManyRequests, protocol.CodeRateLimited)
	// The limit is per user: bob is not limited by alice's sends.
	bob := dial(t, e, e.Token(t, "bob", Claims{}), nil)
	if ack, err := bob.Send(Ctx(t), room, "bob-1", "x"); err != nil || ack.Type != protocol.TypeAck || ack.Seq != 4 {
		t.Fatalf("bob: %+v, %v", ack, err)
	}
	expectSeqs(t, c, room, 1, 4)
}

// Guarantee 9: the connection after the per-user limit is refused with
// 429 too_many_connections; closing one makes room. WebSocket-specific:
// the refusal is the upgrade's HTTP answer.
func TestConnectionsPerUserWS(t *testing.T) {
	e := NewEnv(t, Options{Hub: core.Config{MaxConnsPerUser: 2}})
	tok := e.Token(t, "alice", Claims{})
	first := DialWS(t, e, tok, nil)
	second := DialWS(t, e, tok, nil)
	_, err := DialWSRaw(e, tok, nil)
	var de *DialError
	if !errors.As(err, &de) {
		t.Fatalf("3rd connection: err %v, want a refused dial", err)
	}
	var env protocol.Envelope
	if jerr := json.Unmarshal(de.Body, &env); jerr != nil || de.Status != http.StatusTooManyRequests ||
		env.Type != protocol.TypeError || env.Code != string(protocol.CodeTooManyConnections) {
		t.Fatalf("3rd connection: %d %q; want 429 with too_many_connections", de.Status, de.Body)
	}
	alive(t, first)
	alive(t, second)
	// Another user is not affected.
	DialWS(t, e, e.Token(t, "bob", Claims{}), nil)
	// Closing one of alice's connections makes room for another.
	first.Close()
	eventually(t, "alice's closed session to be gone", func() bool { return e.Hub.Sessions()[wsName] == 2 })
	third := DialWS(t, e, tok, nil)
	alive(t, third)
}

// Guarantee 9: the join after the per-connection room limit is
// too_many_rooms; rejoining and leaving keep the count right; the
// connection stays up.
func TestRoomsPerConnection(t *testing.T) { Run(t, testRoomsPerConnection) }

func testRoomsPerConnection(t *testing.T, dial Dialer) {
	e := NewEnv(t, Options{Hub: core.Config{MaxRoomsPerSession: 2}})
	c := dial(t, e, e.Token(t, "alice", Claims{}), nil)
	join(t, c, "a", nil)
	join(t, c, "b", nil)
	got := reply(t, c, protocol.Envelope{Type: protocol.TypeJoin, Room: "c", Ref: "join-c"})
	wantError(t, "3rd room", got, protocol.CodeTooManyRooms)
	alive(t, c)
	join(t, c, "a", nil) // a rejoin is not a third room
	if got := reply(t, c, protocol.Envelope{Type: protocol.TypeLeave, Room: "b", Ref: "leave-b"}); got.Type != protocol.TypeAck {
		t.Fatalf("leave: %+v", got)
	}
	join(t, c, "c", nil)
	// The refused join subscribed to nothing: c's messages arrive once, b's not at all.
	hubSend(t, e, "b", "not for alice")
	fence(t, e, "c", c)
}

// Guarantee 10: a frame that is not UTF-8 is bad_request and the
// connection stays up. WebSocket-specific (raw bytes).
func TestInvalidUTF8WS(t *testing.T) {
	e := NewEnv(t, Options{})
	c, err := DialWSRaw(e, e.Token(t, "alice", Claims{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	for _, frame := range []string{
		"{\"type\":\"ping\",\"x\":\"\xff\"}",
		"{\"type\":\"send\",\"room\":\"g\",\"id\":\"u\",\"text\":\"caf\xc3\"}",
	} {
		if err := c.Write([]byte(frame)); err != nil {
			t.Fatal(err)
		}
		wantError(t, fmt.Sprintf("frame %q", frame), nextOf(t, c, protocol.TypeError), protocol.CodeBadRequest)
		alive(t, c)
	}
	if h := history(t, e, e.Token(t, "alice", Claims{}), "g"); h.Head != 0 {
		t.Fatalf("an invalid frame was stored: %+v", h)
	}
}

// Guarantee 10: control characters are stripped from text; newline and
// tab are kept.
func TestControlCharsStripped(t *testing.T) { Run(t, testControlCharsStripped) }

func testControlCharsStripped(t *testing.T, dial Dialer) {
	const room = "clean"
	e := NewEnv(t, Options{})
	tok := e.Token(t, "alice", Claims{})
	c := dial(t, e, tok, []Join{{Room: room}})
	if ack, err := c.Send(Ctx(t), room, "ctl", "he\x00l\x07l\x1bo\u0085\r!\tand\nmore\x7f"); err != nil || ack.Type != protocol.TypeAck {
		t.Fatalf("send: %+v, %v", ack, err)
	}
	const want = "hello!\tand\nmore"
	if m := expectSeqs(t, c, room, 1, 1)[0]; m.Text != want {
		t.Fatalf("delivered text %q, want %q", m.Text, want)
	}
	if h := history(t, e, tok, room); len(h.Messages) != 1 || h.Messages[0].Text != want {
		t.Fatalf("stored %+v, want text %q", h.Messages, want)
	}
	// Text that is only control characters is empty: bad_request.
	got, err := c.Send(Ctx(t), room, "empty", "\x00\x01\x02")
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, "all-control text", got, protocol.CodeBadRequest)
}

// A frame that is not JSON, or not an object, is bad_request and the
// connection stays up. WebSocket-specific (raw bytes).
func TestMalformedJSONWS(t *testing.T) {
	e := NewEnv(t, Options{})
	c, err := DialWSRaw(e, e.Token(t, "alice", Claims{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	for _, frame := range []string{`{"type":"send",`, `[1,2]`, `"ping"`, `nonsense`, `{"type":7}`} {
		if err := c.Write([]byte(frame)); err != nil {
			t.Fatal(err)
		}
		wantError(t, fmt.Sprintf("frame %s", frame), nextOf(t, c, protocol.TypeError), protocol.CodeBadRequest)
		alive(t, c)
	}
}

// An unknown envelope type is bad_request, answering its ref, and the
// connection stays up.
// WebSocket-specific: only a WebSocket client can send an arbitrary envelope type.
func TestUnknownTypeWS(t *testing.T) { testUnknownType(t, DialWS) }

func testUnknownType(t *testing.T, dial Dialer) {
	e := NewEnv(t, Options{})
	c := dial(t, e, e.Token(t, "alice", Claims{}), nil)
	for _, typ := range []string{"shout", "message", "ack"} { // server-only types are not client frames either
		got := reply(t, c, protocol.Envelope{Type: typ, Room: "general", Ref: "t-" + typ})
		wantError(t, "type "+typ, got, protocol.CodeBadRequest)
	}
	alive(t, c)
}

// A WebSocket connection that sends more than its burst waits for its
// read rate: every frame is still served, in order, and nothing closes,
// but the reader takes the frames past the burst no faster than the rate
// allows (chat_ws_reads_throttled_total). A client sending the largest
// frames it may as fast as it can took a core of the node.
// WebSocket-specific (client frames).
func TestReadRateWS(t *testing.T) {
	e := NewEnv(t, Options{})
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(ws.New(ws.Config{Hub: e.Hub, Auth: &httpx.Authenticator{Verifier: e.Verifier, Tickets: e.Tickets},
		ReadRate: 256 << 10, ReadBurst: 128 << 10, Metrics: reg, Logger: e.log}))
	t.Cleanup(srv.Close)
	h := http.Header{"Authorization": {"Bearer " + e.Token(t, "alice", Claims{})}}
	c, err := DialWSURL("ws"+strings.TrimPrefix(srv.URL, "http"), h, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	// 8 frames of 40 KiB: 320 KiB, past the 128 KiB burst.
	var replies []chan protocol.Envelope
	for i := range 8 {
		ref := fmt.Sprint("r", i)
		replies = append(replies, c.expect(ref))
		if err := c.Write([]byte(fmt.Sprintf(`{"type":"ping","ref":%q,"pad":%q}`, ref, strings.Repeat("x", 40<<10)))); err != nil {
			t.Fatal(err)
		}
	}
	for i, reply := range replies {
		if got, err := c.wait(Ctx(t), reply); err != nil || got.Type != protocol.TypePong {
			t.Fatalf("frame %d: %+v, %v", i, got, err)
		}
	}
	alive(t, c)
	if throttledWS(t, reg) == 0 {
		t.Fatal("no frame waited for the read rate")
	}
	// Pings count too, each more than a frame (the node answers each with
	// a pong): 40 of them are more than a new connection's burst.
	cp, err := DialWSURL("ws"+strings.TrimPrefix(srv.URL, "http"), h, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Close)
	alive(t, cp)
	before := throttledWS(t, reg)
	for i := range 40 {
		if err := cp.conn.WriteControl(websocket.PingMessage, []byte(fmt.Sprint(i)), time.Now().Add(10*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	alive(t, cp)
	if throttledWS(t, reg) == before {
		t.Fatal("no ping waited for the read rate")
	}

	// Frames count as they arrive, within a message too: a ping split
	// over 600 empty continuation frames is more than a new connection's
	// burst. (gorilla reads a message's frames inside one Read: a message
	// of empty frames that never ended took a core, uncounted.)
	c2, err := DialWSURL("ws"+strings.TrimPrefix(srv.URL, "http"), h, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c2.Close)
	alive(t, c2)
	before = throttledWS(t, reg)
	masked := func(b0 byte, payload string) []byte { // masked with a zero key
		return append([]byte{b0, 0x80 | byte(len(payload)), 0, 0, 0, 0}, payload...)
	}
	split := masked(0x01, `{"type":"ping","ref":"split"`) // text, not final
	for range 600 {
		split = append(split, masked(0x00, "")...) // continuation, not final
	}
	split = append(split, masked(0x80, "}")...) // continuation, final
	reply := c2.expect("split")
	if _, err := c2.conn.NetConn().Write(split); err != nil {
		t.Fatal(err)
	}
	if got, err := c2.wait(Ctx(t), reply); err != nil || got.Type != protocol.TypePong {
		t.Fatalf("the split ping: %+v, %v", got, err)
	}
	if throttledWS(t, reg) == before {
		t.Fatal("a message's empty frames did not count against the read rate")
	}
}

// A send or an edit under an id another user's message has in the room
// is conflict, over every transport and HTTP: ids are kept per room, and
// the second sender used to get the first one's ack, its own text
// dropped. A retry of one's own id still gets its first ack.
func TestSendIDOfAnotherSender(t *testing.T) { Run(t, testSendIDOfAnotherSender) }

func testSendIDOfAnotherSender(t *testing.T, dial Dialer) {
	const room = "ids"
	e := NewEnv(t, Options{})
	mallory := e.Token(t, "mallory", Claims{})
	status, data := httpDo(t, e, http.MethodPost, "/v1/send", mallory, map[string]string{"room": room, "id": "msg-1", "text": "first"})
	if status != http.StatusOK {
		t.Fatalf("mallory's send: %d %s", status, data)
	}
	c := dial(t, e, e.Token(t, "alice", Claims{}), []Join{{Room: room}})
	got, err := c.Send(Ctx(t), room, "msg-1", "mine")
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, "a send under mallory's id", got, protocol.CodeConflict)
	status, data = httpDo(t, e, http.MethodPost, "/v1/send", e.Token(t, "alice", Claims{}), map[string]string{"room": room, "id": "msg-1", "text": "mine"})
	httpError(t, "a send over HTTP under mallory's id", status, data, http.StatusConflict, protocol.CodeConflict)
	if ack, err := c.Send(Ctx(t), room, "msg-2", "mine"); err != nil || ack.Type != protocol.TypeAck || ack.Seq != 2 {
		t.Fatalf("a send under a new id: %+v, %v; want seq 2", ack, err)
	}
	if ack, err := c.Send(Ctx(t), room, "msg-2", "mine"); err != nil || ack.Type != protocol.TypeAck || ack.Seq != 2 {
		t.Fatalf("a retry of alice's own id: %+v, %v; want seq 2 again", ack, err)
	}
	if m := expectSeqs(t, c, room, 2, 2)[0]; m.From != "alice" || m.Text != "mine" {
		t.Fatalf("the message delivered: %+v, want alice's", m)
	}
}

// The same rate holds for the rooms a stream joins as it opens, over
// every transport: a client that opens with 60 rooms (join frames on a
// socket, rooms= on an event stream or a poll, with the token) has at
// most the rate's burst and a few of them listed, and is served in every
// one of them, listed or not: past the rate a join is served without
// being listed.
func TestRoomListRateStreams(t *testing.T) { Run(t, testRoomListRateStreams) }

func testRoomListRateStreams(t *testing.T, dial Dialer) {
	e := NewEnv(t, Options{Hub: fast})
	tok := e.Token(t, "alice", Claims{})
	joins := make([]Join, 60)
	for i := range joins {
		joins[i] = Join{Room: fmt.Sprint("open-", i)}
	}
	c := dial(t, e, tok, joins)
	if n := len(roomsOf(t, e, tok)); n == 0 || n > 40 {
		t.Fatalf("%s: %d rooms listed after opening with 60, want the rate's burst and a few", c.Transport(), n)
	}
	for _, room := range []string{"open-0", "open-59"} {
		m := hubSend(t, e, room, "in "+room)
		for {
			got, err := c.Next(Ctx(t))
			if err != nil {
				t.Fatalf("%s: waiting for %s's message: %v", c.Transport(), room, err)
			}
			if got.Type == protocol.TypeMessage {
				if got.Room != room || got.Seq != m.Seq {
					t.Fatalf("%s: got %+v, want %s's message %d", c.Transport(), got, room, m.Seq)
				}
				break
			}
		}
	}
}

// throttledWS reads chat_ws_reads_throttled_total from reg.
func throttledWS(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	gathered, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	mfs := map[string]*dto.MetricFamily{}
	for _, mf := range gathered {
		mfs[mf.GetName()] = mf
	}
	return series(mfs, "chat_ws_reads_throttled_total")
}

// A user's room list changes at most 5 times a second, bursts of 20, on
// a socket too: join and leave frames made 500 listings a second. A join
// past the rate is served without being listed; a leave past it is
// rate_limited and changes nothing: the socket stays subscribed.
// WebSocket-specific (join and leave frames).
func TestRoomListRateWS(t *testing.T) {
	e := NewEnv(t, Options{Hub: fast})
	tok := e.Token(t, "alice", Claims{})
	c := DialWS(t, e, tok, nil)
	for i := range 60 {
		join(t, c, fmt.Sprint("many-", i), nil)
	}
	if n := len(roomsOf(t, e, tok)); n == 0 || n > 40 {
		t.Fatalf("%d rooms listed after 60 joins in a row, want the rate's burst and a few", n)
	}
	got := reply(t, c, protocol.Envelope{Type: protocol.TypeLeave, Room: "many-0", Ref: "l"})
	wantError(t, "a leave past the rate", got, protocol.CodeRateLimited)
	m := hubSend(t, e, "many-0", "still here")
	if got := nextOf(t, c, protocol.TypeMessage); got.Room != "many-0" || got.Seq != m.Seq {
		t.Fatalf("after the refused leave: %+v, want many-0's message", got)
	}
}
