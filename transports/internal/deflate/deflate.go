// Package deflate compresses a stream of messages one message at a time,
// each against the stream's last bytes, the way SSE's gzip stream and
// WebSocket's permessage-deflate with context takeover both work: the
// client keeps one inflater for the whole stream, so a message may refer
// back to what came before it.
//
// A stream keeps no compressor of its own. Each message is deflated by
// one lent from a pool and reset with the stream's history (HistSize
// bytes at most), and ends on a byte boundary (a sync flush) so that the
// client can decode it at once. A compressor per stream would keep its
// window and hash tables (0.8 to 1.2 MiB, whatever the level) for as
// long as the stream lives; the history costs 2 KiB, and none while the
// stream is idle (Release).
package deflate

import (
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
)

// HistSize is how much of a stream's recent text a message may refer
// back to. Chat envelopes repeat their keys, rooms and names from one
// event to the next, so a little history is most of the gain: with 2 KiB
// a lone chat message compresses about 2.4×, with none it hardly does.
const HistSize = 2 << 10

var histories = sync.Pool{New: func() any { b := make([]byte, 0, HistSize); return &b }}

// deflaters are compressors at BestSpeed, lent for one message and reset
// with the stream's history first. klauspost's StatelessDeflate, used
// before, copies the history and the message into a new buffer on every
// call: at 50k messages a second that was 70% of the node's allocation,
// and a broadcast to 5,000 compressed SSE streams had p99 322-399 ms and
// an RSS peak of 434-675 MB against 151-198 ms and 248-255 MB with these
// (ratio 3.1-3.3× against 3.4-3.6×; about 1.4 µs more CPU a message,
// which the collector's savings repay).
var deflaters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed) // BestSpeed is a valid level
	return w
}}

// History is what one stream's next message may refer back to: the last
// HistSize bytes it deflated, in a pooled buffer, or nothing. The zero
// value is an empty history. Owned by the stream's writer.
type History struct {
	b *[]byte // nil: empty, and holding no memory
}

// Deflate writes p to w deflated against the history, ending in a sync
// flush (an empty stored block: 00 00 ff ff), and adds p to the history.
// w's errors are not reported: callers write to memory.
func (h *History) Deflate(w io.Writer, p []byte) {
	var dict []byte
	if h.b != nil {
		dict = *h.b
	}
	z := deflaters.Get().(*flate.Writer)
	z.ResetDict(w, dict)
	_, _ = z.Write(p)
	_ = z.Flush()         // a sync flush: the message ends on a byte boundary
	z.ResetDict(nil, nil) // keeps neither the message nor the history
	deflaters.Put(z)
	h.Remember(p)
}

// Remember adds p to the history without deflating it: for a message
// deflated elsewhere against the same history (see transports/ws).
func (h *History) Remember(p []byte) {
	if h.b == nil {
		h.b = histories.Get().(*[]byte)
	}
	b := *h.b
	switch {
	case len(p) >= HistSize:
		b = append(b[:0], p[len(p)-HistSize:]...)
	case len(b)+len(p) > HistSize:
		keep := HistSize - len(p)
		b = append(b[:copy(b, b[len(b)-keep:])], p...)
	default:
		b = append(b, p...)
	}
	*h.b = b
}

// Release empties the history and gives its buffer back to the pool: the
// next message is deflated on its own, which the client decodes the same
// (its window still holds what came before; the message just does not
// refer to it).
func (h *History) Release() {
	if h.b != nil {
		*h.b = (*h.b)[:0]
		histories.Put(h.b)
		h.b = nil
	}
}

// Len is the number of bytes the history holds; 0 once released.
func (h *History) Len() int {
	if h.b == nil {
		return 0
	}
	return len(*h.b)
}

// Held reports whether the history holds a pooled buffer.
func (h *History) Held() bool { return h.b != nil }
