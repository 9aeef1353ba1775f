package inflate_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/chatd/chatd/transports/inflate"
	"github.com/chatd/chatd/transports/internal/deflate"
)

// A stream of chat answers deflated against the server's history (as
// the poll handler deflates them) inflates back, each against the window
// of those before it, and later chunks are smaller than the first for
// referring back.
func TestRoundTrip(t *testing.T) {
	var h deflate.History
	defer h.Release()
	var s inflate.Stream
	var sizes []int
	for i := range 200 {
		plain := fmt.Appendf(nil, `{"events":[{"type":"message","room":"general","id":"m-%d","text":"hello number %d, how are you","seq":%d,"from":"alice","name":"Alice","ts":%d}],"cursor":"AQdnZW5lcmFs%04d"}`, i, i, i+1, 1796677156900+i, i)
		var z bytes.Buffer
		h.Deflate(&z, plain)
		sizes = append(sizes, z.Len())
		got, err := s.Inflate([]byte("prefix"), z.Bytes(), len(plain))
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if !bytes.Equal(got, append([]byte("prefix"), plain...)) {
			t.Fatalf("chunk %d: got %q, want %q", i, got, plain)
		}
	}
	if sizes[len(sizes)-1]*2 > sizes[0] {
		t.Fatalf("chunk sizes %d first, %d last: the window did not help", sizes[0], sizes[len(sizes)-1])
	}
	if s.Len() > inflate.WindowSize {
		t.Fatalf("window %d bytes, want at most %d", s.Len(), inflate.WindowSize)
	}
}

// A chunk that announces the wrong size, or that refers to a window the
// stream does not have, is ErrCorrupt and resets the stream.
func TestCorrupt(t *testing.T) {
	var h deflate.History
	defer h.Release()
	first := []byte(`{"events":[{"type":"message","room":"general","id":"m-1","text":"a first message, long enough to be worth deflating","seq":1,"from":"alice","name":"Alice","ts":1796677156900}],"cursor":"AQdnZW5lcmFsAQF"}`)
	second := first // all of it a reference back
	var z1, z2 bytes.Buffer
	h.Deflate(&z1, first)
	h.Deflate(&z2, second)
	for _, tc := range []struct {
		name  string
		chunk []byte
		size  int
	}{
		{"too short", z1.Bytes(), len(first) + 1},
		{"too long", z1.Bytes(), len(first) - 1},
		{"negative", z1.Bytes(), -1},
		{"not deflate", []byte("{\"events\":[]}"), 13},
		{"trailing bytes", append(append([]byte(nil), z1.Bytes()...), 1, 2, 3), len(first)},
		{"cut", z1.Bytes()[:z1.Len()-4], len(first)},
		{"no window", z2.Bytes(), len(second)},
	} {
		var s inflate.Stream
		if _, err := s.Inflate(nil, tc.chunk, tc.size); !errors.Is(err, inflate.ErrCorrupt) {
			t.Fatalf("%s: %v, want ErrCorrupt", tc.name, err)
		}
		if s.Len() != 0 {
			t.Fatalf("%s: window of %d bytes kept after a corrupt chunk", tc.name, s.Len())
		}
	}
	// In order, both go.
	var s inflate.Stream
	if _, err := s.Inflate(nil, z1.Bytes(), len(first)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Inflate(nil, z2.Bytes(), len(second)); err != nil || !bytes.Equal(got, second) {
		t.Fatalf("second: %q, %v", got, err)
	}
}

// FuzzInflate: any chunk, any size within bounds, never panics, and what
// it returns is either ErrCorrupt with a reset window or exactly size
// bytes.
func FuzzInflate(f *testing.F) {
	var h deflate.History
	var z bytes.Buffer
	h.Deflate(&z, []byte(`{"events":[],"cursor":"AQ"}`))
	f.Add(z.Bytes(), 27, []byte("window"))
	f.Add([]byte{0, 0, 0, 0xff, 0xff}, 0, []byte(nil))
	f.Add([]byte{0, 3, 0, 0xfc, 0xff, 'a', 'b', 'c', 0, 0, 0, 0xff, 0xff}, 3, []byte(nil))
	f.Fuzz(func(t *testing.T, chunk []byte, size int, prior []byte) {
		if size > 1<<20 || size < -1 {
			return
		}
		var s inflate.Stream
		if len(prior) > 0 {
			var hz bytes.Buffer
			var ph deflate.History
			ph.Deflate(&hz, prior)
			ph.Release()
			if _, err := s.Inflate(nil, hz.Bytes(), len(prior)); err != nil {
				t.Fatalf("a good chunk: %v", err)
			}
		}
		got, err := s.Inflate([]byte("p"), chunk, size)
		switch {
		case err != nil:
			if !errors.Is(err, inflate.ErrCorrupt) || s.Len() != 0 || string(got) != "p" {
				t.Fatalf("%v, window %d, out %q", err, s.Len(), got)
			}
		case len(got) != 1+size:
			t.Fatalf("got %d bytes, want %d", len(got)-1, size)
		}
	})
}
