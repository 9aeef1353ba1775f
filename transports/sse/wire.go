package sse

import (
	"net"
	"net/http"
	"time"

	"github.com/chatd/chatd/transports/httpx"
)

// wire is where a stream's bytes go. send and end are called by one
// goroutine at a time: the session's writer, or the handler before the
// writer may start.
type wire interface {
	// send writes p and flushes it, within timeout.
	send(p []byte, timeout time.Duration) error
	// end ends the response after the last send.
	end(timeout time.Duration)
}

// rawWire is a hijacked HTTP/1 connection. net/http wrote the response
// head (no chunking: the body ends when the connection closes, as the SSE
// specification recommends); from then on the stream owns the connection
// and costs no more than it: no request goroutine, no net/http buffers.
// A goroutine of the stream's own reads it, to learn when the client
// goes (see conn.watch).
type rawWire struct {
	nc    net.Conn        // slots, or what it wraps; static after construction.
	slots *httpx.SlotConn // Static after construction.
}

func (w rawWire) send(p []byte, timeout time.Duration) error {
	_ = w.nc.SetWriteDeadline(time.Now().Add(timeout))
	_, err := w.nc.Write(p)
	return err
}

func (w rawWire) end(time.Duration) { _ = w.nc.Close() }

// rwWire is the ResponseWriter, where the connection cannot be taken
// over (HTTP/2). The request's goroutine waits for the stream's end.
type rwWire struct {
	w  http.ResponseWriter      // Static after construction.
	rc *http.ResponseController // Static after construction.
}

// send clears the write deadline after the flush: on HTTP/2 a deadline
// that passes resets the stream even with nothing to write.
func (w rwWire) send(p []byte, timeout time.Duration) error {
	_ = w.rc.SetWriteDeadline(time.Now().Add(timeout))
	_, err := w.w.Write(p)
	if err == nil {
		err = w.rc.Flush()
	}
	if err == nil {
		_ = w.rc.SetWriteDeadline(time.Time{})
	}
	return err
}

// end bounds what net/http writes once the handler returns.
func (w rwWire) end(timeout time.Duration) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(timeout))
}

// openWire answers 200 with the stream's headers and takes the connection
// over if it can. HTTP/1 streams are sent without chunking and closed at
// their end, so a hijacked and a plain one look the same to the client.
func openWire(w http.ResponseWriter, r *http.Request, gz, vary bool) wire {
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no")
	if vary {
		hd.Add("Vary", "Accept-Encoding")
	}
	if gz {
		hd.Set("Content-Encoding", "gzip")
	}
	hd.Del("Content-Length")
	if r.ProtoMajor == 1 {
		hd.Set("Transfer-Encoding", "identity") // net/http: no chunks, close at the end
	}
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if r.ProtoMajor == 1 {
		// Hijack sends the head that WriteHeader buffered.
		if nc, _, err := rc.Hijack(); err == nil {
			sc := httpx.NewSlotConn(nc)
			return rawWire{nc: sc, slots: sc}
		}
	}
	return rwWire{w: w, rc: rc}
}
