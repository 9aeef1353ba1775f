package wsinflate

import (
	"bufio"
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"testing"
)

// deflated returns msg as a server sends it with context takeover: raw
// deflate against dict, without the sync flush's tail, in one frame.
func deflated(t testing.TB, dict, msg []byte) []byte {
	var b bytes.Buffer
	w, err := flate.NewWriterDict(&b, flate.BestSpeed, dict)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(msg)
	_ = w.Flush()
	p := bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
	return append([]byte{0xc1, byte(len(p))}, p...) // short payloads only
}

// reader returns a connection past its answer, reading wire.
func reader(wire []byte) *inflatingConn {
	return &inflatingConn{in: bufio.NewReader(bytes.NewReader(wire)), answered: true, takeover: true}
}

// Messages deflated against the ones before come out as plain frames
// with the same text; plain and control frames pass as they came.
func TestReadFrames(t *testing.T) {
	a, b := []byte(`{"type":"message","text":"hello there"}`), []byte(`{"type":"message","text":"hello again"}`)
	var wire []byte
	wire = append(wire, deflated(t, nil, a)...)
	wire = append(wire, 0x89, 0) // a ping
	wire = append(wire, 0x81, byte(len(b)))
	wire = append(wire, b...) // plain: not in the window
	wire = append(wire, deflated(t, a, b)...)
	c := reader(wire)
	got, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	var want []byte
	want = append(append(want, 0x81, byte(len(a))), a...)
	want = append(want, 0x89, 0)
	want = append(append(want, 0x81, byte(len(b))), b...)
	want = append(append(want, 0x81, byte(len(b))), b...)
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x\nwant % x", got, want)
	}
}

// Whatever a server sends, reading it ends in an error or EOF, never a
// panic, and no frame handed on is larger than the bound.
func FuzzReadFrames(f *testing.F) {
	f.Add(deflated(f, nil, []byte(`{"type":"message","text":"hello"}`)))
	f.Add([]byte{0x81, 2, '{', '}', 0x89, 0})
	f.Add([]byte{0xc1, 127, 0, 0, 0, 0, 0, 0, 1, 0})
	f.Add([]byte{0xc1, 126, 0xff, 0xff, 1, 2, 3})
	f.Fuzz(func(t *testing.T, wire []byte) {
		c := reader(wire)
		buf := make([]byte, 4096)
		for range 1 << 12 {
			if _, err := c.Read(buf); err != nil {
				return
			}
			if len(c.out)-c.off > maxMessage+16 {
				t.Fatalf("%d bytes pending", len(c.out))
			}
		}
	})
}
