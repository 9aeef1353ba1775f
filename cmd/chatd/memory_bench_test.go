package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// BenchmarkIdleConnectionMemory opens idle sessions against the real
// binary and reports what each costs the server: heap plus goroutine
// stacks, from the server's own /metrics, with GOGC=10 so the heap tracks
// live data. It runs once per transport; figures, never a pass/fail. A
// poll connection is a held poll: the client re-polls with its cursor as
// soon as an answer comes, so one poll per client is open at any time;
// it is measured once held polls have had the time to park.
func BenchmarkIdleConnectionMemory(b *testing.B) {
	const conns = 2000
	b.Logf("machine: %d CPUs, %s/%s, %s; %d connections per transport",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), conns)
	for _, transport := range []string{"websocket", "sse", "poll"} {
		b.Run(transport, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				heap, stack := measureIdle(b, transport, conns)
				b.ReportMetric(heap+stack, "bytes/conn")
				b.ReportMetric(heap, "heap-bytes/conn")
				b.ReportMetric(stack, "stack-bytes/conn")
			}
		})
	}
}

func measureIdle(b *testing.B, transport string, n int) (heap, stack float64) {
	p := launch(b, []string{"--addr", "127.0.0.1:0", "--data", b.TempDir(), "--jwt-secret", e2eSecret},
		"GOGC=10")
	base := p.waitReady(b)
	defer p.cmd.Process.Kill()
	before := scrape(b, base)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < n; i++ {
		// Users are distinct: the per-user connection limit is 20.
		tok := token(b, e2eSecret, fmt.Sprintf("u%d", i), "u")
		local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%8))}
		if err := openIdle(ctx, transport, base, tok, local); err != nil {
			b.Fatalf("connection %d: %v", i, err)
		}
	}
	waitSessions(b, base, transport, n)
	if transport == "poll" {
		waitParked(b, base, before["go_goroutines"], n)
	}
	after := scrape(b, base)
	per := func(key string) float64 { return (after[key] - before[key]) / float64(n) }
	return per("go_memstats_heap_inuse_bytes"), per("go_memstats_stack_inuse_bytes")
}

// openIdle opens one session that joins one room and then only reads.
func openIdle(ctx context.Context, transport, base, tok string, local *net.TCPAddr) error {
	dialer := &net.Dialer{LocalAddr: local, Timeout: 10 * time.Second}
	switch transport {
	case "websocket":
		d := websocket.Dialer{NetDialContext: dialer.DialContext, HandshakeTimeout: 10 * time.Second}
		c, _, err := d.Dial("ws"+strings.TrimPrefix(base, "http")+"/v1/ws", http.Header{"Authorization": {"Bearer " + tok}})
		if err != nil {
			return err
		}
		if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"lobby"}`)); err != nil {
			return err
		}
		go func() {
			defer c.Close()
			go func() { <-ctx.Done(); c.Close() }()
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
	case "sse":
		client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/sse?rooms=lobby", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("sse: HTTP %d", resp.StatusCode)
		}
		go func() {
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
		}()
	case "poll":
		client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
		cursor, err := pollIdle(ctx, client, base, tok, "")
		if err != nil {
			return err
		}
		go func() {
			defer client.CloseIdleConnections()
			for err == nil {
				cursor, err = pollIdle(ctx, client, base, tok, cursor)
			}
		}()
	}
	return nil
}

// pollIdle makes one poll of room lobby and returns the answer's cursor.
// Without a cursor the answer comes at once; with one it is held.
func pollIdle(ctx context.Context, client *http.Client, base, tok, cursor string) (string, error) {
	q := url.Values{"rooms": {"lobby"}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/poll?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var answer struct{ Cursor string }
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("poll: HTTP %d: %v", resp.StatusCode, err)
	}
	return answer.Cursor, nil
}

// waitParked gives held polls the time to park (poll.Config.Park): until
// the server runs fewer than 1.5 goroutines per poll beyond its own, or
// for at most 15 s. A poll held in its request's goroutine has two (its
// own and net/http's background reader), a parked one one. Then it waits
// for two garbage collections, so that the heap no longer counts what
// parking let go of (the scrapes allocate enough to bring them about).
func waitParked(tb testing.TB, base string, goroutines float64, n int) {
	deadline := time.Now().Add(15 * time.Second)
	for scrape(tb, base)["go_goroutines"]-goroutines > 1.5*float64(n) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	const gcs = "go_gc_duration_seconds_count"
	gc := scrape(tb, base)[gcs]
	for scrape(tb, base)[gcs] < gc+2 && time.Now().Before(deadline.Add(15*time.Second)) {
		time.Sleep(10 * time.Millisecond)
	}
}

func waitSessions(tb testing.TB, base, transport string, n int) {
	key := `chat_sessions{transport="` + transport + `"}`
	deadline := time.Now().Add(60 * time.Second)
	for scrape(tb, base)[key] < float64(n) {
		if time.Now().After(deadline) {
			tb.Fatalf("only %v of %d sessions open", scrape(tb, base)[key], n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scrape reads the plain series of /metrics into a map.
func scrape(tb testing.TB, base string) map[string]float64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}
