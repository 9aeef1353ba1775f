package poll

import (
	"math/bits"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/httpx"
)

// Header values shared by every answer. net/http only reads them, and a
// middleware that adds to one appends past its length, into a new array.
var (
	headerJSON    = []string{"application/json"}
	headerNoStore = []string{"no-store"}
	headerGzip    = []string{"gzip"}
	headerOctets  = []string{"application/octet-stream"}
	headerVary    = []string{"Accept-Encoding"}
)

// bodies holds answer buffers: an answer is built in one, written, and the
// buffer goes back, so a poll keeps no buffer once it has answered.
var bodies = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBody bounds the buffers kept in bodies; a larger one (a full
// answer of long messages) is left to the collector.
const maxPooledBody = 256 << 10

// getBody returns an empty pooled buffer with room for size bytes.
func getBody(size int) *[]byte {
	b := bodies.Get().(*[]byte)
	if cap(*b) < size {
		*b = make([]byte, 0, size)
	}
	return b
}

func putBody(b *[]byte) {
	if cap(*b) > maxPooledBody {
		return
	}
	*b = (*b)[:0]
	bodies.Put(b)
}

// answer is one poll answer's body, in pooled buffers until release.
type answer struct {
	out      []byte     // the body as it goes on the wire
	gzipped  bool       // out is gzipped
	deflated bool       // out is a chunk of a deflated stream (deflate.go)
	bufs     [2]*[]byte // pooled: the JSON, and its gzipped or deflated form
}

// buildAnswer builds {"events":[…],"cursor":"…","control":{…},"control_tag":"…"}
// from the encoded frames, gzipped when the user's answers may be
// compressed, the client accepts gzip (acceptGzip, which implies
// Config.Compress) and the answer is worth it. The control envelope is
// read now, so it is never older than one among the events. known is the
// tag of the control the client has (control_tag=, see controlTag): when
// it is the one now, and no control envelope is among the events, the
// answer leaves control and its tag out. A poll that asks for a deflated
// stream (mode, deflate=) gets its answer deflated as the next chunk of
// the session's stream z, whatever its size, when the user's answers may
// be compressed; otherwise, or without deflate=, z's stream ends there.
// advanced: the answer moves the poll's position (moved, appendDeflated).
func (h *Handler) buildAnswer(user string, frames []core.Frame, cursor string, acceptGzip bool, known uint64, mode deflateMode, z *zstream, advanced bool) answer {
	control, tag := h.control(user)
	if tag != 0 && tag == known && !hasControl(frames) {
		control, tag = nil, 0
	}
	body := getBody(answerSize(frames, cursor, control, tag))
	*body = appendAnswer(*body, frames, cursor, control, tag)
	a := answer{out: *body, bufs: [2]*[]byte{body}}
	compress := h.cfg.Compress != nil && (acceptGzip || mode != deflateOff) && h.cfg.Compress(user)
	if mode != deflateOff && compress {
		d := getBody(len(a.out)/2 + gzipOverhead)
		*d = appendDeflated(*d, z, mode, a.out, advanced)
		a.out, a.deflated, a.bufs[1] = *d, true, d
		if a.out[0] == 'c' {
			h.deflatedOn.Add(1)
		} else {
			h.deflatedNew.Add(1)
		}
		return a
	}
	z.drop()
	if acceptGzip && len(a.out) >= h.cfg.CompressMin && compress {
		z := getBody(len(a.out)/2 + gzipOverhead)
		*z = appendGzip(*z, a.out)
		a.out, a.gzipped, a.bufs[1] = *z, true, z
	}
	return a
}

// control returns user's control envelope, encoded, and its tag (nil
// and 0: none), from Config.ControlWire.
func (h *Handler) control(user string) ([]byte, uint64) {
	if h.cfg.ControlWire == nil {
		return nil, 0
	}
	return h.cfg.ControlWire(user)
}

// hasControl reports whether a control envelope is among frames. A client
// applies those in order and then the answer's own control, so an answer
// that carries one also carries the control now, to end on it.
func hasControl(frames []core.Frame) bool {
	for i := range frames {
		if frames[i].Type == protocol.TypeControl {
			return true
		}
	}
	return false
}

// controlTag reads the control_tag= of r's query: the tag of the control
// the client has, from the last answer that carried one. 0: none, or not
// a tag this server writes (16 hex digits at most).
func controlTag(r *http.Request) uint64 {
	v := httpx.QueryValue(r.URL.RawQuery, "control_tag")
	if v == "" || len(v) > 16 {
		return 0
	}
	t, err := strconv.ParseUint(v, 16, 64)
	if err != nil {
		return 0
	}
	return t
}

// release gives the answer's buffers back.
func (a answer) release() {
	for _, b := range a.bufs {
		if b != nil {
			putBody(b)
		}
	}
}

// answerFor builds the answer to poll r: the CPU's part (the JSON, the
// gzip or deflate), which ServeHTTP does under its slot. mode is r's
// deflate= (deflateOf); advanced: the answer moves the poll's position
// (moved).
func (h *Handler) answerFor(r *http.Request, user string, frames []core.Frame, cursor string, mode deflateMode, z *zstream, advanced bool) answer {
	return h.buildAnswer(user, frames, cursor, h.cfg.Compress != nil && acceptsGzip(r), controlTag(r), mode, z, advanced)
}

// writeBuilt writes a, built by answerFor, to w with its exact
// Content-Length and releases it. Through net/http the write may wait
// for a slow client.
func (h *Handler) writeBuilt(w http.ResponseWriter, a answer) {
	defer a.release()
	hdr := w.Header()
	hdr["Content-Type"] = headerJSON
	if a.deflated {
		hdr["Content-Type"] = headerOctets
	}
	hdr["Cache-Control"] = headerNoStore
	if a.gzipped {
		hdr["Content-Encoding"] = headerGzip
		hdr["Vary"] = append(hdr["Vary"], headerVary...) // after the middleware's (Origin)
	}
	hdr["Content-Length"] = []string{strconv.Itoa(len(a.out))}
	_, _ = w.Write(a.out)
}

// answerSize is the exact length of the answer appendAnswer builds.
func answerSize(frames []core.Frame, cursor string, control []byte, tag uint64) int {
	size := len(`{"events":[],"cursor":""}`) + len(cursor)
	if control != nil {
		size += len(`,"control":`) + len(control)
	}
	if tag != 0 {
		size += len(`,"control_tag":""`) + tagLen(tag)
	}
	for _, f := range frames {
		size += len(f.Data) + 1
	}
	return size
}

// tagLen is the length of tag in hex.
func tagLen(tag uint64) int { return max(1, (bits.Len64(tag)+3)/4) }

// appendAnswer appends the answer's JSON to b.
func appendAnswer(b []byte, frames []core.Frame, cursor string, control []byte, tag uint64) []byte {
	b = append(b, `{"events":[`...)
	for i, f := range frames {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, f.Data...)
	}
	b = append(b, `],"cursor":"`...)
	b = append(b, cursor...) // base64url: nothing to escape
	b = append(b, '"')
	if control != nil {
		b = append(b, `,"control":`...)
		b = append(b, control...)
	}
	if tag != 0 {
		b = append(b, `,"control_tag":"`...)
		b = strconv.AppendUint(b, tag, 16)
		b = append(b, '"')
	}
	return append(b, '}')
}

// acceptsGzip reports whether r's Accept-Encoding takes gzip (or x-gzip)
// with a q-value above zero.
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			if c := strings.TrimSpace(coding); strings.EqualFold(c, "gzip") || strings.EqualFold(c, "x-gzip") {
				return !zeroQ(params)
			}
		}
	}
	return false
}

// zeroQ reports whether an Accept-Encoding entry's parameters say q=0.
func zeroQ(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(k), "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return err == nil && q == 0
		}
	}
	return false
}
