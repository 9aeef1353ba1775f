package ws_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/transports/transporttest"
)

// BenchmarkResume measures what a reconnect costs the node, as in issue
// 9's reconnect storm: a client with a token of its own dials WebSocket,
// reads the welcome, joins its room (of 100) from the last seq it saw
// and reads the joined envelope. An op is one such client, 32 dialing
// at once; the connections stay open until their round of 2,000 ends,
// as a storm's do. The node is a real one (bbolt, degradation wired as chatd runs
// it) on loopback, and each room holds a few messages, so that a resume
// reads the store.
//
// cpu-ns/resume is the whole process's CPU time (getrusage), clients
// included; the server's goroutines carry the pprof label side=server,
// the clients' side=client, so a CPU profile splits the two:
//
//	go test -run '^$' -bench Resume -benchtime 3000x -count 6 ./transports/ws/
//	go test -run '^$' -bench Resume -benchtime 3000x -cpuprofile cpu.out ./transports/ws/
//	go tool pprof -tagfocus side=server -top cpu.out
//
// Two ways to resume: join=frame sends the join envelope after the
// upgrade; join=query names the room and its position in the dial's URL
// (rooms=, since=), which the Go client does for rooms it has a position
// in, and the node answers with the greeting and the joined envelope in
// the 101's segment.
func BenchmarkResume(b *testing.B) {
	for _, query := range []bool{false, true} {
		name := "join=frame"
		if query {
			name = "join=query"
		}
		b.Run(name, func(b *testing.B) { benchmarkResume(b, query) })
	}
}

func benchmarkResume(b *testing.B, query bool) {
	const (
		roomSize = 100
		dialers  = 32
		perRoom  = 5 // messages in each room before the clients resume
		// round bounds the connections open at once (two descriptors each
		// in this process): the clients of a round stay connected until
		// it ends, as a storm's do, and then close, with the clocks
		// stopped until their sessions are gone.
		round = 2000
	)
	e := transporttest.NewBenchEnv(b, transporttest.Options{})
	addr := strings.TrimPrefix(e.URL, "http://")
	rooms := (b.N + roomSize - 1) / roomSize
	ctx := context.Background()
	sender := auth.Identity{User: "sender", Name: "sender"}
	for r := range rooms {
		for m := range perRoom {
			if _, err := e.Hub.Send(ctx, sender, fmt.Sprint("r", r), fmt.Sprint("m", r, "-", m), "a message of typical length, sent before the storm"); err != nil {
				b.Fatal(err)
			}
		}
	}
	tokens := make([]string, b.N)
	for i := range tokens {
		tokens[i] = e.Token(b, fmt.Sprint("u", i), transporttest.Claims{})
	}
	// Each user has its room listed already, as a storm's users have from
	// before it: a rejoin then reads the list and writes nothing.
	var listed sync.WaitGroup
	listErrs := make(chan error, b.N)
	for d := range dialers {
		listed.Go(func() {
			for i := d; i < b.N; i += dialers {
				if _, err := e.Store.AddUserRoom(ctx, fmt.Sprint("u", i), fmt.Sprint("r", i/roomSize)); err != nil {
					listErrs <- err
					return
				}
			}
		})
	}
	listed.Wait()
	close(listErrs)
	for err := range listErrs {
		b.Fatal(err)
	}
	dialer := make([]*websocket.Dialer, dialers)
	for d := range dialer {
		local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+d%8))}
		dialer[d] = &websocket.Dialer{HandshakeTimeout: time.Minute, NetDial: func(network, addr string) (net.Conn, error) {
			return (&net.Dialer{LocalAddr: local}).Dial(network, addr)
		}}
	}
	var (
		cpu                time.Duration
		mallocs, allocated uint64
	)
	b.ResetTimer()
	for from := 0; from < b.N; from += round {
		to := min(from+round, b.N)
		conns := make([]*websocket.Conn, to-from)
		var next atomic.Int64
		next.Store(int64(from))
		var wg sync.WaitGroup
		errs := make(chan error, dialers)
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		cpu0 := transporttest.CPUTime()
		for d := range dialers {
			wg.Add(1)
			go pprof.Do(ctx, pprof.Labels("side", "client"), func(context.Context) {
				defer wg.Done()
				buf := make([]byte, 0, 4096)
				for {
					i := int(next.Add(1) - 1)
					if i >= to {
						return
					}
					c, err := resume(dialer[d], addr, tokens[i], fmt.Sprint("r", i/roomSize), perRoom, query, buf)
					conns[i-from] = c
					if err != nil {
						errs <- fmt.Errorf("client %d: %w", i, err)
						return
					}
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		cpu += transporttest.CPUTime() - cpu0
		runtime.ReadMemStats(&m1)
		mallocs += m1.Mallocs - m0.Mallocs
		allocated += m1.TotalAlloc - m0.TotalAlloc
		close(errs)
		for err := range errs {
			b.Error(err)
		}
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		// The round's sessions end before the next round's clocks start.
		for deadline := time.Now().Add(time.Minute); e.Hub.Sessions()["websocket"] > 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("%d sessions still open a minute after their clients closed", e.Hub.Sessions()["websocket"])
			}
		}
		b.StartTimer()
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/resume")
	b.ReportMetric(float64(mallocs)/n, "allocs/resume")
	b.ReportMetric(float64(allocated)/n, "B/resume")
}

// resume dials, joins room from seq since (in the URL if query, else
// with a join envelope) and reads until the joined envelope, failing on an
// error envelope.
func resume(d *websocket.Dialer, addr, token, room string, since int, query bool, buf []byte) (*websocket.Conn, error) {
	u := "ws://" + addr + "/v1/ws"
	if query {
		u += fmt.Sprintf("?rooms=%s&since=%s:%d", room, room, since)
	}
	c, _, err := d.Dial(u, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		return nil, err
	}
	if !query {
		join := fmt.Sprintf(`{"type":"join","room":%q,"since":%d,"ref":"j"}`, room, since)
		if err := c.WriteMessage(websocket.TextMessage, []byte(join)); err != nil {
			return c, err
		}
	}
	for {
		if buf, err = transporttest.ReadMessage(c, buf); err != nil {
			return c, err
		}
		switch {
		case bytes.Contains(buf, []byte(`"type":"error"`)):
			return c, fmt.Errorf("error envelope: %s", buf)
		case bytes.Contains(buf, []byte(`"type":"joined"`)):
			return c, nil
		}
	}
}
