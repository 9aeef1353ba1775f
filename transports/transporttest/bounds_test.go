package transporttest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/core/protocol"
)

// sincePairs returns n room:seq pairs, comma-separated, for rooms no one
// subscribes.
func sincePairs(n int) string {
	pairs := make([]string, n)
	for i := range pairs {
		pairs[i] = fmt.Sprintf("%x:%d", i, i%10)
	}
	return strings.Join(pairs, ",")
}

// heapSampler records the largest live heap (as the last GC marked it)
// and the largest heap in use (live and not yet swept) while it runs.
type heapSampler struct {
	stop chan struct{}
	done chan struct{}
	// Written by run until done is closed; read after.
	live, inUse uint64
}

func startHeapSampler() *heapSampler {
	s := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *heapSampler) run() {
	defer close(s.done)
	samples := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		metrics.Read(samples)
		s.live = max(s.live, samples[0].Value.Uint64())
		s.inUse = max(s.inUse, samples[1].Value.Uint64())
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
	}
}

// Stop ends the sampling and returns the peaks.
func (s *heapSampler) Stop() (live, inUse uint64) {
	close(s.stop)
	<-s.done
	return s.live, s.inUse
}

// liveHeap returns the live heap after a full GC.
func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// 50 parallel polls and 50 parallel SSE requests, each with an oversized
// since= (60,000 pairs, 660 KB of query; or 5,000 pairs, which pass the
// query bound but not since='s), get bad_request, while a canary on each
// transport chats throughout and receives every message.
//
// The memory bound: unbounded, this flood (polls alone) grew the live
// heap by 330-680 MB, 15-23 MB a request. Bounded, nothing is spent per
// pair: what remains is net/http reading each request line (up to about
// 2 MB while a line is read), 17-26 MB measured. The bound, 96 MB, leaves
// that a margin of about 4 and is under a third of the unbounded cost.
func TestOversizedSinceFlood(t *testing.T) {
	const (
		room    = "canary"
		workers = 50
		rounds  = 2
		bound   = 96 << 20
	)
	e := NewEnv(t, Options{Hub: fast})
	var canaries []Client
	for name, dial := range map[string]Dialer{"ws": DialWS, "sse": DialSSE, "poll": DialPoll} {
		canaries = append(canaries, dial(t, e, e.Token(t, "canary-"+name, Claims{}), []Join{{Room: room}}))
	}
	tok := e.Token(t, "flooder", Claims{})
	huge := url.Values{"rooms": {"flood"}, "since": {sincePairs(60000)}}.Encode()
	mid := url.Values{"rooms": {"flood"}, "since": {sincePairs(5000)}}.Encode()
	t.Logf("since= of 60,000 pairs: %d bytes of query; of 5,000: %d", len(huge), len(mid))
	addr := strings.TrimPrefix(e.URL, "http://")
	requests := map[string][2][]byte{}
	for _, path := range []string{"/v1/poll", "/v1/sse"} {
		requests[path] = [2][]byte{floodRequest(path+"?"+huge, tok), floodRequest(path+"?"+mid, tok)}
	}

	base := liveHeap()
	heap := startHeapSampler()
	var refused atomic.Int64
	var wg sync.WaitGroup
	for _, path := range []string{"/v1/poll", "/v1/sse"} {
		for i := range workers {
			wg.Go(func() {
				for r := range rounds {
					req := requests[path][(i+r)%2]
					status, body, err := floodOnce(Ctx(t), addr, req)
					if err != nil || status != http.StatusBadRequest || !strings.Contains(body, `"code":"bad_request"`) {
						t.Errorf("%s, a %d-byte request: %d %s %v", path, len(req), status, body, err)
						return
					}
					refused.Add(1)
				}
			})
		}
	}
	flooding := make(chan struct{})
	go func() { wg.Wait(); close(flooding) }()

	// The canaries chat until the flood is over: each message, sent over
	// each transport in turn, reaches all three.
	var worst time.Duration
	sent := 0
	for seq := uint64(1); ; seq++ {
		start := time.Now()
		from := canaries[int(seq)%len(canaries)]
		ack, err := from.Send(Ctx(t), room, fmt.Sprint("c", seq), "still here")
		if err != nil || ack.Type != protocol.TypeAck || ack.Seq != seq {
			t.Fatalf("canary %s send %d: %+v, %v", from.Transport(), seq, ack, err)
		}
		for _, c := range canaries {
			expectSeqs(t, c, room, seq, seq)
		}
		worst = max(worst, time.Since(start))
		sent++
		select {
		case <-flooding:
		default:
			continue
		}
		if sent >= 2*len(canaries) {
			break
		}
	}
	<-flooding
	live, inUse := heap.Stop()
	if n := refused.Load(); n != 2*workers*rounds {
		t.Fatalf("%d of %d flood requests refused", n, 2*workers*rounds)
	}
	growth := int64(live) - int64(base)
	t.Logf("flood: %d requests refused; canary: %d messages, slowest round trip %v; live heap %d MB at the start, peak growth %d MB (heap in use peaked at %d MB)",
		refused.Load(), sent, worst.Round(time.Millisecond), base>>20, growth>>20, inUse>>20)
	if growth > bound {
		t.Fatalf("the live heap grew by %d MB under the flood; the bound is %d MB", growth>>20, bound>>20)
	}
}

// floodRequest returns the bytes of a GET of target (a path and query)
// as tok.
func floodRequest(target, tok string) []byte {
	return []byte("GET " + target + " HTTP/1.1\r\nHost: chatd\r\nAuthorization: Bearer " + tok +
		"\r\nConnection: close\r\n\r\n")
}

// floodOnce writes one prepared request on a new connection to addr and
// returns the answer's status and body. The request bytes are shared, so
// the client side allocates nothing per request and the heap the test
// watches is the server's.
func floodOnce(ctx context.Context, addr string, req []byte) (int, string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadlineOf(ctx))
	if _, err := conn.Write(req); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// since= may name only the rooms the request subscribes: a pair for any
// other room is bad_request, over SSE and poll. A cursor is opaque and
// clients keep it across subscription changes, so its other rooms are
// dropped instead: the subscribed ones resume exactly.
func TestSinceNamesSubscribedRoomsOnly(t *testing.T) {
	e := NewEnv(t, Options{Hub: fast})
	tok := e.Token(t, "alice", Claims{})
	bearer := http.Header{"Authorization": {"Bearer " + tok}}
	for _, path := range []string{"/v1/sse", "/v1/poll"} {
		for _, q := range []url.Values{
			{"rooms": {"a"}, "since": {"a:0,b:0"}},
			{"rooms": {"a,b"}, "since": {"c:0"}},
			{"rooms": {"dm:alice:bob"}, "since": {"dm:alice:carol:0"}},
		} {
			status, _, body := rawDo(t, http.MethodGet, e.URL+path+"?"+q.Encode(), bearer, nil)
			httpError(t, path+"?"+q.Encode(), status, body, http.StatusBadRequest, protocol.CodeBadRequest)
		}
	}

	fill(t, e, "a", 2, "a")
	fill(t, e, "b", 1, "b")
	first := pollOnce(t, e, tok, url.Values{"rooms": {"a,b"}, "since": {"a:0,b:0"}})
	if seqs := messageSeqs(first.Events); len(seqs) != 3 {
		t.Fatalf("first poll: %v", seqs)
	}
	hubSend(t, e, "a", "a3")
	hubSend(t, e, "b", "b2")
	// The cursor holds a and b; the poll subscribes a only.
	again := pollOnce(t, e, tok, url.Values{"rooms": {"a"}, "cursor": {first.Cursor}})
	if len(again.Events) != 1 || again.Events[0].Room != "a" || again.Events[0].Seq != 3 {
		t.Fatalf("poll of a with a cursor of a and b: %+v", again.Events)
	}
	// So does an EventSource's Last-Event-ID after a leave.
	ctx, cancel := context.WithCancel(Ctx(t))
	defer cancel()
	events := openSSE(t, ctx, e.URL, tok, "a", first.Cursor, "")
	for ev := range events {
		switch ev.env.Type {
		case protocol.TypeJoined:
			t.Fatalf("an exact resume sent %+v", ev.env)
		case protocol.TypeMessage:
			if ev.env.Room != "a" || ev.env.Seq != 3 {
				t.Fatalf("SSE resumed with %s/%d, want a/3", ev.env.Room, ev.env.Seq)
			}
			return
		}
	}
	t.Fatal("the stream ended")
}
