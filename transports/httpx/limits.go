package httpx

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/chatd/chatd/core/protocol"
)

// BodyLimits bounds how long a request body may take to arrive, so that
// a client that announces a body and then sends it slowly, or never,
// cannot hold a connection open. The zero value sets no deadline: a body
// that never comes then holds its connection until the client leaves.
//
// Its Middleware, for each request that carries a body (a Content-Length
// above zero, or chunked):
//
//   - sets the connection's read deadline to Timeout from now, with
//     http.ResponseController, so a body read that runs past it fails
//     (DecodeJSON answers that 408 timeout);
//   - clears the deadline once the body has been read to its end, so that
//     net/http's background read, which watches for the client going away
//     while the handler works, never times out and cancels the request's
//     context;
//   - adds Connection: close to any answer that starts before the body was
//     read to its end (an error before the body is read, such as 401 or
//     405), so net/http does not read the rest of the body before answering
//     in order to reuse the connection, and tells the server the body was
//     left unread (closeUnread), so that after the answer it stops writing
//     and lets the client read before it closes, instead of resetting the
//     connection under the client. Any of the body it still discards once
//     the handler returns is read under the deadline, so a body that never
//     comes holds the connection for at most Timeout.
//
// Requests without a body are passed through untouched: there is nothing
// to read, and between requests the server's ReadHeaderTimeout and
// IdleTimeout bound the connection. Streaming routes (WebSocket, SSE,
// poll) hold a request open for minutes, so they never get a read
// deadline; they take no body, and a request to one that carries a body
// is refused with 400 bad_request and Connection: close, its body
// discarded under the deadline.
type BodyLimits struct {
	// Timeout is how long a request body may take to arrive in full,
	// counted from when the handler starts, just after the headers.
	// 0: no deadline.
	Timeout time.Duration
	// Streaming reports the requests that hold the connection open
	// (WebSocket upgrades, SSE streams, long polls). nil: none.
	Streaming func(*http.Request) bool
}

// errStreamBody answers a streaming request that carries a body.
var errStreamBody = protocol.Errorf(protocol.CodeBadRequest, "this endpoint takes no request body")

// Middleware returns next wrapped with the limits. It must wrap the
// server's handler directly, outside any middleware that might read the
// body, and it expects the http.Server's own ResponseWriter.
func (b BodyLimits) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// HTTP/2 gives every request a Body, even one whose stream ended
		// with its headers; ContentLength 0 says there is none.
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		// Connection: close ends an HTTP/1 connection whose request body
		// was not read. HTTP/2 forbids the header, and Go's server reads it
		// as a request to shut the whole connection (every stream on it)
		// down; it resets the one stream and discards its body by itself.
		h1 := r.ProtoMajor < 2
		rc := http.NewResponseController(w)
		if b.Timeout > 0 {
			_ = rc.SetReadDeadline(time.Now().Add(b.Timeout))
		}
		if b.Streaming != nil && b.Streaming(r) {
			if h1 {
				closeUnread(w)
			}
			WriteError(w, errStreamBody)
			return
		}
		body := &watchedBody{ReadCloser: r.Body, rc: rc, clear: b.Timeout > 0}
		r.Body = body
		cw := &closeIfUnread{ResponseWriter: w, body: body, h1: h1}
		next.ServeHTTP(cw, r)
		if h1 && !cw.started && !body.done.Load() {
			closeUnread(w)
		}
	})
}

// watchedBody records when a request body has been read to its end and
// then lifts the read deadline.
type watchedBody struct {
	io.ReadCloser                          // Static after construction.
	rc            *http.ResponseController // Static after construction.
	clear         bool                     // Static: a deadline was set, so clear it at the end.
	done          atomic.Bool              // Set once, when Read returns io.EOF.
}

// Read reads the body; at its end it clears the read deadline, which then
// applies to the background read net/http starts at that moment.
func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done.Swap(true) && b.clear {
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// closeUnread tells the server's own writer (w, or the end of its Unwrap
// chain) that the request body will not be read to its end, as
// http.MaxBytesReader does when a body passes its limit: the answer gets
// Connection: close, and after it the server stops writing and waits a
// moment (half a second in net/http) before it closes. Closing at once,
// with body bytes unread, resets the connection, and a client that sent
// Connection: close, or is still sending its body, can get the reset
// before it has read the answer. Setting the header alone, or reading
// w's limit through a wrapper, hides the unread body from the server.
// The one-byte reader is only there to pass a limit of 0; the request's
// body is not touched.
func closeUnread(w http.ResponseWriter) {
	var b [1]byte
	_, _ = http.MaxBytesReader(serverWriter(w), io.NopCloser(strings.NewReader("x")), 0).Read(b[:])
}

// serverWriter follows w's Unwrap chain to its end: the server's own
// writer, when every wrapper on the way keeps Unwrap (as ours and chi's
// do).
func serverWriter(w http.ResponseWriter) http.ResponseWriter {
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return w
		}
		w = u.Unwrap()
	}
}

// closeIfUnread adds Connection: close to an answer that starts before
// the request body was read to its end. Owned by the handler goroutine.
type closeIfUnread struct {
	http.ResponseWriter
	body    *watchedBody // Static after construction.
	h1      bool         // Static: HTTP/1, where a close is how to stop an unread body.
	started bool         // Set by the first WriteHeader, Write or Flush.
}

// start runs before the answer's headers can go out.
func (w *closeIfUnread) start() {
	if w.started {
		return
	}
	w.started = true
	if w.h1 && !w.body.done.Load() {
		closeUnread(w.ResponseWriter)
	}
}

func (w *closeIfUnread) WriteHeader(code int) {
	if code >= 200 {
		w.start()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *closeIfUnread) Write(p []byte) (int, error) {
	w.start()
	return w.ResponseWriter.Write(p)
}

func (w *closeIfUnread) Flush() {
	w.start()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *closeIfUnread) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// WriteLimits bounds how long the answer of a request that is not a
// stream may go without progress to its client. A client that asks and
// never reads (pipelined requests whose answers fill its socket's
// buffers) holds a connection and a goroutine only that long; net/http,
// whose WriteTimeout bounds a whole answer and so would cut streams, is
// run without one, and held them for as long as the client kept the
// connection open (TCP keeps a peer that acknowledges but never reads
// forever). Each write moves the deadline on, so a large download to a
// slow reader goes on while it moves (by 256 KiB at least each Timeout,
// through Write or ReadFrom, sendfile). The deadline is set again at
// most once per eighth of Timeout: an answer may take up to an eighth
// more.
//
// Streams (Streaming) bound their own writes, and requests a Lane serves
// are bounded by the lane's write deadline: neither is touched. Nor are
// HTTP/2 requests: Go's HTTP/2 server runs a write deadline as a timer
// that resets the stream when it fires, written to or not, so it cut
// uploads and slow answers; there the connection's flow control is what
// holds a client that does not read. net/http clears the deadline once
// an HTTP/1 answer is out, so none is left for the connection's next
// request.
type WriteLimits struct {
	// Timeout is how long a write may make no progress. 0: no limit.
	Timeout time.Duration
	// Streaming reports the requests that hold the connection open
	// (WebSocket upgrades, SSE streams, long polls). nil: none.
	Streaming func(*http.Request) bool
}

// progressChunk is how much of an answer goes out under one deadline: a
// client that takes less than 256 KiB in a Timeout (8.5 KB/s at 30 s)
// is cut off.
const progressChunk = 256 << 10

// Middleware returns next wrapped with the limit. It expects the
// server's own ResponseWriter, or wrappers that keep Unwrap.
func (l WriteLimits) Middleware(next http.Handler) http.Handler {
	if l.Timeout <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if InLane(r) {
			next.ServeHTTP(w, r)
			return
		}
		if r.ProtoMajor != 1 || l.Streaming != nil && l.Streaming(r) {
			next.ServeHTTP(w, r)
			return
		}
		pw := &progressWriter{ResponseWriter: w, rc: http.NewResponseController(w), d: l.Timeout}
		pw.moveOn()
		next.ServeHTTP(pw, r)
		// What the server writes once the handler has returned (a head
		// with no body, the buffered tail) gets a deadline of its own:
		// the handler may have taken longer than Timeout to answer.
		pw.at = time.Time{}
		pw.moveOn()
	})
}

// progressWriter moves its connection's write deadline on as the answer
// is written. Owned by the handler goroutine.
type progressWriter struct {
	http.ResponseWriter
	rc *http.ResponseController // Static after construction.
	d  time.Duration            // Static after construction.
	at time.Time                // when the deadline was last moved on
}

// moveOn sets the write deadline d and a slack from now, unless it was
// set less than the slack ago.
func (w *progressWriter) moveOn() {
	now := time.Now()
	slack := w.d / 8
	if !w.at.IsZero() && now.Sub(w.at) < slack {
		return
	}
	w.at = now
	_ = w.rc.SetWriteDeadline(now.Add(w.d + slack))
}

// Write writes p a chunk at a time, moving the deadline on before each:
// one large Write (a bytes.Reader's WriteTo, say) has Timeout a chunk,
// not for the whole.
func (w *progressWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return w.ResponseWriter.Write(p) // it still commits the status
	}
	n := 0
	for len(p) > 0 {
		k := min(len(p), progressChunk)
		w.moveOn()
		m, err := w.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// ReadFrom keeps the server's own, a chunk at a time, moving the
// deadline on before each. Each chunk reaches the server as an
// io.LimitedReader: sendfile takes one around a file, not two, so a
// source already limited (io.CopyN's) is copied without it. No route
// serves a file from disk.
func (w *progressWriter) ReadFrom(src io.Reader) (int64, error) {
	var total int64
	for {
		w.moveOn()
		n, err := io.Copy(w.ResponseWriter, &io.LimitedReader{R: src, N: progressChunk})
		total += n
		if err != nil || n < progressChunk {
			return total, err
		}
	}
}

func (w *progressWriter) Flush() {
	w.moveOn()
	_ = w.rc.Flush()
}

// Hijack is the server's: a Lane's Take (Keep) takes the connection of a
// whole answer, through writers that may look for Hijack on the writer
// beneath them alone.
func (w *progressWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) { return w.rc.Hijack() }

// Unwrap lets http.ResponseController reach the server's writer.
func (w *progressWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
