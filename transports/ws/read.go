package ws

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/core"
)

// controlWait bounds the pong written in answer to a client's ping; it
// runs on the reader, which must not wait long behind the writer.
const controlWait = time.Second

// reader is a connection's read side. Its fields are static after
// construction; its goroutine is the only one that reads ws.
type reader struct {
	sess    *core.Session
	ws      *websocket.Conn
	ctx     context.Context // the session's
	silence time.Duration   // three heartbeats
}

// startReader arms the silence deadline and starts the reader. Every
// frame the client sends — a message, a ping, or a pong answering the
// server's heartbeat — pushes the deadline out by three heartbeats; when
// it passes, the session is closed with 4009.
func (h *Handler) startReader(sess *core.Session, ws *websocket.Conn) {
	rd := &reader{sess: sess, ws: ws, ctx: sess.Context(), silence: 3 * h.hub.Config().Heartbeat}
	rd.extend()
	ws.SetPongHandler(rd.pong)
	ws.SetPingHandler(rd.ping)
	go rd.read()
}

// read reads client frames and hands them to the session until the
// connection fails or the session closes. Handling a frame (a join that
// reads history, a send that waits for the disk) may grow this goroutine's
// stack; the collector shrinks it back once the connection is idle.
func (rd *reader) read() {
	for {
		_, data, err := rd.ws.ReadMessage()
		if err != nil {
			rd.sess.Close(readDisconnect(err))
			return
		}
		rd.extend()
		rd.sess.HandleFrame(rd.ctx, data)
	}
}

// extend pushes the read deadline out by three heartbeats.
func (rd *reader) extend() { _ = rd.ws.SetReadDeadline(time.Now().Add(rd.silence)) }

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
