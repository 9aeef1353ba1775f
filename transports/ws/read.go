package ws

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// controlWait bounds the pong written in answer to a client's ping; it
// runs on the reader, which must not wait long behind the writer.
const controlWait = time.Second

// closeLinger bounds how long a closed connection waits for the client's
// close frame (or its FIN) before the socket is torn down. A slow
// consumer closed 4008 must first read the backlog still in the socket
// buffers (hundreds of KiB on a slow link) to reach the close frame, and
// any frame it sends meanwhile (the pong to a ping in that backlog) would
// reset a socket already closed, losing the backlog and the close code.
// So the wait is seconds, not one: it costs a closing connection's
// descriptor and reader for at most that long.
const closeLinger = 5 * time.Second

// reader is a connection's read side. Its fields are static after
// construction; its goroutine is the only one that reads ws, and the one
// that closes the socket, once reading is over (see conn.Close).
type reader struct {
	sess    *core.Session
	c       *conn
	ws      *websocket.Conn
	ctx     context.Context // the session's
	silence time.Duration   // three heartbeats
}

// startReader arms the silence deadline and starts the reader. Every
// frame the client sends — a message, a ping, or a pong answering the
// server's heartbeat — pushes the deadline out by three heartbeats; when
// it passes, the session is closed with 4009.
func (h *Handler) startReader(sess *core.Session, c *conn) {
	rd := &reader{sess: sess, c: c, ws: c.ws, ctx: sess.Context(), silence: 3 * h.hub.Config().Heartbeat}
	rd.extend()
	c.ws.SetPongHandler(rd.pong)
	c.ws.SetPingHandler(rd.ping)
	go rd.read()
}

// read follows the user's own stream (protocol.UserRoom), then reads
// client frames and hands them to the session until the connection fails
// or the session closes, then closes the socket. Handling
// a frame (a join that reads history, a send that waits for the disk) may
// grow this goroutine's stack; the collector shrinks it back once the
// connection is idle.
//
// After the server's close frame (conn.Close) it goes on reading, without
// handing frames to the session, until the client's close frame, its FIN
// or closeLinger: closing a socket with unread data in it makes the kernel
// send a reset, and a reset can make the client drop what it had not read
// yet, the close frame included, so that it sees 1006 instead of the code.
func (rd *reader) read() {
	// The user's own stream, live, before any client frame: a client that
	// resumes it joins "~" with since, which restarts it from there.
	_ = rd.sess.Join(rd.ctx, protocol.UserRoom, nil, true) // without it the session still serves its rooms
	for {
		_, data, err := rd.ws.ReadMessage()
		if err != nil {
			rd.sess.Close(readDisconnect(err))
			rd.finish()
			return
		}
		if rd.c.closing.Load() {
			continue
		}
		rd.extend()
		rd.sess.HandleFrame(rd.ctx, data)
	}
}

// finish closes the socket once the session's writer has sent its close
// frame (at once when the client answered it; within the writer's bounds
// when this reader saw the end first, a silent client or a dead link).
func (rd *reader) finish() {
	t := time.NewTimer(closeLinger + time.Second)
	defer t.Stop()
	select {
	case <-rd.c.closed:
	case <-t.C:
	}
	_ = rd.ws.Close()
}

// extend pushes the read deadline out by three heartbeats, unless the
// connection is closing (its deadline is then closeLinger's).
func (rd *reader) extend() {
	if rd.c.closing.Load() {
		return
	}
	_ = rd.ws.SetReadDeadline(time.Now().Add(rd.silence))
	if rd.c.closing.Load() { // Close ran meanwhile: keep its deadline
		_ = rd.ws.SetReadDeadline(time.Now().Add(closeLinger))
	}
}

// pong is the pong handler: a pong is a sign of life like any frame.
func (rd *reader) pong(string) error {
	rd.extend()
	return nil
}

// ping is the ping handler: it counts as a sign of life and is answered,
// as gorilla's default handler does.
func (rd *reader) ping(data string) error {
	rd.extend()
	err := rd.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(controlWait))
	var ne net.Error
	if errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	return err
}

// readDisconnect classifies a read error.
func readDisconnect(err error) core.Disconnect {
	var ne interface{ Timeout() bool }
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		return core.DisconnectTooLarge
	case errors.As(err, &ne) && ne.Timeout():
		return core.DisconnectHeartbeat
	default:
		return core.DisconnectNormal
	}
}
