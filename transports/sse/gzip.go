package sse

import (
	"encoding/binary"
	"hash/crc32"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"
)

// gzipHeader opens every compressed stream: deflate, no name, no time.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}

// histSize is how much of a stream's recent text a batch may refer back
// to. Chat envelopes repeat their keys, rooms and names from one event to
// the next, so a little history is most of the gain: with 2 KiB a lone
// chat message compresses about 2.4×, with none it does not compress.
const histSize = 2 << 10

var histories = sync.Pool{New: func() any { b := make([]byte, 0, histSize); return &b }}

// deflaters are compressors at BestSpeed, lent for one batch and reset
// with the stream's history first. klauspost's StatelessDeflate, used
// before, copies the history and the batch into a new buffer on every
// call: at 50k batches a second that was 70% of the node's allocation,
// and a broadcast to 5,000 compressed streams had p99 322-399 ms and an
// RSS peak of 434-675 MB against 151-198 ms and 248-255 MB with these
// (ratio 3.1-3.3× against 3.4-3.6×; about 1.4 µs more CPU a batch, which
// the collector's savings repay).
var deflaters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed) // BestSpeed is a valid level
	return w
}}

// gzipStream is one stream's gzip member, written a batch at a time. It
// keeps no compressor between batches: each batch is deflated by one
// lent from deflaters, reset with at most histSize bytes of what the
// stream sent before, and ends on a byte boundary (a sync flush) so the
// client can decode it at once. A gzip.Writer per stream would keep its
// window and hash tables (0.8 to 1.2 MiB, whatever the level) for as
// long as the stream lives. Owned by the session's writer.
type gzipStream struct {
	hist *[]byte // the stream's last bytes; nil while the stream is idle
	crc  uint32  // of everything sent so far
	size uint32  // bytes sent so far, modulo 2^32
}

// appendBatch appends plain to b.out, deflated if compress, else stored.
// idle says the batch is only heartbeats: the history goes back to the
// pool and the stream holds no memory for it until it is busy again.
func (z *gzipStream) appendBatch(b *batch, compress, idle bool) {
	z.crc = crc32.Update(z.crc, crc32.IEEETable, b.plain)
	z.size += uint32(len(b.plain))
	if !compress {
		appendStored(b, b.plain)
		z.release()
		return
	}
	var dict []byte
	if z.hist != nil {
		dict = *z.hist
	}
	w := deflaters.Get().(*flate.Writer)
	w.ResetDict(b, dict)
	_, _ = w.Write(b.plain) // b.Write never fails
	_ = w.Flush()           // a sync flush: the batch ends on a byte boundary
	w.ResetDict(nil, nil)   // keeps neither the batch nor the history
	deflaters.Put(w)
	if idle {
		z.release()
		return
	}
	z.remember(b.plain)
}

// remember keeps the last histSize bytes of the stream.
func (z *gzipStream) remember(p []byte) {
	if z.hist == nil {
		z.hist = histories.Get().(*[]byte)
	}
	h := *z.hist
	switch {
	case len(p) >= histSize:
		h = append(h[:0], p[len(p)-histSize:]...)
	case len(h)+len(p) > histSize:
		keep := histSize - len(p)
		h = append(h[:copy(h, h[len(h)-keep:])], p...)
	default:
		h = append(h, p...)
	}
	*z.hist = h
}

// release gives the history back to the pool.
func (z *gzipStream) release() {
	if z.hist != nil {
		*z.hist = (*z.hist)[:0]
		histories.Put(z.hist)
		z.hist = nil
	}
}

// appendEnd appends the final deflate block and the gzip trailer, which
// let the client tell a complete stream from a cut one.
func (z *gzipStream) appendEnd(b *batch) {
	_ = flate.StatelessDeflate(b, nil, true, nil)
	b.out = binary.LittleEndian.AppendUint32(b.out, z.crc)
	b.out = binary.LittleEndian.AppendUint32(b.out, z.size)
	z.release()
}

// appendStored appends p as stored (uncompressed) deflate blocks: the
// gzip stream goes on, at no compression cost, while compression is off.
// An empty stored block ends the batch, as a sync flush does: decoders
// such as Go's hand out what they hold on seeing it.
func appendStored(b *batch, p []byte) {
	for len(p) > 0 {
		n := min(len(p), 0xffff)
		b.out = append(b.out, 0, byte(n), byte(n>>8), ^byte(n), ^byte(n>>8))
		b.out = append(b.out, p[:n]...)
		p = p[n:]
	}
	b.out = append(b.out, 0, 0, 0, 0xff, 0xff)
}

// acceptsGzip reports whether r's Accept-Encoding takes gzip.
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			if c := strings.TrimSpace(coding); !strings.EqualFold(c, "gzip") && !strings.EqualFold(c, "x-gzip") {
				continue
			}
			return !zeroQ(params)
		}
	}
	return false
}

// zeroQ reports whether params say q=0, which refuses the coding.
func zeroQ(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return err == nil && q == 0
		}
	}
	return false
}
