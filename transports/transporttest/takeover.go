package transporttest

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"

	"github.com/gorilla/websocket"
)

// TakeoverStats counts what connections of a TakeoverDialer saw.
type TakeoverStats struct {
	Read       atomic.Int64 // bytes read off the wire, handshake included
	Negotiated atomic.Int32 // connections whose server granted context takeover
	Inflated   atomic.Int64 // messages that came deflated with context takeover
}

// TakeoverDialer returns a dialer whose connections negotiate
// permessage-deflate as a browser does, letting the server keep its
// compression context from message to message, which gorilla's client
// cannot: it asks for server_no_context_takeover and inflates each
// message on its own. Under the gorilla client, each connection offers
// "permessage-deflate; client_max_window_bits" and, when the server's
// answer grants context takeover, inflates the server's deflated
// messages with the window they share and hands gorilla plain frames.
// The gorilla client still deflates its own messages each on its own,
// as client_no_context_takeover asks.
func TakeoverDialer(s *TakeoverStats) *websocket.Dialer {
	return &websocket.Dialer{EnableCompression: true,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			ic := &inflatingConn{Conn: c, stats: s}
			ic.in = bufio.NewReader(&countingReader{r: c, n: &s.Read})
			return ic, nil
		}}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// The offers and answers inflatingConn rewrites.
const (
	gorillaOffer   = "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"
	browserOffer   = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
	takeoverAnswer = "permessage-deflate; client_no_context_takeover"
	gorillaAnswer  = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
)

// inflatingConn is a client connection that does the server side of
// context takeover for the gorilla client above it (see TakeoverDialer).
// gorilla reads it from one goroutine and writes it from any, under its
// own lock.
type inflatingConn struct {
	net.Conn
	stats    *TakeoverStats
	in       *bufio.Reader // the wire
	out      []byte        // translated bytes gorilla has not read yet
	answered bool          // the 101 answer has been read
	takeover bool          // it granted context takeover
	window   []byte        // the last 32 KiB the server's deflated messages carried
	offered  atomic.Bool   // the handshake request has been written
}

// maxWindow is permessage-deflate's largest LZ77 window.
const maxWindow = 32 << 10

func (c *inflatingConn) Write(p []byte) (int, error) {
	if c.offered.CompareAndSwap(false, true) {
		if i := bytes.Index(p, []byte(gorillaOffer)); i >= 0 {
			q := append(append(append([]byte(nil), p[:i]...), browserOffer...), p[i+len(gorillaOffer):]...)
			if _, err := c.Conn.Write(q); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	return c.Conn.Write(p)
}

func (c *inflatingConn) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		var err error
		if !c.answered {
			err = c.readAnswer()
		} else {
			err = c.readFrame()
		}
		if err != nil {
			return 0, err
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// readAnswer reads the 101 answer's head and hands it on, with an answer
// that grants context takeover rewritten to the one gorilla accepts.
func (c *inflatingConn) readAnswer() error {
	for {
		line, err := c.in.ReadString('\n')
		if err != nil {
			return err
		}
		name, value, _ := strings.Cut(line, ":")
		if strings.EqualFold(name, "Sec-WebSocket-Extensions") && strings.TrimSpace(value) == takeoverAnswer {
			c.takeover = true
			c.stats.Negotiated.Add(1)
			line = name + ": " + gorillaAnswer + "\r\n"
		}
		c.out = append(c.out, line...)
		if line == "\r\n" {
			c.answered = true
			return nil
		}
	}
}

// finalTail ends a message's deflate stream for one decode: the sync
// flush the sender left off, then an empty final block.
var finalTail = []byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}

// readFrame reads one server frame and hands it on: as it came, or, if
// it is a message deflated with context takeover, inflated.
func (c *inflatingConn) readFrame() error {
	var h [2]byte
	if _, err := io.ReadFull(c.in, h[:]); err != nil {
		return err
	}
	var ext []byte
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		ext = make([]byte, 2)
	case 127:
		ext = make([]byte, 8)
	}
	if _, err := io.ReadFull(c.in, ext); err != nil {
		return err
	}
	switch len(ext) {
	case 2:
		n = uint64(binary.BigEndian.Uint16(ext))
	case 8:
		n = binary.BigEndian.Uint64(ext)
	}
	if h[1]&0x80 != 0 || n > 64<<20 {
		return errors.New("takeover: a masked or huge server frame")
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(c.in, payload); err != nil {
		return err
	}
	if !c.takeover || h[0]&0x40 == 0 {
		c.out = append(append(append(c.out, h[:]...), ext...), payload...)
		return nil
	}
	if h[0]&0x80 == 0 {
		return errors.New("takeover: a fragmented deflated message")
	}
	r := flate.NewReaderDict(io.MultiReader(bytes.NewReader(payload), bytes.NewReader(finalTail)), c.window)
	plain, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("takeover: inflate: %w", err)
	}
	c.stats.Inflated.Add(1)
	c.window = append(c.window, plain...)
	if len(c.window) > maxWindow {
		c.window = append(c.window[:0], c.window[len(c.window)-maxWindow:]...)
	}
	c.out = append(c.out, h[0]&^0x40)
	switch {
	case len(plain) <= 125:
		c.out = append(c.out, byte(len(plain)))
	case len(plain) <= 0xffff:
		c.out = binary.BigEndian.AppendUint16(append(c.out, 126), uint16(len(plain)))
	default:
		c.out = binary.BigEndian.AppendUint64(append(c.out, 127), uint64(len(plain)))
	}
	c.out = append(c.out, plain...)
	return nil
}
