package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"
)

// maxIdlePolls bounds the idle poll connections a pollTransport keeps,
// as the streams transport's MaxIdleConnsPerHost does.
const maxIdlePolls = 4096

// pollTransport carries polls over plain HTTP/1.1 on the caller's own
// goroutine: it writes the request in one write, reads the answer (a
// plain 200's head parsed in place, any other with http.ReadResponse,
// see readAnswer) and keeps the connection for the client's next poll.
// net/http's Transport hands every request to two goroutines of the
// connection's (a writer and a reader) and back over channels; with
// thousands of clients polling as fast as they are answered, those
// hand-offs and their scheduling were about a fifth of the tool's core,
// and the tool's own queueing showed in the latencies it reports. A
// browser has its own process for this; the tool has one core for
// thousands of clients. What the transport cannot carry this way (TLS,
// anything but a GET without a body, a request that names its own
// Accept-Encoding) goes to next.
//
// With gzip it asks for gzipped answers and inflates them, as net/http's
// Transport does when compression is on (Response.Uncompressed), each
// connection with one inflater reset for every answer: through net/http
// instead, a broadcast to 5,000 compressed poll clients held the tool
// at its core, and its answers' sizes said more about the tool than
// about the node.
type pollTransport struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error) // Static after construction.
	next http.RoundTripper                                                 // Static after construction.
	gzip bool                                                              // Static after construction.

	mu   sync.Mutex
	idle []*pollConn // most recently used last; guarded by mu.
}

// pollConn is one kept-alive connection and its reader.
type pollConn struct {
	addr string // host:port; static after construction.
	nc   net.Conn
	br   *bufio.Reader
	head []byte       // the request head, rebuilt for each poll
	zr   *gzip.Reader // inflates gzipped answers; nil until the first
}

// errReused is how a pollConn reports a connection the server closed
// while it was idle: the poll is sent again on a new one.
var errReused = errors.New("chatload: kept connection closed by the server")

// RoundTrip sends req, a poll, and returns its answer, whose body gives
// the connection back when closed after it was read to its end.
func (t *pollTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" || req.Method != http.MethodGet || (req.Body != nil && req.Body != http.NoBody) ||
		req.Header.Get("Accept-Encoding") != "" || !plainHeader(req.Header) {
		return t.next.RoundTrip(req)
	}
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	for {
		pc, reused := t.get(addr)
		if pc == nil {
			nc, err := t.dial(req.Context(), "tcp", addr)
			if err != nil {
				return nil, err
			}
			pc = &pollConn{addr: addr, nc: nc, br: bufio.NewReaderSize(nc, 4096)}
		}
		resp, err := pc.roundTrip(t, req, reused)
		if errors.Is(err, errReused) && req.Context().Err() == nil {
			continue // a GET: safe to send again, as net/http does
		}
		return resp, err
	}
}

// get takes an idle connection to addr, if one is kept.
func (t *pollTransport) get(addr string) (*pollConn, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := len(t.idle) - 1; i >= 0; i-- {
		if pc := t.idle[i]; pc.addr == addr {
			t.idle = append(t.idle[:i], t.idle[i+1:]...)
			return pc, true
		}
	}
	return nil, false
}

// put keeps pc for the next poll, or closes it past maxIdlePolls.
func (t *pollTransport) put(pc *pollConn) {
	t.mu.Lock()
	if len(t.idle) < maxIdlePolls {
		t.idle = append(t.idle, pc)
		pc = nil
	}
	t.mu.Unlock()
	if pc != nil {
		pc.nc.Close()
	}
}

// CloseIdleConnections closes the kept connections, and next's.
func (t *pollTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, pc := range idle {
		pc.nc.Close()
	}
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// longAgo is a deadline in the past: it fails a blocked read or write.
var longAgo = time.Unix(1, 0)

// roundTrip writes req on pc and reads the answer's head. The request's
// context ending fails the connection's reads and writes (a deadline in
// the past), as net/http cancels a request. On a reused connection a
// failure before any of the answer arrived is errReused.
func (pc *pollConn) roundTrip(t *pollTransport, req *http.Request, reused bool) (*http.Response, error) {
	stop := context.AfterFunc(req.Context(), func() { _ = pc.nc.SetDeadline(longAgo) })
	pc.head = appendRequestHead(pc.head[:0], req, t.gzip)
	_, err := pc.nc.Write(pc.head)
	var resp *http.Response
	var gzipped bool
	if err == nil {
		resp, gzipped, err = pc.readAnswer(req)
	}
	var framed bool // the body's end is in the answer, not at the connection's
	if err == nil {
		framed = resp.ContentLength >= 0 || len(resp.TransferEncoding) > 0
		if gzipped && t.gzip {
			if err = pc.inflate(resp); err != nil {
				stop()
				pc.nc.Close()
				return nil, err // the answer came: not a connection closed while idle
			}
		}
	}
	if err != nil {
		stop()
		pc.nc.Close()
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, ctxErr
		}
		if reused && pc.br.Buffered() == 0 && closedByPeer(err) {
			return nil, errReused
		}
		return nil, err
	}
	keep := !resp.Close && framed
	resp.Body = &pollBody{ReadCloser: resp.Body, t: t, pc: pc, stop: stop, keep: keep}
	return resp, nil
}

// readAnswer reads the head of the answer to req, and whether its body
// is gzipped. A poll's answer, a 200 with a Content-Length, plain or
// gzipped, is parsed where it lies in the reader's buffer; any other
// (another status, a chunked body or another encoding, a head not yet
// whole in the buffer) goes to http.ReadResponse. With thousands of
// clients polling as fast as they are answered, http.ReadResponse's
// header map and strings for every answer were about 8% of the tool's
// core (7 December).
func (pc *pollConn) readAnswer(req *http.Request) (*http.Response, bool, error) {
	if _, err := pc.br.Peek(1); err != nil {
		return nil, false, err
	}
	buf, _ := pc.br.Peek(pc.br.Buffered())
	end := bytes.Index(buf, headEnd)
	if end < 0 {
		return readResponse(pc.br, req)
	}
	n, closing, gzipped, ok := plainAnswer(buf[:end+2])
	if !ok {
		return readResponse(pc.br, req)
	}
	if _, err := pc.br.Discard(end + len(headEnd)); err != nil {
		return nil, false, err
	}
	h := http.Header{}
	if gzipped {
		h["Content-Encoding"] = []string{"gzip"}
	}
	return &http.Response{
		Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, ContentLength: n, Close: closing, Request: req,
		Body: &answerBody{br: pc.br, left: n},
	}, gzipped, nil
}

// readResponse is http.ReadResponse, and whether the body is gzipped.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, bool, error) {
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, false, err
	}
	return resp, strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip"), nil
}

// inflate makes resp, a gzipped answer, read inflated, as net/http's
// Transport gives it: no Content-Encoding or Content-Length, Uncompressed.
// pc's inflater is reset over the body, which it reads to the gzip
// stream's end and no further (answerBody is a byte reader, so the
// inflater reads no more than it needs).
func (pc *pollConn) inflate(resp *http.Response) error {
	var err error
	if pc.zr == nil {
		pc.zr, err = gzip.NewReader(resp.Body)
	} else {
		err = pc.zr.Reset(resp.Body)
	}
	if err != nil {
		resp.Body.Close()
		return err
	}
	pc.zr.Multistream(false)
	resp.Body = &inflated{zr: pc.zr, raw: resp.Body}
	resp.Header.Del("Content-Encoding")
	resp.Header.Del("Content-Length")
	resp.ContentLength, resp.Uncompressed = -1, true
	return nil
}

// inflated is a gzipped answer's body, read inflated; closing it closes
// the body on the wire (which reads past what is left of it).
type inflated struct {
	zr  *gzip.Reader
	raw io.ReadCloser
}

func (b *inflated) Read(p []byte) (int, error) { return b.zr.Read(p) }
func (b *inflated) Close() error               { return b.raw.Close() }

// headEnd ends an HTTP head.
var headEnd = []byte("\r\n\r\n")

// plainAnswer reads head, an answer's status line and header lines each
// ended by CRLF: ok if it is a 200 with a Content-Length n, no
// Transfer-Encoding, and no Content-Encoding or one Content-Encoding:
// gzip (gzipped); closing if it says Connection: close. A line with a
// bare LF or a folded line (one that starts with a space or a tab) is
// not ok: http.ReadResponse reads those.
func plainAnswer(head []byte) (n int64, closing, gzipped, ok bool) {
	line, rest, _ := bytes.Cut(head, crlf)
	if bytes.IndexByte(line, '\n') >= 0 || !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) && !bytes.Equal(line, []byte("HTTP/1.1 200")) {
		return 0, false, false, false
	}
	n = -1
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, crlf)
		name, value, found := bytes.Cut(line, []byte(":"))
		if !found || bytes.IndexByte(line, '\n') >= 0 || line[0] == ' ' || line[0] == '\t' {
			return 0, false, false, false
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			v, err := strconv.ParseUint(string(value), 10, 63)
			if err != nil || n >= 0 {
				return 0, false, false, false
			}
			n = int64(v)
		case bytes.EqualFold(name, []byte("Content-Encoding")):
			if gzipped || !bytes.EqualFold(value, []byte("gzip")) {
				return 0, false, false, false
			}
			gzipped = true
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return 0, false, false, false
		case bytes.EqualFold(name, []byte("Connection")):
			closing = bytes.Contains(bytes.ToLower(value), []byte("close"))
		}
	}
	return n, closing, gzipped, n >= 0
}

var crlf = []byte("\r\n")

// answerBody is the body of an answer readAnswer parsed: the next left
// bytes of the connection's reader.
type answerBody struct {
	br   *bufio.Reader
	left int64
}

// ReadByte makes an answerBody a byte reader, which an inflater reads
// without a buffer of its own (so not past the body).
func (b *answerBody) ReadByte() (byte, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	c, err := b.br.ReadByte()
	if err == io.EOF {
		return 0, io.ErrUnexpectedEOF // the connection ended inside the body
	}
	if err == nil {
		b.left--
	}
	return c, err
}

func (b *answerBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	k, err := b.br.Read(p)
	b.left -= int64(k)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF // the connection ended inside the body
	}
	return k, err
}

// maxDrain is the most of an answer's body Close reads past: beyond
// it the connection is closed instead. (Answers left to
// http.ReadResponse drain as net/http's client bodies do.)
const maxDrain = 256 << 10

// errUndrained is Close's error for a body too long to read past: the
// connection is not kept.
var errUndrained = errors.New("chatload: answer left unread")

// Close reads what is left of the body, up to maxDrain, so that the
// connection can carry the next poll.
func (b *answerBody) Close() error {
	if b.left > maxDrain {
		return errUndrained
	}
	if b.left > 0 {
		k, err := b.br.Discard(int(b.left))
		b.left -= int64(k)
		return err
	}
	return nil
}

// closedByPeer reports whether err is how a write to, or a read from, a
// connection the server has closed fails.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// appendRequestHead appends req's HTTP/1.1 request head to b, asking
// for a gzipped answer with gzip.
func appendRequestHead(b []byte, req *http.Request, gzip bool) []byte {
	b = append(b, "GET "...)
	b = appendRequestURI(b, req.URL)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, req.URL.Host...)
	b = append(b, "\r\nUser-Agent: chatload\r\n"...)
	for k, vs := range req.Header {
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	if gzip {
		b = append(b, "Accept-Encoding: gzip\r\n"...)
	}
	return append(b, "\r\n"...)
}

// appendRequestURI appends u's request target, as u.RequestURI() gives
// it, without making a string of it when u is not opaque and its path
// needs no escaping, as a poll's URL.
func appendRequestURI(b []byte, u *url.URL) []byte {
	if u.Opaque != "" {
		return append(b, u.RequestURI()...)
	}
	if p := u.EscapedPath(); p != "" {
		b = append(b, p...)
	} else {
		b = append(b, '/')
	}
	if u.ForceQuery || u.RawQuery != "" {
		b = append(b, '?')
		b = append(b, u.RawQuery...)
	}
	return b
}

// plainHeader reports whether h can be written as it is: no line breaks
// in its names or values (net/http refuses those; next will).
func plainHeader(h http.Header) bool {
	for k, vs := range h {
		if strings.ContainsAny(k, "\r\n") {
			return false
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				return false
			}
		}
	}
	return true
}

// pollBody is an answer's body: closing it gives the connection back for
// the next poll if the answer was read to its end, the server keeps the
// connection open and the request was not cancelled; otherwise closes it.
type pollBody struct {
	io.ReadCloser
	t    *pollTransport
	pc   *pollConn
	stop func() bool
	keep bool
	done bool
}

func (b *pollBody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	// net/http's body reads what is left of the answer on Close.
	err := b.ReadCloser.Close()
	if stopped := b.stop(); err != nil || !b.keep || !stopped || b.pc.br.Buffered() > 0 {
		b.pc.nc.Close()
		return err
	}
	b.t.put(b.pc)
	return nil
}
