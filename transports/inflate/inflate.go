// Package inflate reads a stream of deflate chunks that each end on a
// sync flush, each of which may refer back into what the chunks before
// it held: the body of a poll answer asked for with deflate= (see
// docs/PROTOCOL.md, "Deflated answers"). A Stream is the client's side of
// one such stream: its window, the last WindowSize bytes it inflated.
//
// Each chunk is inflated by a decompressor lent from a pool and reset
// with the window, so a stream keeps its window (up to 32 KiB, once it
// has held that much) and nothing else between chunks.
package inflate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/klauspost/compress/flate"
)

// WindowSize is how far back a chunk may refer: deflate's own window.
// chatd refers back 2 KiB at most; another server may use all of it.
const WindowSize = 32 << 10

// ErrCorrupt reports a chunk that does not inflate to the size it was
// announced with, against the stream's window. The stream is then reset:
// what it held is no longer what the server's next chunk refers to.
var ErrCorrupt = errors.New("inflate: corrupt chunk")

// Stream is one stream's window. The zero value is a stream with an
// empty window, as at its start. A Stream is not safe for concurrent
// use.
type Stream struct {
	win []byte
}

// syncFlush ends every chunk: an empty stored block, so that the chunk
// ends on a byte boundary with all its output given.
var syncFlush = []byte{0, 0, 0xff, 0xff}

var readers sync.Pool // of io.ReadCloser from flate.NewReader, each a flate.Resetter

// Reset empties the window: the next chunk starts a stream.
func (s *Stream) Reset() { s.win = s.win[:0] }

// Len is how many bytes the window holds.
func (s *Stream) Len() int { return len(s.win) }

// Inflate inflates chunk, which must hold exactly size bytes once
// inflated against the window and end on a sync flush (00 00 ff ff),
// appends them to dst and returns it, and adds them to the window. A
// chunk that does not (too little, too much, not deflate, no sync flush
// at its end) is ErrCorrupt, and resets the stream. size is the
// caller's to bound: Inflate allocates room for it.
func (s *Stream) Inflate(dst, chunk []byte, size int) ([]byte, error) {
	if size < 0 || !bytes.HasSuffix(chunk, syncFlush) {
		s.Reset()
		return dst, fmt.Errorf("%w: size %d, or no sync flush at its end", ErrCorrupt, size)
	}
	src := bytes.NewReader(chunk)
	var r io.ReadCloser
	if v := readers.Get(); v != nil {
		r = v.(io.ReadCloser)
		_ = r.(flate.Resetter).Reset(src, s.win) // never fails
	} else {
		r = flate.NewReaderDict(src, s.win)
	}
	defer readers.Put(r)
	start := len(dst)
	dst = slices.Grow(dst, size)[:start+size]
	if _, err := io.ReadFull(r, dst[start:]); err != nil {
		s.Reset()
		return dst[:start], fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	// The chunk must end there: a sync flush leaves the stream open, so
	// the decompressor finds the input's end (io.ErrUnexpectedEOF), or
	// a final block ends it (io.EOF); more output is a lie about size.
	var one [1]byte
	if n, err := r.Read(one[:]); n > 0 || (err != io.EOF && err != io.ErrUnexpectedEOF) {
		s.Reset()
		return dst[:start], fmt.Errorf("%w: more than %d bytes, or bad input (%v)", ErrCorrupt, size, err)
	}
	if src.Len() > 0 {
		s.Reset()
		return dst[:start], fmt.Errorf("%w: %d bytes after its end", ErrCorrupt, src.Len())
	}
	s.remember(dst[start:])
	return dst, nil
}

// remember adds p to the window, keeping its last WindowSize bytes.
func (s *Stream) remember(p []byte) {
	if len(p) >= WindowSize {
		s.win = append(s.win[:0], p[len(p)-WindowSize:]...)
		return
	}
	if over := len(s.win) + len(p) - WindowSize; over > 0 {
		s.win = s.win[:copy(s.win, s.win[over:])]
	}
	s.win = append(s.win, p...)
}
