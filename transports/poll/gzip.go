package poll

import (
	"sync"

	"github.com/klauspost/compress/gzip"

	"github.com/chatd/chatd/transports/httpx"
)

// gzipLevel trades ratio for CPU: chat answers are short JSON with
// repeated keys, rooms and names, which the fastest level compresses 2×
// at 4 events, 3.4× at 16 and 6× at 64, for 12µs, 17µs and 26µs an
// answer (BenchmarkWriteAnswer); level 5 gains 5-15% for twice the CPU,
// and the standard library's level 1 takes twice as long.
const gzipLevel = gzip.BestSpeed

// gzipOverhead is the gzip header and trailer, and room for a stored
// block's framing, beyond the deflated bytes.
const gzipOverhead = 64

// gzips holds compressors between answers: one is busy only while an
// answer is compressed, so a held poll keeps none.
var gzips = sync.Pool{New: func() any {
	z, _ := gzip.NewWriterLevel(nil, gzipLevel) // the level is valid
	return z
}}

// appendGzip appends src, gzipped, to dst.
func appendGzip(dst, src []byte) []byte {
	out := &httpx.SliceWriter{B: dst}
	z := gzips.Get().(*gzip.Writer)
	z.Reset(out)
	_, _ = z.Write(src) // SliceWriter never fails
	_ = z.Close()
	z.Reset(nil) // drop the reference to out
	gzips.Put(z)
	return out.B
}
