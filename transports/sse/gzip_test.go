package sse

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/chatd/chatd/transports/internal/deflate"
)

// chatEvents returns n events as a stream carries them: typical chat
// messages, each with its cursor id.
func chatEvents(n int) [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("the be to of and a in that have I it for not on with he as you do at this but " +
		"his by from they we say her she or an will my one all would there their what so up out if about who " +
		"get which go me when make can like time no just him know take people into year your good some could " +
		"lunch build deploy review test bug fix release coffee weekend game team project code server chat " +
		"thanks please maybe tomorrow today later meeting nice great sorry late soon ok lol yes sure done")
	out := make([][]byte, n)
	for i := range out {
		var text strings.Builder
		for j := range 3 + r.IntN(12) {
			if j > 0 {
				text.WriteByte(' ')
			}
			text.WriteString(words[r.IntN(len(words))])
		}
		u := r.IntN(40)
		out[i] = fmt.Appendf(nil, "id: AQVsb2JieegH%06x\ndata: {\"type\":\"message\",\"room\":\"lobby\",\"id\":\"c-%08x\",\"text\":%q,"+
			"\"seq\":%d,\"from\":\"user%d\",\"name\":\"User %d\",\"ts\":%d}\n\n",
			r.Uint32()&0xffffff, r.Uint32(), text.String(), 1000+i, u, u, 1767607243546+int64(i)*1500)
	}
	return out
}

// starvingReader is the bytes a client has so far; it records a read past
// them, where a real connection would block.
type starvingReader struct {
	b       []byte
	starved bool
}

func (r *starvingReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		r.starved = true
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func (r *starvingReader) ReadByte() (byte, error) {
	if len(r.b) == 0 {
		r.starved = true
		return 0, io.EOF
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c, nil
}

// A gzipped stream decodes, batch by batch, to exactly what was sent: each
// batch is complete as soon as it is written (the client need not wait for
// the next one), whether it was compressed, stored while compression was
// off, or a heartbeat that released the history; the trailer then checks
// the whole.
func TestGzipStreamRoundTrip(t *testing.T) {
	events := chatEvents(300)
	big := bytes.Repeat([]byte("data: {\"type\":\"message\",\"text\":\"xyzzy\"}\n\n"), 3000) // > 64 KiB
	z := &gzipStream{}
	wire := append([]byte(nil), gzipHeader...)
	var plain []byte
	send := func(p []byte, compress, idle bool) {
		b := &batch{plain: p}
		z.appendBatch(b, compress, idle)
		wire = append(wire, b.out...)
		plain = append(plain, p...)
		// Everything sent so far decodes now, without the decoder
		// waiting for a byte that has not come.
		got := make([]byte, len(plain))
		in := &starvingReader{b: wire[len(gzipHeader):]}
		if _, err := io.ReadFull(flate.NewReader(in), got); err != nil {
			t.Fatalf("after %d bytes: %v", len(plain), err)
		}
		if in.starved {
			t.Fatalf("after %d bytes: the decoder needs the next batch to hand this one out", len(plain))
		}
		if !bytes.Equal(got, plain) {
			t.Fatalf("after %d bytes: decoded text differs", len(plain))
		}
	}
	for i, ev := range events {
		switch {
		case i%50 == 49:
			send([]byte("id: X\ndata: {\"type\":\"ping\"}\n: heartbeat\n\n"), true, true)
			if z.hist.Held() {
				t.Fatal("an idle batch kept the history")
			}
		case i%7 == 3:
			send(bytes.Join([][]byte{ev, events[i-1], events[i-2]}, nil), true, false)
		case i >= 200 && i < 220:
			send(ev, false, false)
			if z.hist.Held() {
				t.Fatal("a stored batch kept the history")
			}
		default:
			send(ev, true, false)
		}
		if z.hist.Len() > deflate.HistSize {
			t.Fatalf("history holds %d bytes", z.hist.Len())
		}
	}
	send(big, true, false)
	send(big, false, false)
	end := &batch{}
	z.appendEnd(end)
	wire = append(wire, end.out...)
	zr, err := gzip.NewReader(bytes.NewReader(wire))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("the whole stream: %v", err)
	}
	if !bytes.Equal(got, plain) {
		t.Fatal("the whole stream decodes to other text")
	}
}

// The history pays: a stream of lone chat messages, each its own batch
// and flushed, gets smaller gzipped (each alone would not). The ratio
// itself is a figure for the benchmarks, not a pass/fail.
func TestGzipHistoryPays(t *testing.T) {
	z := &gzipStream{}
	var plain, wire int
	for _, ev := range chatEvents(500) {
		b := &batch{plain: ev}
		z.appendBatch(b, true, false)
		plain, wire = plain+len(ev), wire+len(b.out)
	}
	if wire >= plain {
		t.Fatalf("%d bytes sent as %d", plain, wire)
	}
	t.Logf("%d bytes sent as %d: %.2f×", plain, wire, float64(plain)/float64(wire))
}

func TestAcceptsGzip(t *testing.T) {
	for ae, want := range map[string]bool{
		"":                          false,
		"gzip":                      true,
		"gzip, deflate, br":         true,
		"br;q=1.0, GZIP;q=0.5":      true,
		"deflate, gzip;q=0":         false,
		"gzip; q=0.000":             false,
		"x-gzip":                    true,
		"identity":                  false,
		"gzipx, br":                 false,
		"br, gzip;level=1 ;q=0.001": true,
	} {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		if ae != "" {
			r.Header.Set("Accept-Encoding", ae)
		}
		if got := acceptsGzip(r); got != want {
			t.Errorf("%q: got %v", ae, got)
		}
	}
}
