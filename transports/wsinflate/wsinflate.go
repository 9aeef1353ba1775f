// Package wsinflate lets gorilla's WebSocket client accept
// permessage-deflate with context takeover, as browsers do. gorilla's
// client always asks the server for server_no_context_takeover, so each
// message the server sends is deflated on its own, and a short chat
// message hardly shrinks; a server that may deflate each message against
// the ones before it (chatd does, for a client that allows it) sends a
// chat stream in a third of the bytes or less.
//
// Dialer wraps a dialer's connections: each offers
// "permessage-deflate; client_max_window_bits", as a browser does, and
// when the server's answer grants context takeover, the connection
// inflates the server's deflated messages with the window they share and
// hands gorilla plain frames, with gorilla seeing the answer it expects.
// gorilla still deflates the client's own messages each on its own, as
// the client_no_context_takeover of the answer asks. The cost is a 32 KiB
// window per connection and an inflate per message.
package wsinflate

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gorilla/websocket"
)

// Stats counts what a Dialer's connections saw.
type Stats struct {
	Negotiated atomic.Int64 // connections whose server granted context takeover
	Inflated   atomic.Int64 // messages that came deflated with context takeover
}

// Dialer returns a copy of d whose connections negotiate context takeover
// when the server grants it, counting on stats (nil: not counted). d's
// NetDialContext dials, or a net.Dialer if it is nil; for wss, d's
// NetDialTLSContext, or that dial and a TLS handshake with d's
// TLSClientConfig (the connection sits above TLS, where the handshake
// and frames are plain). Compression is on.
func Dialer(d *websocket.Dialer, stats *Stats) *websocket.Dialer {
	out := *d
	dial := d.NetDialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	wrap := func(c net.Conn, err error) (net.Conn, error) {
		if err != nil {
			return nil, err
		}
		return &inflatingConn{Conn: c, stats: stats, in: bufio.NewReader(c)}, nil
	}
	dialTLS := d.NetDialTLSContext
	if dialTLS == nil {
		dialTLS = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			cfg := &tls.Config{}
			if d.TLSClientConfig != nil {
				cfg = d.TLSClientConfig.Clone()
			}
			if cfg.ServerName == "" {
				cfg.ServerName, _, _ = net.SplitHostPort(addr)
			}
			// WebSocket needs HTTP/1.1: a config shared with an HTTP
			// client may list h2 first, and a server would take it.
			cfg.NextProtos = []string{"http/1.1"}
			tc := tls.Client(c, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, err
			}
			return tc, nil
		}
	}
	out.EnableCompression = true
	out.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return wrap(dial(ctx, network, addr))
	}
	out.NetDialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return wrap(dialTLS(ctx, network, addr))
	}
	return &out
}

// The offers and answers inflatingConn rewrites.
const (
	gorillaOffer  = "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"
	browserOffer  = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
	gorillaAnswer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
)

// inflatingConn is a client connection that does the server side of
// context takeover for the gorilla client above it (see Dialer).
// gorilla reads it from one goroutine and writes it from any, under its
// own lock.
type inflatingConn struct {
	net.Conn
	stats    *Stats        // nil: not counted
	in       *bufio.Reader // the wire
	out      []byte        // translated bytes gorilla has not read yet
	answered bool          // the 101 answer has been read
	head     int           // bytes of it read so far
	takeover bool          // it granted context takeover
	window   []byte        // what the server's deflated messages carried: the last 32 KiB at least
	off      int           // how much of out gorilla has read
	payload  []byte        // the frame being read; reused
	plain    []byte        // the message being inflated; reused
	src      bytes.Reader  // reads payload to the inflater
	offered  atomic.Bool   // the handshake request has been written
}

// maxWindow is permessage-deflate's largest LZ77 window.
const maxWindow = 32 << 10

// maxHead bounds the 101 answer's head.
const maxHead = 16 << 10

// maxMessage bounds a server frame and what a message inflates to.
const maxMessage = 64 << 20

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
	if c.off == len(c.out) {
		c.out, c.off = c.out[:0], 0
	}
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
	n := copy(p, c.out[c.off:])
	c.off += n
	return n, nil
}

// readAnswer reads the 101 answer's head and hands it on, with an answer
// that grants context takeover rewritten to the one gorilla accepts.
func (c *inflatingConn) readAnswer() error {
	for {
		var line []byte
		for {
			part, err := c.in.ReadSlice('\n')
			line = append(line, part...)
			if c.head += len(part); c.head > maxHead {
				return errors.New("wsinflate: the answer's head is too long")
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue // a line longer than the buffer: read on, within maxHead
			}
			if err != nil {
				return fmt.Errorf("wsinflate: the answer's head: %w", err)
			}
			break
		}
		name, value, _ := strings.Cut(string(line), ":")
		if strings.EqualFold(strings.TrimSpace(name), "Sec-WebSocket-Extensions") && grantsTakeover(value) {
			c.takeover = true
			if c.stats != nil {
				c.stats.Negotiated.Add(1)
			}
			line = []byte(name + ": " + gorillaAnswer + "\r\n")
		}
		c.out = append(c.out, line...)
		if string(line) == "\r\n" {
			c.answered = true
			return nil
		}
	}
}

// grantsTakeover reports whether an answer's extensions accept
// permessage-deflate without server_no_context_takeover: the server will
// deflate against the messages before. Its other parameters need nothing
// of the client: client_no_context_takeover is how gorilla deflates
// anyway, client_max_window_bits bounds a window gorilla does not keep,
// and a smaller server_max_window_bits only keeps the server's references
// closer than the 32 KiB window kept here.
func grantsTakeover(value string) bool {
	name, params, _ := strings.Cut(value, ";")
	if strings.TrimSpace(name) != "permessage-deflate" || strings.Contains(value, ",") {
		return false
	}
	for p := range strings.SplitSeq(params, ";") {
		k, _, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(k), "server_no_context_takeover") {
			return false
		}
	}
	return true
}

// finalTail ends a message's deflate stream for one decode: the sync
// flush the sender left off, then an empty final block.
var finalTail = []byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}

// inflaters are decompressors lent for one message and reset with the
// connection's window: a connection keeps only the window, not a
// decompressor (about 40 KiB more) between messages.
var inflaters = sync.Pool{New: func() any { return flate.NewReader(bytes.NewReader(nil)) }}

// readFrame reads one server frame and hands it on: as it came, or, if
// it is a message deflated with context takeover, inflated.
func (c *inflatingConn) readFrame() error {
	var h [10]byte
	if _, err := io.ReadFull(c.in, h[:2]); err != nil {
		return err
	}
	hl, n := 2, uint64(h[1]&0x7f)
	switch n {
	case 126:
		hl = 4
	case 127:
		hl = 10
	}
	if _, err := io.ReadFull(c.in, h[2:hl]); err != nil {
		return err
	}
	switch hl {
	case 4:
		n = uint64(binary.BigEndian.Uint16(h[2:]))
	case 10:
		n = binary.BigEndian.Uint64(h[2:])
	}
	if h[1]&0x80 != 0 || n > maxMessage {
		return errors.New("wsinflate: a masked or huge server frame")
	}
	if err := c.readPayload(int(n)); err != nil {
		return err
	}
	if !c.takeover || h[0]&0x40 == 0 {
		c.out = append(append(c.out, h[:hl]...), c.payload...)
		return nil
	}
	if h[0]&0x80 == 0 {
		return errors.New("wsinflate: a fragmented deflated message")
	}
	if err := c.inflate(); err != nil {
		return err
	}
	if c.stats != nil {
		c.stats.Inflated.Add(1)
	}
	c.remember(c.plain)
	c.out = append(c.out, h[0]&^0x40)
	switch p := c.plain; {
	case len(p) <= 125:
		c.out = append(c.out, byte(len(p)))
	case len(p) <= 0xffff:
		c.out = binary.BigEndian.AppendUint16(append(c.out, 126), uint16(len(p)))
	default:
		c.out = binary.BigEndian.AppendUint64(append(c.out, 127), uint64(len(p)))
	}
	c.out = append(c.out, c.plain...)
	return nil
}

// readPayload reads n bytes into c.payload, growing it as the bytes
// come, so that a header that lies costs no more memory than was sent.
func (c *inflatingConn) readPayload(n int) error {
	c.payload = c.payload[:0]
	for len(c.payload) < n {
		if len(c.payload) == cap(c.payload) {
			c.payload = append(c.payload, 0)[:len(c.payload)]
		}
		end := min(cap(c.payload), n)
		k, err := io.ReadFull(c.in, c.payload[len(c.payload):end])
		c.payload = c.payload[:len(c.payload)+k]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// inflate inflates c.payload into c.plain against the window.
func (c *inflatingConn) inflate() error {
	c.payload = append(c.payload, finalTail...)
	c.src.Reset(c.payload)
	r := inflaters.Get().(io.ReadCloser)
	defer inflaters.Put(r)
	if err := r.(flate.Resetter).Reset(&c.src, c.window[max(0, len(c.window)-maxWindow):]); err != nil {
		return err
	}
	c.plain = c.plain[:0]
	for {
		if len(c.plain) == cap(c.plain) {
			c.plain = append(c.plain, 0)[:len(c.plain)]
		}
		k, err := r.Read(c.plain[len(c.plain):cap(c.plain)])
		c.plain = c.plain[:len(c.plain)+k]
		if len(c.plain) > maxMessage {
			return errors.New("wsinflate: a message inflates to more than 64 MiB")
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("wsinflate: inflate: %w", err)
		}
	}
}

// remember adds p to the window, which keeps at least the last
// maxWindow bytes and is compacted only when its spare room runs out.
func (c *inflatingConn) remember(p []byte) {
	if len(p) >= maxWindow {
		c.window = append(c.window[:0], p[len(p)-maxWindow:]...)
		return
	}
	if c.window == nil {
		c.window = make([]byte, 0, maxWindow+maxWindow/4)
	}
	if len(c.window)+len(p) > cap(c.window) {
		keep := min(len(c.window), maxWindow-len(p))
		c.window = c.window[:copy(c.window, c.window[len(c.window)-keep:])]
	}
	c.window = append(c.window, p...)
}
