package ws

import (
	"sync"
	"sync/atomic"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/core"
)

// controlPing is the heartbeat as a WebSocket ping control frame, framed
// once for every connection (control frames are never compressed).
var controlPing = mustPrepare(websocket.PingMessage, nil)

func mustPrepare(messageType int, data []byte) *websocket.PreparedMessage {
	pm, err := websocket.NewPreparedMessage(messageType, data)
	if err != nil {
		panic("ws: " + err.Error())
	}
	return pm
}

// preparedKey keys a frame's shared *prepared (see core.Frame.Shared).
type preparedKey struct{}

// streamDeflateMax is the largest message deflated straight into the
// connection's write buffer: gorilla deflates as it writes, and returns
// its flate writer (1.2 MB) to the pool once the message is deflated into
// the buffer, before the network write. A message that could deflate to
// more than the buffer holds would be flushed fragment by fragment with
// the flate writer held, for up to the write timeout if the client reads
// slowly, and a crowd of slow clients would hold one each. Such a message
// is deflated in memory first, as a PreparedMessage, and written in one
// piece. The margin covers deflate's worst case (stored blocks).
const streamDeflateMax = deflateWriteBufferSize - 64

// prepared is one fanned-out frame's WebSocket form, shared by the
// sessions that carry it. The first session to write it writes the bytes
// as they are: a frame carried by one session only (a reply, a replayed
// frame, a broadcast to a room of one) costs no more than a plain write.
// From the second session on, the frame is a websocket.PreparedMessage,
// framed once, and deflated once per compression level, for all of them.
type prepared struct {
	data []byte       // the envelope; static after construction
	id   uint64       // its number among the messages takeover connections deflate (msgIDs); static
	uses atomic.Int32 // sessions that have asked for it so far
	once sync.Once
	pm   *websocket.PreparedMessage // set by once

	// takeovers holds its deflated forms for takeover connections, each
	// against one history (see window), newest last.
	takeovers atomic.Pointer[[]*takeoverFrame]
}

func newPrepared(data []byte) any { return &prepared{data: data, id: msgIDs.Add(1)} }

// message returns the prepared message, or nil to the first caller, who
// should write data itself, unless need says the caller needs it anyway.
func (p *prepared) message(need bool) *websocket.PreparedMessage {
	if p.uses.Add(1) == 1 && !need {
		return nil
	}
	p.once.Do(func() { p.pm = mustPrepare(websocket.TextMessage, p.data) })
	return p.pm
}

// writeShared writes f as one text message, prepared once for all the
// sessions that share it.
func (c *conn) writeShared(f core.Frame) error {
	p := f.Shared(preparedKey{}, newPrepared).(*prepared)
	if pm := p.message(c.deflating && len(f.Data) > streamDeflateMax); pm != nil {
		return c.ws.WritePreparedMessage(pm)
	}
	return c.ws.WriteMessage(websocket.TextMessage, f.Data)
}

// maxPooled bounds the batch buffers kept for reuse: a rare huge batch
// (a replay window) is left to the collector instead of pinning its
// memory in the pool.
const maxPooled = 64 << 10

// buffers holds *[]byte for assembling batch arrays.
var buffers = sync.Pool{New: func() any { return new([]byte) }}

// getBuffer returns a pooled buffer with room for size bytes.
func getBuffer(size int) *[]byte {
	b := buffers.Get().(*[]byte)
	if cap(*b) < size {
		*b = make([]byte, 0, size)
	}
	return b
}

// putBuffer returns b to the pool unless it is too large to keep.
func putBuffer(b *[]byte) {
	if cap(*b) > maxPooled {
		return
	}
	*b = (*b)[:0]
	buffers.Put(b)
}
