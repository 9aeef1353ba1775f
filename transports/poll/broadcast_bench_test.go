package poll_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/transports/transporttest"
)

// BenchmarkBroadcast measures what a held poll costs per delivered
// message: polls clients hold polls on one room of a real node (bbolt,
// degradation wired as chatd runs it) over loopback HTTP/1.1, and one
// message is sent every 100 ms, as in issue 9's broadcast (10 msg/s). An
// op is one message; each is delivered to every client, which re-polls
// with the answer's cursor at once.
//
// The figures per delivered message are for the whole process, clients
// included, which are written by hand (rawPoller) to cost little: CPU
// time from getrusage, so that time the machine gave to other processes
// does not count; heap allocations; and answers per delivery (below 1
// when answers carry several messages). p50-ms and p99-ms are the latency
// from the send call to a client reading the message. The server's
// goroutines carry the pprof label side=server, the clients'
// side=client, so that a CPU profile splits the two:
//
//	go test -run '^$' -bench Broadcast -benchtime 50x -count 6 ./transports/poll/
//	go test -run '^$' -bench 'Broadcast/polls=1000' -benchtime 50x -cpuprofile cpu.out ./transports/poll/
//	go tool pprof -tagfocus side=server -top cpu.out
//
// tier=poll-nolane serves every poll through net/http (no httpx.Lane
// takes the connections over), as chatd --poll-lane=false does.
// tier=websocket runs the same broadcast to WebSocket clients (gorilla,
// reading each frame into one buffer): the reference the poll tier is
// measured against.
func BenchmarkBroadcast(b *testing.B) {
	for _, tier := range []string{"poll", "poll-nolane", "websocket"} {
		for _, clients := range []int{100, 1000} {
			b.Run(fmt.Sprintf("tier=%s/clients=%d", tier, clients), func(b *testing.B) {
				benchBroadcast(b, tier, clients, 100*time.Millisecond)
			})
		}
	}
}

// receiver is one benchmark client: next blocks until it has read the
// next answer or frame, and calls seen for each message in it.
type receiver interface {
	next(seen func(seq uint64)) error
	position() uint64 // the last message seq seen
	close()
}

func (p *rawPoller) next(seen func(seq uint64)) error {
	_, err := p.poll(seen)
	return err
}

func (p *rawPoller) position() uint64 { return p.last }

// wsReceiver reads a WebSocket that joined one room live.
type wsReceiver struct {
	c    *websocket.Conn
	buf  []byte
	last uint64
}

func dialWS(addr string, local net.Addr, token, room string) (*wsReceiver, error) {
	d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		return (&net.Dialer{LocalAddr: local}).Dial(network, addr)
	}, HandshakeTimeout: 10 * time.Second}
	c, _, err := d.Dial("ws://"+addr+"/v1/ws", http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		return nil, err
	}
	w := &wsReceiver{c: c, buf: make([]byte, 0, 4096)}
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"`+room+`","ref":"j"}`)); err != nil {
		c.Close()
		return nil, err
	}
	// Wait for the joined envelope, so that the join is done before the
	// first send.
	for {
		if err := w.next(func(uint64) {}); err != nil {
			c.Close()
			return nil, err
		}
		if bytes.Contains(w.buf, []byte(`"joined"`)) {
			return w, nil
		}
	}
}

func (w *wsReceiver) next(seen func(seq uint64)) error {
	var err error
	if w.buf, err = transporttest.ReadMessage(w.c, w.buf); err != nil {
		return err
	}
	_, err = scanEvents(w.buf, &w.last, seen)
	return err
}

func (w *wsReceiver) position() uint64 { return w.last }
func (w *wsReceiver) close()           { w.c.Close() }

func benchBroadcast(b *testing.B, tier string, clients int, every time.Duration) {
	const room = "bench"
	e := transporttest.NewBenchEnv(b, transporttest.Options{NoPollLane: tier == "poll-nolane"})
	addr := strings.TrimPrefix(e.URL, "http://")
	total := uint64(b.N)
	sent := make([]atomic.Int64, total+1) // UnixNano of each send, by seq
	lat := make([][]time.Duration, clients)
	var answers atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(b.N)*every+2*time.Minute)
	defer cancel()

	var ready, done sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%8))}
		token := e.Token(b, fmt.Sprint("u", i), transporttest.Claims{})
		lat[i] = make([]time.Duration, 0, total)
		ready.Add(1)
		done.Add(1)
		go pprof.Do(ctx, pprof.Labels("side", "client"), func(ctx context.Context) {
			defer done.Done()
			seen := func(seq uint64) { lat[i] = append(lat[i], time.Duration(time.Now().UnixNano()-sent[seq].Load())) }
			var c receiver
			var err error
			if tier != "websocket" {
				p := &rawPoller{addr: addr, local: local, token: token, rooms: room, extra: "&level=0"}
				_, err = p.poll(seen) // no cursor: answers at once
				c = p
			} else {
				c, err = dialWS(addr, local, token, room)
			}
			ready.Done()
			if err != nil {
				errs <- fmt.Errorf("client %d: %v", i, err)
				return
			}
			defer c.close()
			for err == nil && c.position() < total && ctx.Err() == nil {
				err = c.next(seen)
				answers.Add(1)
			}
			if err != nil || c.position() < total {
				errs <- fmt.Errorf("client %d at seq %d: %v", i, c.position(), err)
			}
		})
	}
	ready.Wait()

	id := auth.Identity{User: "sender", Name: "sender"}
	tick := time.NewTicker(every)
	defer tick.Stop()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0 := transporttest.CPUTime()
	b.ResetTimer()
	for seq := uint64(1); seq <= total; seq++ {
		<-tick.C
		sent[seq].Store(time.Now().UnixNano())
		if _, err := e.Hub.Send(ctx, id, room, fmt.Sprint("m", seq), "a broadcast of typical length to everyone in the room"); err != nil {
			b.Fatal(err)
		}
	}
	done.Wait()
	b.StopTimer()
	cpu := transporttest.CPUTime() - cpu0
	runtime.ReadMemStats(&m1)
	close(errs)
	for err := range errs {
		b.Error(err)
	}
	deliveries := float64(total) * float64(clients)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	b.ReportMetric(float64(cpu.Nanoseconds())/deliveries, "cpu-ns/delivery")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/deliveries, "allocs/delivery")
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/deliveries, "B/delivery")
	b.ReportMetric(float64(answers.Load())/deliveries, "answers/delivery") // frames, on WebSocket
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	}
}
