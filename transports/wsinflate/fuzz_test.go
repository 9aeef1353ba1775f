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

// An answer grants takeover when it accepts permessage-deflate without
// server_no_context_takeover, whatever else it says.
func TestGrantsTakeover(t *testing.T) {
	for value, want := range map[string]bool{
		" permessage-deflate; client_no_context_takeover\r\n":                             true, // chatd
		" permessage-deflate\r\n":                                                         true,
		" permessage-deflate; server_max_window_bits=12; client_max_window_bits=10\r\n":   true,
		" permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n": false, // gorilla's
		" permessage-deflate; Server_No_Context_Takeover\r\n":                             false,
		" x-webkit-deflate-frame\r\n":                                                     false,
		" permessage-deflate, permessage-deflate\r\n":                                     false,
	} {
		if got := grantsTakeover(value); got != want {
			t.Errorf("%q: %v, want %v", value, got, want)
		}
	}
}

// A head without end, or with a line without end, is refused once it
// passes the bound, not read on.
func TestAnswerBounded(t *testing.T) {
	for _, head := range [][]byte{
		bytes.Repeat([]byte("X-A: b\r\n"), 4<<10),
		append([]byte("HTTP/1.1 101 Switching Protocols\r\nX-Long: "), bytes.Repeat([]byte("a"), 64<<10)...),
	} {
		c := &inflatingConn{in: bufio.NewReader(bytes.NewReader(head))}
		if _, err := c.Read(make([]byte, 64)); err == nil || errors.Is(err, io.EOF) {
			t.Errorf("head of %d bytes: %v, want a refusal", len(head), err)
		}
	}
}
