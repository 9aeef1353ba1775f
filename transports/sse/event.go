package sse

import (
	"bytes"
	"sync"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// dataKeyType keys a frame's data lines in core.Frame.Shared.
type dataKeyType struct{}

// dataKey is the one value of dataKeyType.
var dataKey dataKeyType

// dataLines returns f's "data:" lines. A fanned-out frame carries the same
// envelope to every session, so its lines are built once for all of them;
// only the id: line is per session.
func dataLines(f core.Frame) []byte {
	return f.Shared(dataKey, buildDataLines).([]byte)
}

// buildDataLines is dataLines' builder: it copies data, never keeps it.
func buildDataLines(data []byte) any {
	return appendData(make([]byte, 0, len(data)+8), data)
}

// appendData appends data as "data:" lines. An encoded envelope is one
// line; data holding line breaks still arrives whole, since a receiver
// joins a data line per line of it with "\n".
func appendData(b, data []byte) []byte {
	for {
		b = append(b, "data: "...)
		i := bytes.IndexAny(data, "\r\n")
		if i < 0 {
			b = append(b, data...)
			return append(b, '\n')
		}
		b = append(b, data[:i]...)
		b = append(b, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
}

// cursorKeyType keys, in core.Frame.Shared, the cursor of a stream that
// follows only the frame's room.
type cursorKeyType struct{}

var cursorKey cursorKeyType

// cursorAfter returns pos, just moved by f, encoded. Most streams follow
// one room: they all have the same cursor after a broadcast, encoded once.
func cursorAfter(f core.Frame, pos protocol.Cursor) string {
	if len(pos) != 1 {
		return pos.Encode()
	}
	return f.Shared(cursorKey, func([]byte) any {
		return protocol.Cursor{f.Room: f.Seq}.Encode()
	}).(string)
}

// appendEvent appends f as one event: its id (the cursor after it), its
// data lines, a retry hint if asked, a heartbeat comment on a ping, and
// the blank line that ends it.
func appendEvent(b []byte, id string, f core.Frame, retry string) []byte {
	b = append(b, "id: "...)
	b = append(b, id...)
	b = append(b, '\n')
	b = append(b, dataLines(f)...)
	if retry != "" {
		b = append(b, "retry: "...)
		b = append(b, retry...)
		b = append(b, '\n')
	}
	if f.Type == protocol.TypePing {
		b = append(b, ": heartbeat\n"...)
	}
	return append(b, '\n')
}

// batch is the memory one Write needs, borrowed from batches for the
// length of the call: an idle stream holds none.
type batch struct {
	plain []byte // the events as text
	out   []byte // what goes on the wire when compressed; filled by Write
}

// Write appends p to b.out; the compressor writes through it.
func (b *batch) Write(p []byte) (int, error) {
	b.out = append(b.out, p...)
	return len(p), nil
}

// maxPooledBatch bounds what a batch brings back to the pool: a long
// replay's buffers go to the collector, not to the next heartbeat.
const maxPooledBatch = 64 << 10

var batches = sync.Pool{New: func() any { return &batch{plain: make([]byte, 0, 2<<10)} }}

func getBatch() *batch { return batches.Get().(*batch) }

func putBatch(b *batch) {
	if cap(b.plain) > maxPooledBatch || cap(b.out) > maxPooledBatch {
		return
	}
	b.plain, b.out = b.plain[:0], b.out[:0]
	batches.Put(b)
}
