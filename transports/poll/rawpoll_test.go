package poll_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// rawPoller is a poll client over one kept-alive HTTP/1.1 connection,
// written by hand so that a benchmark's client side costs little and
// allocates nothing per answer: what the benchmark measures is then
// mostly the server. It follows one room, resumes from each answer's
// cursor like the Go client, and checks what it is given: every message
// seq once, in order.
type rawPoller struct {
	addr   string // host:port
	local  net.Addr
	token  string
	rooms  string // rooms= as sent (already escaped)
	extra  string // more query parameters, such as "&level=0"
	gzip   bool   // send Accept-Encoding: gzip (the answer must then be plain: raw cannot gunzip)
	conn   net.Conn
	br     *bufio.Reader
	req    []byte
	body   []byte
	cursor []byte // the last answer's cursor
	last   uint64 // the last message seq seen; the next must be last+1
}

// errGzipped says that an answer came gzipped, which rawPoller does not read.
var errGzipped = errors.New("rawpoll: gzipped answer")

// poll makes one poll and calls seen for each message seq in the answer,
// in order. It returns the number of events in the answer. An answer with
// Connection: close makes the next poll dial again.
func (p *rawPoller) poll(seen func(seq uint64)) (int, error) {
	if p.conn == nil {
		d := net.Dialer{LocalAddr: p.local, Timeout: 10 * time.Second}
		c, err := d.Dial("tcp", p.addr)
		if err != nil {
			return 0, err
		}
		p.conn = c
		if p.br == nil {
			p.br = bufio.NewReaderSize(c, 4096)
		} else {
			p.br.Reset(c)
		}
	}
	p.req = append(p.req[:0], "GET /v1/poll?rooms="...)
	p.req = append(p.req, p.rooms...)
	if len(p.cursor) > 0 {
		p.req = append(p.req, "&cursor="...)
		p.req = append(p.req, p.cursor...)
	}
	p.req = append(p.req, p.extra...)
	p.req = append(p.req, " HTTP/1.1\r\nHost: chatd\r\nAuthorization: Bearer "...)
	p.req = append(p.req, p.token...)
	if p.gzip {
		p.req = append(p.req, "\r\nAccept-Encoding: gzip"...)
	}
	p.req = append(p.req, "\r\n\r\n"...)
	if _, err := p.conn.Write(p.req); err != nil {
		p.drop()
		return 0, err
	}
	n, err := p.read(seen)
	if err != nil {
		p.drop()
	}
	return n, err
}

func (p *rawPoller) drop() {
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
}

// close ends the connection.
func (p *rawPoller) close() { p.drop() }

// read reads one answer.
func (p *rawPoller) read(seen func(seq uint64)) (int, error) {
	status, err := p.br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	ok := bytes.HasPrefix(status, []byte("HTTP/1.1 200 "))
	length, closing, gzipped := -1, false, false
	for {
		line, err := p.br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		k, v, _ := bytes.Cut(line, []byte(":"))
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			n, ok := digits(v)
			if !ok {
				return 0, fmt.Errorf("rawpoll: Content-Length %q", v)
			}
			length = int(n)
		case bytes.EqualFold(k, []byte("Connection")):
			closing = bytes.EqualFold(v, []byte("close"))
		case bytes.EqualFold(k, []byte("Content-Encoding")):
			gzipped = bytes.EqualFold(v, []byte("gzip"))
		}
	}
	if length < 0 {
		return 0, errors.New("rawpoll: answer without Content-Length")
	}
	if cap(p.body) < length {
		p.body = make([]byte, length)
	}
	p.body = p.body[:length]
	if _, err := io.ReadFull(p.br, p.body); err != nil {
		return 0, err
	}
	if closing {
		p.drop()
	}
	if !ok {
		return 0, fmt.Errorf("rawpoll: %s: %s", bytes.TrimSpace(status), p.body)
	}
	if gzipped {
		return 0, errGzipped
	}
	return p.parse(seen)
}

var (
	keyCursor = []byte(`"cursor":"`)
	keyType   = []byte(`{"type":"`)
	keySeq    = []byte(`"seq":`)
	typeMsg   = []byte(`message"`)
)

// parse reads the events' types and message seqs, and the cursor, from
// an answer as the server encodes it (type first in every envelope).
func (p *rawPoller) parse(seen func(seq uint64)) (int, error) {
	body := p.body
	i := bytes.LastIndex(body, keyCursor)
	if i < 0 {
		return 0, fmt.Errorf("rawpoll: no cursor in %q", body)
	}
	end := bytes.IndexByte(body[i+len(keyCursor):], '"')
	if end < 0 {
		return 0, fmt.Errorf("rawpoll: bad cursor in %q", body)
	}
	p.cursor = append(p.cursor[:0], body[i+len(keyCursor):i+len(keyCursor)+end]...)
	return scanEvents(body[:i], &p.last, seen)
}

// scanEvents reads the envelopes in b, as the server encodes them (type
// first), and calls seen for each message seq, which must be the one
// after *last. It returns the number of envelopes.
func scanEvents(b []byte, last *uint64, seen func(seq uint64)) (int, error) {
	n := 0
	for events := b; ; {
		j := bytes.Index(events, keyType)
		if j < 0 {
			return n, nil
		}
		n++
		events = events[j+len(keyType):]
		if !bytes.HasPrefix(events, typeMsg) {
			continue
		}
		k := bytes.Index(events, keySeq)
		if k < 0 {
			return n, fmt.Errorf("message without seq in %q", b)
		}
		seq, ok := digits(events[k+len(keySeq):])
		if !ok {
			return n, fmt.Errorf("bad seq in %q", b)
		}
		if seq != *last+1 {
			return n, fmt.Errorf("seq %d after %d", seq, *last)
		}
		*last = seq
		seen(seq)
	}
}

// digits reads the decimal number at the start of b.
func digits(b []byte) (uint64, bool) {
	var n uint64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9' && i < 19; i++ {
		n = n*10 + uint64(b[i]-'0')
	}
	return n, i > 0
}
