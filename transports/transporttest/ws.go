package transporttest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/core/protocol"
)

// wsClient is a Client over WebSocket.
type wsClient struct {
	*inbox
	conn *websocket.Conn
	wmu  chan struct{} // a one-slot lock for writes
	// pings receives the arrival time of each server ping, control frame
	// or envelope, when there is room; the client has already answered it.
	pings chan time.Time
}

// DialWS connects over WebSocket and joins rooms, waiting for each joined.
func DialWS(t testing.TB, e *Env, token string, joins []Join) Client {
	t.Helper()
	c, err := DialWSRaw(e, token, nil)
	if err != nil {
		t.Fatalf("dial ws: %v", err)
	}
	t.Cleanup(c.Close)
	ctx := Ctx(t)
	for _, j := range joins {
		if got, err := c.JoinRoom(ctx, j.Room, j.Since); err != nil || got.Type != protocol.TypeJoined {
			t.Fatalf("join %s: %+v, %v", j.Room, got, err)
		}
	}
	return c
}

// WSURL returns the WebSocket URL of e with the given query.
func WSURL(e *Env, query string) string {
	u := "ws" + strings.TrimPrefix(e.URL, "http") + "/v1/ws"
	if query != "" {
		u += "?" + query
	}
	return u
}

// DialWSRaw connects without joining. A nil dialer uses the default. A
// token of the form "ticket=<ticket>" (TicketOf) goes in the URL.
func DialWSRaw(e *Env, token string, d *websocket.Dialer) (*wsClient, error) {
	h, q := http.Header{}, e.batchQuery()
	if ticket, ok := TicketOf(token); ok {
		if q != "" {
			q += "&"
		}
		q += "ticket=" + url.QueryEscape(ticket)
	} else if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return DialWSURL(WSURL(e, q), h, d)
}

// DialWSURL connects to url with header h, without joining; it is how
// tests authenticate with ?token= or ?ticket=. A nil dialer uses the
// default. The client answers every server ping with a pong, as a real
// client does.
func DialWSURL(url string, h http.Header, d *websocket.Dialer) (*wsClient, error) {
	if d == nil {
		d = websocket.DefaultDialer
	}
	conn, resp, err := d.Dial(url, h)
	if err != nil {
		if resp != nil {
			de := &DialError{Status: resp.StatusCode, Err: err}
			if resp.Body != nil {
				de.Body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			return nil, de
		}
		return nil, err
	}
	c := &wsClient{inbox: newInbox(), conn: conn, wmu: make(chan struct{}, 1), pings: make(chan time.Time, 64)}
	c.onPing = c.pong
	conn.SetPingHandler(c.controlPong)
	go c.readLoop()
	return c, nil
}

// pong answers a server ping. It runs on the reader goroutine.
func (c *wsClient) pong() {
	select {
	case c.pings <- time.Now():
	default:
	}
	_ = c.Write(protocol.Encode(protocol.Envelope{Type: protocol.TypePong}))
}

// controlPong answers a server ping control frame, the heartbeat of a
// connection that did not ask for ping envelopes, as gorilla's default
// handler does, and records it on pings. It runs on the reader goroutine.
func (c *wsClient) controlPong(data string) error {
	select {
	case c.pings <- time.Now():
	default:
	}
	err := c.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(10*time.Second))
	if errors.Is(err, websocket.ErrCloseSent) {
		return nil
	}
	return err
}

// DialError is a refused dial with its HTTP status and the start of the
// response body (gorilla keeps up to 1 KiB of it).
type DialError struct {
	Status int
	Body   []byte
	Err    error
}

func (e *DialError) Error() string { return e.Err.Error() }

func (c *wsClient) readLoop() {
	defer close(c.done)
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			code := 1006
			if ce, ok := err.(*websocket.CloseError); ok {
				code = ce.Code
			}
			c.closed <- code
			return
		}
		if err := c.deliver(data); err != nil {
			c.closed <- 0
			return
		}
	}
}

func (c *wsClient) Transport() string     { return "websocket" }
func (c *wsClient) Closed() <-chan int    { return c.closed }
func (c *wsClient) Close()                { _ = c.conn.Close() }
func (c *wsClient) Conn() *websocket.Conn { return c.conn }

// Write sends one raw text frame.
func (c *wsClient) Write(data []byte) error {
	c.wmu <- struct{}{}
	defer func() { <-c.wmu }()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.conn.WriteMessage(websocket.TextMessage, data)
}

func (c *wsClient) Do(ctx context.Context, e protocol.Envelope) (protocol.Envelope, error) {
	var reply chan protocol.Envelope
	if e.Ref != "" {
		reply = c.expect(e.Ref)
	}
	if err := c.Write(protocol.Encode(e)); err != nil {
		return protocol.Envelope{}, err
	}
	if reply == nil {
		return protocol.Envelope{}, nil
	}
	return c.wait(ctx, reply)
}

func (c *wsClient) Send(ctx context.Context, room, id, text string) (protocol.Envelope, error) {
	return c.Do(ctx, protocol.Envelope{Type: protocol.TypeSend, Room: room, ID: id, Text: text, Ref: id})
}

func (c *wsClient) Next(ctx context.Context) (protocol.Envelope, error) { return c.next(ctx) }

// JoinRoom joins room and returns its joined envelope, or the error
// envelope that refused it.
func (c *wsClient) JoinRoom(ctx context.Context, room string, since *uint64) (protocol.Envelope, error) {
	return c.Do(ctx, protocol.Envelope{Type: protocol.TypeJoin, Room: room, Since: since, Ref: "join:" + room})
}
