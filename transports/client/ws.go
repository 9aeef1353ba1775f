package client

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/core/protocol"
)

// maxFrame bounds one server frame. The server batches queued envelopes
// into one array frame, and a session queue holds up to 4 MiB.
const maxFrame = 8 << 20

// runWS dials the WebSocket, joins the rooms from their positions and
// reads until the connection ends. It is the link's reader goroutine.
func (l *link) runWS() {
	c := l.c
	// Rooms the client has a position in (it joined them before) are
	// joined by the dial's query, rooms= and since=, each as its join
	// envelope would be: the server answers them with the greeting, in
	// one write, and reads no frame for them (see joinsInQuery). Other
	// rooms are joined by envelopes, whose refs tell their error replies
	// apart.
	c.mu.Lock()
	rooms, since := c.positions()
	c.mu.Unlock()
	var (
		asked      []string
		askedSince map[string]uint64
		q          string
	)
	if !c.noJoinQuery.Load() {
		asked, askedSince, q = joinsInQuery(rooms, since)
	}
	_, userAt := askedSince[protocol.UserRoom]
	// The token in a header: a Go client can set one, where a browser
	// cannot, and what a ticket opens lives only as long as the ticket
	// and writes nothing until the token is proved on it.
	base, h := c.wsURL()+"?"+batchQuery, bearer(l.tok)
	u := base
	if q != "" {
		u += "&" + q
	}
	conn, resp, err := c.cfg.WSDialer.DialContext(l.ctx, u, h)
	if err != nil && q != "" && queryRefused(resp) {
		// A server (or a proxy before it) that will not take the joins
		// in the query, too many rooms or too long a line: join them by
		// envelopes, on this dial and, if that works, from now on.
		resp.Body.Close()
		asked, askedSince, userAt = nil, nil, false
		if conn, resp, err = c.cfg.WSDialer.DialContext(l.ctx, base, h); err == nil {
			c.noJoinQuery.Store(true)
		}
	}
	if err != nil {
		l.end.err = dialError(resp, err)
		return
	}
	l.pmu.Lock()
	for room := range askedSince {
		l.asked[room] = true
	}
	l.pmu.Unlock()
	stop := context.AfterFunc(l.ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	conn.SetReadLimit(maxFrame)
	// The server's heartbeat is a ping control frame: it proves the link
	// alive as any frame does, and gets its pong as gorilla's default
	// handler would give it.
	conn.SetPingHandler(func(data string) error {
		l.touch()
		err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		if errors.Is(err, websocket.ErrCloseSent) || isTimeout(err) {
			return nil
		}
		return err
	})
	l.wmu.Lock()
	l.ws = conn
	l.wmu.Unlock()

	// The rooms as of now: those joined or left while the dial was on
	// its way get their own envelopes. A room the query joined that was
	// left meanwhile, or left and joined again (its position gone), gets
	// a leave, which ends what the query's join would replay and makes
	// its error reply no longer count; one joined again gets a join from
	// its new position (live, without one), as any new room does.
	rooms, since = c.subscribe(l)
	for _, room := range asked {
		if p, ok := since[room]; ok && askedSince[room] == p && slices.Contains(rooms, room) {
			continue
		}
		l.pmu.Lock()
		delete(l.asked, room)
		l.pmu.Unlock()
		if err := l.write(protocol.Envelope{Type: protocol.TypeLeave, Room: room}); err != nil {
			l.end.err = err
			return
		}
	}
	for _, room := range rooms {
		if p, ok := since[room]; ok && slices.Contains(asked, room) && askedSince[room] == p {
			continue
		}
		e := protocol.Envelope{Type: protocol.TypeJoin, Room: room, Ref: l.joinRef(room)}
		if p, ok := since[room]; ok {
			e.Since = &p
		}
		if err := l.write(e); err != nil {
			l.end.err = err
			return
		}
	}
	if c.cfg.UserEvents && !userAt {
		e := protocol.Envelope{Type: protocol.TypeJoin, Room: protocol.UserRoom, Ref: l.joinRef(protocol.UserRoom)}
		if p, ok := since[protocol.UserRoom]; ok {
			e.Since = &p
		}
		if err := l.write(e); err != nil {
			l.end.err = err
			return
		}
	}
	if len(rooms) == 0 && !c.cfg.UserEvents {
		// Nothing to join: the upgrade is all there is to wait for. The
		// user's stream, like a room, connects the link with its joined
		// reply, so that an event told after Connected is not one the
		// server published before it took the join.
		l.markUp()
	}
	rb := wsReads.Get().(*wsRead)
	defer rb.release()
	buf, scratch := &rb.buf, &rb.scratch
	opts := c.decodeOptions() // static: the Config's
	first := len(askedSince) > 0
	for {
		data, err := buf.read(conn)
		if err != nil {
			l.wsEnded(err)
			return
		}
		l.touch()
		envs, err := scratch.decode(data, opts)
		if err != nil {
			c.cfg.Logger.Debug("chat client: bad frame", "err", err)
			continue
		}
		for _, e := range envs {
			c.handle(l, e)
		}
		ignored := first && len(envs) == 1 && envs[0].Type == protocol.TypeControl
		scratch.done(envs)
		if ignored {
			// A server that joins in the query sends the greeting and
			// the joins' replies in its first frame; the greeting alone
			// comes from one that ignored the query (an older chatd):
			// join those rooms by envelopes. Should a server that did
			// join them ever answer so, the join only replays what the
			// client then drops as seen.
			if err := l.joinAsked(askedSince); err != nil {
				l.end.err = err
				return
			}
		}
		first = false
	}
}

// joinAsked joins by envelopes, from their positions, the rooms of pos
// that the dial's query asked for and no reply has answered yet.
func (l *link) joinAsked(pos map[string]uint64) error {
	l.pmu.Lock()
	var rooms []string
	for room := range l.asked {
		rooms = append(rooms, room)
		delete(l.asked, room)
	}
	l.pmu.Unlock()
	slices.Sort(rooms)
	for _, room := range rooms {
		p, ok := pos[room]
		if !ok {
			continue
		}
		if err := l.write(protocol.Envelope{Type: protocol.TypeJoin, Room: room, Since: &p, Ref: l.joinRef(room)}); err != nil {
			return err
		}
	}
	return nil
}

// Bounds on the joins a dial's query carries: a server takes up to its
// per-connection room limit (128 for chatd), and proxies refuse request
// lines past 8 KiB (nginx's default). Rooms past them are joined by
// envelopes.
const (
	maxQueryRooms = 64
	maxJoinQuery  = 4 << 10
)

// joinsInQuery chooses the rooms a WebSocket dial joins by its query:
// those with a position, in order, up to maxQueryRooms and a query of
// maxJoinQuery bytes, and the user's stream if it has a position (since
// holds one only under Config.UserEvents).
// It returns them, their positions and the query ("" for none).
func joinsInQuery(rooms []string, since map[string]uint64) ([]string, map[string]uint64, string) {
	var asked []string
	pos := map[string]uint64{}
	if p, ok := since[protocol.UserRoom]; ok {
		pos[protocol.UserRoom] = p
	}
	for _, room := range rooms {
		p, ok := since[room]
		if !ok {
			continue
		}
		if len(asked) == maxQueryRooms {
			break
		}
		pos[room] = p
		if len(joinQuery(append(asked, room), pos)) > maxJoinQuery {
			delete(pos, room)
			break
		}
		asked = append(asked, room)
	}
	if len(pos) == 0 {
		return nil, nil, ""
	}
	return asked, pos, joinQuery(asked, pos)
}

// queryRefused reports whether a refused dial's answer is one that joins
// in the query could have caused: 400, 409 (too many rooms), 414 or 431.
func queryRefused(resp *http.Response) bool {
	if resp == nil {
		return false
	}
	switch resp.StatusCode {
	case http.StatusBadRequest, http.StatusConflict, http.StatusRequestURITooLong, http.StatusRequestHeaderFieldsTooLarge:
		return true
	}
	return false
}

// wsEnded records why the read loop ended. A close frame's code wins over
// the disconnect envelope's, which is kept when no close frame came.
func (l *link) wsEnded(err error) {
	if l.end.err != nil {
		return // the link was failed on purpose; the read error is its effect
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure && ce.Code != websocket.CloseNoStatusReceived {
		l.end.code, l.end.reason = ce.Code, ce.Text
		if d := reconnectHint(ce.Text); d > 0 {
			l.end.reconnect = d
		}
		return
	}
	if l.end.code == 0 && l.end.err == nil {
		l.end.err = err
	}
}

// dialError explains a failed dial: a refused upgrade keeps the status and
// the server's error envelope, if the body holds one.
func dialError(resp *http.Response, err error) error {
	if resp == nil {
		return err
	}
	defer resp.Body.Close()
	re := &RefusedError{Status: resp.StatusCode, Err: err}
	if se := serverError(resp); se.Code != "" {
		re.Err = se
	}
	return re
}

// write sends one client envelope, with the round trip to report, if any.
// Any goroutine may call it; writes are serialized by wmu. A failed write
// ends the link.
func (l *link) write(e protocol.Envelope) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.ws == nil {
		return errLinkClosed
	}
	e = l.c.withRTT(e)
	_ = l.ws.SetWriteDeadline(time.Now().Add(l.c.cfg.ConnectTimeout))
	if err := l.ws.WriteMessage(websocket.TextMessage, protocol.Encode(e)); err != nil {
		l.cancel()
		return err
	}
	return nil
}

// pong answers a server heartbeat, on WebSocket only: SSE and poll have no
// way back but HTTP, and the server does not expect one.
func (l *link) pong() {
	if l.tier == WebSocket {
		_ = l.write(protocol.Envelope{Type: protocol.TypePong})
	}
}

// joinRef returns a fresh ref for a join of room, so that an error reply
// can be told apart from other errors.
func (l *link) joinRef(room string) string {
	ref := "join-" + strconv.FormatUint(l.refs.Add(1), 10)
	l.pmu.Lock()
	l.joins[ref] = room
	l.pmu.Unlock()
	return ref
}

// joinFailed reports whether e is the error reply to one of l's joins,
// and for which room: by its ref, or, for a join made by the dial's
// query, which has none, by the room it names.
func (l *link) joinFailed(e protocol.Envelope) (string, bool) {
	l.pmu.Lock()
	defer l.pmu.Unlock()
	if e.Ref == "" {
		if e.Room == "" || !l.asked[e.Room] {
			return "", false
		}
		delete(l.asked, e.Room)
		return e.Room, true
	}
	room, ok := l.joins[e.Ref]
	delete(l.joins, e.Ref)
	return room, ok
}

// reply hands e to the request waiting for its ref. It reports whether
// one was waiting; a joined reply is never consumed, since it is also an
// event.
func (l *link) reply(e protocol.Envelope) bool {
	if e.Ref == "" {
		if e.Type == protocol.TypeJoined {
			l.pmu.Lock()
			delete(l.asked, e.Room) // a join made by the dial's query, answered
			l.pmu.Unlock()
		}
		return false
	}
	l.pmu.Lock()
	defer l.pmu.Unlock()
	if e.Type == protocol.TypeJoined {
		delete(l.joins, e.Ref)
		return false
	}
	ch, ok := l.pending[e.Ref]
	if ok {
		delete(l.pending, e.Ref)
		ch <- e // cap 1, and each ref is answered once
	}
	return ok
}

// request sends e over the WebSocket and waits for the ack or error that
// carries ref.
func (l *link) request(ctx context.Context, e protocol.Envelope, ref string) (protocol.Envelope, error) {
	ch := make(chan protocol.Envelope, 1)
	l.pmu.Lock()
	l.pending[ref] = ch
	l.pmu.Unlock()
	defer func() {
		l.pmu.Lock()
		if l.pending[ref] == ch {
			delete(l.pending, ref)
		}
		l.pmu.Unlock()
	}()
	if err := l.write(e); err != nil {
		return protocol.Envelope{}, errors.Join(errLinkClosed, err)
	}
	select {
	case r := <-ch:
		if r.Type == protocol.TypeError {
			return r, envelopeError(r)
		}
		return r, nil
	case <-l.done:
		return protocol.Envelope{}, errLinkClosed
	case <-ctx.Done():
		return protocol.Envelope{}, ctx.Err()
	}
}

// batchQuery asks the server for batched receipt and presence envelopes,
// which the client reads (see protocol.BatchParam).
const batchQuery = protocol.BatchParam + "=1"

// wsURL is the WebSocket endpoint: the base URL with a ws or wss scheme.
func (c *Client) wsURL() string {
	u := c.base + "/v1/ws"
	switch {
	case strings.HasPrefix(u, "https://"):
		return "wss://" + strings.TrimPrefix(u, "https://")
	case strings.HasPrefix(u, "http://"):
		return "ws://" + strings.TrimPrefix(u, "http://")
	}
	return u
}

// keepFrameBuffer is the largest read buffer a link keeps between frames;
// a bigger frame (a replay) gets a buffer of its own that is let go.
const keepFrameBuffer = 16 << 10

// frameBuffer reads WebSocket messages into one reused buffer, so that a
// busy connection does not allocate and grow a buffer per frame. The
// bytes are valid until the next read; decodeFrameInto copies what it keeps.
type frameBuffer struct{ b bytes.Buffer }

func (f *frameBuffer) read(conn *websocket.Conn) ([]byte, error) {
	f.reset()
	_, r, err := conn.NextReader()
	if err != nil {
		return nil, err
	}
	if _, err := f.b.ReadFrom(r); err != nil {
		return nil, err
	}
	return f.b.Bytes(), nil
}

// reset empties the buffer, letting go of one grown past keepFrameBuffer.
func (f *frameBuffer) reset() {
	if f.b.Cap() > keepFrameBuffer {
		f.b = bytes.Buffer{}
	}
	f.b.Reset()
}

// wsRead is a WebSocket link's read buffer, and the envelope array of
// the frame being decoded. An ended link gives them to the next one
// (wsReads): in a reconnect storm of 10,000 load-tool clients, each new
// link growing a buffer of its own for its first frames (the greeting
// and the catch-up), in memory the process had just faulted in, was 7%
// of the tool's CPU.
type wsRead struct {
	buf     frameBuffer
	scratch frameScratch
}

var wsReads = sync.Pool{New: func() any { return new(wsRead) }}

// release gives r to the next link, holding no more than a link keeps
// between frames and nothing the last frame decoded points to.
func (r *wsRead) release() {
	r.reset()
	wsReads.Put(r)
}

// reset empties r for the next link. An envelope array still held (the
// link ended between a frame's decode and its done) is cleared whole and
// given back to the shared list.
func (r *wsRead) reset() {
	r.buf.reset()
	clear(r.scratch[:cap(r.scratch)])
	r.scratch.done(nil)
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}
