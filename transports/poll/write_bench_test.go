package poll

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkWriteAnswer measures what an answer costs the poll handler
// once its frames are collected: the body built and, for gzip, compressed
// (the socket write is not included). A broadcast cannot share the
// compressed form: every answer holds its own cursor and its own run of
// events. deflate is one client's stream of answers (deflate=1), each
// deflated against the 2 KiB before it. It reports the bytes on the wire
// per delivered message and the CPU per delivered message.
//
//	go test -run '^$' -bench WriteAnswer -benchmem ./transports/poll/
func BenchmarkWriteAnswer(b *testing.B) {
	for _, per := range []int{1, 4, 16, 64} {
		for _, mode := range []string{"plain", "gzip", "deflate"} {
			b.Run(fmt.Sprintf("%s/events=%d", mode, per), func(b *testing.B) {
				frames := chatFrames(512)
				h := testHandler(mode != "plain")
				h.cfg.CompressMin = 1 // measure gzip at every size
				target := "/v1/poll"
				if mode == "deflate" {
					target += "?deflate=1" // one stream, going on from answer to answer
				}
				r := httptest.NewRequest(http.MethodGet, target, nil)
				r.Header.Set("Accept-Encoding", "gzip")
				w := &discard{header: http.Header{}}
				const cursor = "AXRlYW0tY2hhdP4H4x0Kc3RhbmR1cAI" // two rooms
				var z zstream
				defer z.drop()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					k := i * per % (len(frames) - per)
					h.writeBuilt(w, h.answerFor(r, "u", frames[k:k+per], cursor, deflateOf(r), &z, true))
				}
				b.StopTimer()
				b.ReportMetric(float64(w.n)/float64(b.N*per), "wire-B/msg")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*per), "ns/msg")
			})
		}
	}
}
