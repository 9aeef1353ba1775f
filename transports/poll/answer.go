package poll

import (
	"maps"
	"math/bits"
	"net/http"
	"reflect"
	"slices"
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
	out     []byte     // the body as it goes on the wire
	gzipped bool       // out is gzipped
	bufs    [2]*[]byte // pooled: the JSON, and its gzipped form
}

// buildAnswer builds {"events":[…],"cursor":"…","control":{…},"control_tag":"…"}
// from the encoded frames, gzipped when the user's answers may be
// compressed, the client accepts gzip (acceptGzip, which implies
// Config.Compress) and the answer is worth it. The control envelope is
// read now, so it is never older than one among the events. known is the
// tag of the control the client has (control_tag=, see controlTag): when
// it is the one now, and no control envelope is among the events, the
// answer leaves control and its tag out.
func (h *Handler) buildAnswer(user string, frames []core.Frame, cursor string, acceptGzip bool, known uint64) answer {
	control, tag := h.control(user)
	if tag != 0 && tag == known && !hasControl(frames) {
		control, tag = nil, 0
	}
	body := getBody(answerSize(frames, cursor, control, tag))
	*body = appendAnswer(*body, frames, cursor, control, tag)
	a := answer{out: *body, bufs: [2]*[]byte{body}}
	if acceptGzip && len(a.out) >= h.cfg.CompressMin && h.cfg.Compress(user) {
		z := getBody(len(a.out)/2 + gzipOverhead)
		*z = appendGzip(*z, a.out)
		a.out, a.gzipped, a.bufs[1] = *z, true, z
	}
	return a
}

// control returns user's control envelope, encoded, and its tag (0: none
// or untagged): from Config.ControlWire, or Config.Control through the
// handler's cache.
func (h *Handler) control(user string) ([]byte, uint64) {
	if h.cfg.ControlWire != nil {
		return h.cfg.ControlWire(user)
	}
	if h.cfg.Control != nil {
		if e, ok := h.cfg.Control(user); ok {
			return h.controls.encode(&e)
		}
	}
	return nil, 0
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

// writeAnswer writes the answer to w with its exact Content-Length.
func (h *Handler) writeAnswer(w http.ResponseWriter, r *http.Request, user string, frames []core.Frame, cursor string) {
	a := h.buildAnswer(user, frames, cursor, h.cfg.Compress != nil && acceptsGzip(r), controlTag(r))
	defer a.release()
	hdr := w.Header()
	hdr["Content-Type"] = headerJSON
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

// controlCache holds the wire form of the control envelopes answers
// carried last. Every answer carries one, and nearly all are the same
// few offers (one per level and rollout bucket), so a JSON encoding per
// answer would be wasted.
type controlCache struct {
	mu   sync.Mutex
	e    [8]protocol.Envelope // Guarded by mu.
	data [8][]byte            // e[i] encoded; nil: empty slot. Guarded by mu.
	tag  [8]uint64            // data[i]'s protocol.ControlTag. Guarded by mu.
	next int                  // the slot to fill next; guarded by mu.
}

// encode returns protocol.Encode(*e) and its tag (protocol.ControlTag), from the
// cache when an envelope that encodes the same is there. The bytes are
// shared: callers only read them.
func (c *controlCache) encode(e *protocol.Envelope) ([]byte, uint64) {
	if !controlOnly(e) {
		d := protocol.Encode(*e) // not a shape the cache compares
		return d, protocol.ControlTag(d)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, d := range c.data {
		if d != nil && sameControl(&c.e[i], e) {
			return d, c.tag[i]
		}
	}
	d := protocol.Encode(*e)
	// A copy of its own: the caller's maps and slices may change later.
	kept := *e
	kept.Transports = slices.Clone(e.Transports)
	kept.Features = maps.Clone(e.Features)
	if e.Level != nil {
		kept.Level = protocol.Ptr(*e.Level)
	}
	tag := protocol.ControlTag(d)
	c.e[c.next], c.data[c.next], c.tag[c.next] = kept, d, tag
	c.next = (c.next + 1) % len(c.data)
	return d, tag
}

// sameControl reports whether two envelopes that have only control
// fields set encode the same (omitempty drops nil and empty alike).
func sameControl(a, b *protocol.Envelope) bool {
	return a.Type == b.Type && a.PollIntervalMS == b.PollIntervalMS &&
		(a.Level == nil) == (b.Level == nil) && (a.Level == nil || *a.Level == *b.Level) &&
		slices.Equal(a.Transports, b.Transports) && maps.Equal(a.Features, b.Features)
}

// controlIndex marks the fields of protocol.Envelope that sameControl
// compares; nil if one of them is missing, which turns the cache off.
var controlIndex = func() []bool {
	t := reflect.TypeFor[protocol.Envelope]()
	marks := make([]bool, t.NumField())
	for _, name := range []string{"Type", "Level", "Transports", "Features", "PollIntervalMS"} {
		f, ok := t.FieldByName(name)
		if !ok || len(f.Index) != 1 {
			return nil
		}
		marks[f.Index[0]] = true
	}
	return marks
}()

// controlOnly reports whether e has no field set but those sameControl
// compares, whatever fields the envelope gains.
func controlOnly(e *protocol.Envelope) bool {
	if controlIndex == nil {
		return false
	}
	v := reflect.ValueOf(e).Elem()
	for i, control := range controlIndex {
		if !control && !v.Field(i).IsZero() {
			return false
		}
	}
	return true
}
