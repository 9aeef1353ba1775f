package sse

import (
	"testing"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// An event is its id, its data lines, the retry hint when asked, the
// heartbeat comment on a ping, and a blank line.
func TestAppendEvent(t *testing.T) {
	msg := core.Frame{Type: protocol.TypeMessage, Room: "r", Seq: 3, Data: []byte(`{"type":"message","seq":3}`)}
	ping := core.Frame{Type: protocol.TypePing, Data: []byte(`{"type":"ping"}`)}
	for _, tc := range []struct {
		f     core.Frame
		retry string
		want  string
	}{
		{msg, "", "id: C1\ndata: {\"type\":\"message\",\"seq\":3}\n\n"},
		{msg, "2000", "id: C1\ndata: {\"type\":\"message\",\"seq\":3}\nretry: 2000\n\n"},
		{ping, "1500", "id: C1\ndata: {\"type\":\"ping\"}\nretry: 1500\n: heartbeat\n\n"},
	} {
		if got := string(appendEvent(nil, "C1", tc.f, tc.retry)); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

// Data with line breaks (of any kind) becomes one data line per line, so
// a receiver, which joins them with "\n", sees it whole and no line break
// can end the event early or forge a field.
func TestAppendDataLineBreaks(t *testing.T) {
	for in, want := range map[string]string{
		"a":               "data: a\n",
		"a\nb":            "data: a\ndata: b\n",
		"a\r\nb\rc\n":     "data: a\ndata: b\ndata: c\ndata: \n",
		"\nid: x\n\nd":    "data: \ndata: id: x\ndata: \ndata: d\n",
		"":                "data: \n",
		"x\r":             "data: x\ndata: \n",
		"{\"t\":\"\\n\"}": "data: {\"t\":\"\\n\"}\n",
	} {
		if got := string(appendData(nil, []byte(in))); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}

// The data lines of a frame built outside a fan-out are its own; the
// builder copies, so the frame's bytes are never aliased into a batch.
func TestDataLinesCopies(t *testing.T) {
	data := []byte(`{"type":"message"}`)
	lines := dataLines(core.Frame{Type: protocol.TypeMessage, Data: data})
	data[2] = 'X'
	if string(lines) != "data: {\"type\":\"message\"}\n" {
		t.Fatalf("lines changed with the frame's data: %q", lines)
	}
}
