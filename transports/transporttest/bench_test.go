package transporttest

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// BenchmarkFanout stores b.N messages in one room, one after another,
// while subs clients on one transport receive them, and reports delivered
// messages per second and the latency from the send call to each client
// seeing the message (p50 and p99). It runs in one process on loopback,
// so client and server share the machine's cores.
func BenchmarkFanout(b *testing.B) {
	b.Logf("machine: %d CPUs, %s/%s, %s", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	for _, name := range []string{"websocket", "sse", "poll"} {
		for _, subs := range []int{10, 100} {
			b.Run(fmt.Sprintf("%s/subs=%d", name, subs), func(b *testing.B) { benchFanout(b, Transports[name], subs) })
		}
	}
}

func benchFanout(b *testing.B, dial Dialer, subs int) {
	const room = "bench"
	e := NewEnv(b, Options{Hub: core.Config{SendRate: 1e9, SendBurst: 1 << 30, MaxConnsPerUser: 1 << 20}})
	clients := make([]Client, subs)
	for i := range clients {
		clients[i] = dial(b, e, e.Token(b, fmt.Sprint("u", i), Claims{}), []Join{{Room: room}})
	}
	sent := make([]time.Time, b.N+1)
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := Ctx(b)
			mine := make([]time.Duration, 0, b.N)
			for got := 0; got < b.N; {
				ev, err := c.Next(ctx)
				if err != nil {
					b.Errorf("after %d: %v", got, err)
					return
				}
				if ev.Type == protocol.TypeMessage {
					mu.Lock()
					at := sent[ev.Seq]
					mu.Unlock()
					mine = append(mine, time.Since(at))
					got++
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	id := auth.Identity{User: "sender", Name: "sender"}
	for i := 1; i <= b.N; i++ {
		mu.Lock()
		sent[i] = time.Now()
		mu.Unlock()
		if _, err := e.Hub.Send(Ctx(b), id, room, fmt.Sprint("m", i), "benchmark message text"); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "delivered/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
