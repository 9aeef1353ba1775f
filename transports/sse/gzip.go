package sse

import (
	"encoding/binary"
	"hash/crc32"
	"net/http"
	"strconv"
	"strings"

	"github.com/klauspost/compress/flate"

	"github.com/chatd/chatd/transports/internal/deflate"
)

// gzipHeader opens every compressed stream: deflate, no name, no time.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}

// gzipStream is one stream's gzip member, written a batch at a time, each
// batch deflated against the stream's recent text (deflate.History) and
// ending on a byte boundary so the client can decode it at once. A
// gzip.Writer per stream would keep its window and hash tables (0.8 to
// 1.2 MiB, whatever the level) for as long as the stream lives. Owned by
// the session's writer.
type gzipStream struct {
	hist deflate.History
	crc  uint32 // of everything sent so far
	size uint32 // bytes sent so far, modulo 2^32
}

// appendBatch appends plain to b.out, deflated if compress, else stored.
// idle says the batch is only heartbeats: the history goes back to the
// pool and the stream holds no memory for it until it is busy again.
func (z *gzipStream) appendBatch(b *batch, compress, idle bool) {
	z.crc = crc32.Update(z.crc, crc32.IEEETable, b.plain)
	z.size += uint32(len(b.plain))
	if !compress {
		// The client's window takes stored bytes too, but the history
		// would have to follow them: simpler to start afresh.
		appendStored(b, b.plain)
		z.hist.Release()
		return
	}
	z.hist.Deflate(b, b.plain) // b.Write never fails
	if idle {
		z.hist.Release()
	}
}

// appendEnd appends the final deflate block and the gzip trailer, which
// let the client tell a complete stream from a cut one.
func (z *gzipStream) appendEnd(b *batch) {
	_ = flate.StatelessDeflate(b, nil, true, nil)
	b.out = binary.LittleEndian.AppendUint32(b.out, z.crc)
	b.out = binary.LittleEndian.AppendUint32(b.out, z.size)
	z.hist.Release()
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
