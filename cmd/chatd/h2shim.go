package main

import "net/http"

// h2Shim makes HTTP/2 requests look to httpx.BodyLimits as they would on
// HTTP/1, which is all it was written for. It must wrap BodyLimits
// directly. It can go once BodyLimits does both itself:
//
//   - A request without a body gets http.NoBody. Go's HTTP/2 server gives
//     every request a Body of its own, even one whose HEADERS frame ended
//     the stream (ContentLength 0), and BodyLimits takes any Body other
//     than http.NoBody for a body: it would refuse every SSE stream and
//     long poll (400 "this endpoint takes no request body") and read
//     every GET's answer as one given before the body was read.
//   - An answer loses the Connection header. HTTP/2 forbids it, and Go's
//     HTTP/2 server reads "Connection: close" as a request to shut the
//     whole connection down (GOAWAY), every tab's streams on it included.
//     BodyLimits sets it on an answer given before the body was read to
//     its end, which on HTTP/2 is every JSON POST: its body yields io.EOF
//     only on the read after the last byte, and json.Decoder stops before
//     it. HTTP/2 needs no such close: the server resets the stream and
//     discards the rest of the body by itself.
func h2Shim(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			next.ServeHTTP(w, r)
			return
		}
		if r.ContentLength == 0 {
			r.Body = http.NoBody
		}
		next.ServeHTTP(h2Writer{w}, r)
		w.Header().Del("Connection") // for an answer net/http sends after the handler
	})
}

// h2Writer drops the Connection header before the head goes out. Unwrap
// lets http.ResponseController reach the server's writer for deadlines.
type h2Writer struct {
	http.ResponseWriter // Static after construction.
}

func (w h2Writer) WriteHeader(code int) {
	w.Header().Del("Connection")
	w.ResponseWriter.WriteHeader(code)
}

func (w h2Writer) Write(p []byte) (int, error) {
	w.Header().Del("Connection")
	return w.ResponseWriter.Write(p)
}

func (w h2Writer) Flush() {
	w.Header().Del("Connection")
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w h2Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }
