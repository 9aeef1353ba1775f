package httpx

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
)

// Keep is middleware that hands the connection of each request next
// answers in full, with a Content-Length, to the lane (Take) once the
// answer is out, so that a kept-alive connection waits for its next
// request on the lane rather than on net/http's goroutine: a browser's
// page connection, or a client's REST connection, idle between calls.
// There the lane serves its own routes (the poll, and the REST reads the
// server names) and gives any other request back to net/http untouched,
// to be taken again after its answer if that is whole.
//
// Measured on the 2-core Intel Xeon with chatd's routes, 4,000
// connections idle after one GET /v1/negotiate each: 14.6 KB of the
// node's RSS a connection on the lane against 21.9 KB on net/http (heap
// 5.6 against 10.6 KB, stacks 4.1 against 8.2 KB): net/http keeps the
// goroutine's stack as the handler grew it and two 4 KiB buffers. A
// negotiate on a kept connection, round trip: 81-85 µs on the lane
// against 97-102 µs through net/http. A request the lane gives back
// costs a give-back and a take more than net/http alone would (about
// 30 µs).
//
// Only a request Take would take is watched (see Adoptable): plain
// HTTP/1.1 over TCP, with no body, not a HEAD. An answer is taken
// only if the handler neither took the connection itself (Hijack) nor
// wrote a body of another length than its Content-Length; any other
// answer (chunked, no body, a stream) stays with net/http as before.
// Keep costs a request it watches one small wrapper of the
// ResponseWriter; a nil Lane's Keep is next.
func (l *Lane) Keep(next http.Handler) http.Handler {
	if l == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if InLane(r) || !l.Adoptable(r) {
			next.ServeHTTP(w, r)
			return
		}
		kw := keepWriter{ResponseWriter: w}
		next.ServeHTTP(&kw, r)
		if kw.hijacked || !kw.whole() {
			return
		}
		// Counted before Take writes the answer, so that a client that has
		// it finds it counted; taken back if Take declines.
		l.kept.Add(1)
		if !l.Take(w, r) {
			l.kept.Add(^uint64(0))
		}
	})
}

// Kept returns how many connections Keep has handed to the lane.
func (l *Lane) Kept() uint64 { return l.kept.Load() }

// keepWriter watches an answer for Keep: its status, the body bytes
// written, and whether the handler took the connection.
type keepWriter struct {
	http.ResponseWriter
	code     int   // the final status written; 0: none yet
	n        int64 // body bytes written
	hijacked bool
}

func (k *keepWriter) WriteHeader(code int) {
	if k.code == 0 && code >= 200 {
		k.code = code
	}
	k.ResponseWriter.WriteHeader(code)
}

func (k *keepWriter) Write(p []byte) (int, error) {
	if k.code == 0 {
		k.code = http.StatusOK
	}
	n, err := k.ResponseWriter.Write(p)
	k.n += int64(n)
	return n, err
}

// ReadFrom keeps the server's own (sendfile where it can).
func (k *keepWriter) ReadFrom(src io.Reader) (int64, error) {
	if k.code == 0 {
		k.code = http.StatusOK
	}
	n, err := io.Copy(k.ResponseWriter, src)
	k.n += n
	return n, err
}

func (k *keepWriter) FlushError() error {
	if k.code == 0 {
		k.code = http.StatusOK
	}
	return http.NewResponseController(k.ResponseWriter).Flush()
}

func (k *keepWriter) Flush() { _ = k.FlushError() }

func (k *keepWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	k.hijacked = true
	return http.NewResponseController(k.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach the server's writer for the
// rest (deadlines, full duplex).
func (k *keepWriter) Unwrap() http.ResponseWriter { return k.ResponseWriter }

// whole reports whether the answer was a body of exactly its
// Content-Length, as Take needs: a shorter one net/http ends by closing
// the connection, which a take would leave open under a client still
// waiting for the rest.
func (k *keepWriter) whole() bool {
	if k.code < 200 || k.code == http.StatusNoContent || k.code == http.StatusNotModified {
		return false
	}
	cl := k.Header().Get("Content-Length")
	if cl == "" {
		return false
	}
	n, err := strconv.ParseInt(cl, 10, 64)
	return err == nil && n == k.n
}
