package poll_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkHeldPollMemory reports what a client costs the server, on the
// real binary (built from cmd/chatd, run with GOGC=10 so that the heap
// tracks live data): heap plus goroutine stacks, and RSS, per client,
// from the server's own /metrics, against the figures before the clients
// came. It is cmd/chatd's idle harness (BenchmarkIdleConnectionMemory)
// with two more cases: clients under a broadcast of 10 messages a second,
// where a held poll waits in its request's goroutine and is answered ten
// times a second, and the same for WebSocket, the reference. Idle polls
// are measured once they have parked.
//
//	go test -run '^$' -bench HeldPollMemory -benchtime 1x ./transports/poll/
func BenchmarkHeldPollMemory(b *testing.B) {
	const clients = 2000
	bin := buildChatd(b)
	for _, load := range []string{"idle", "broadcast"} {
		for _, tier := range []string{"poll", "websocket"} {
			b.Run(fmt.Sprintf("%s/tier=%s", load, tier), func(b *testing.B) {
				for range b.N {
					heap, stack, rss, goroutines := measureClients(b, bin, tier, load == "broadcast", clients)
					b.ReportMetric(heap+stack, "bytes/client")
					b.ReportMetric(goroutines, "goroutines/client")
					b.ReportMetric(heap, "heap-bytes/client")
					b.ReportMetric(stack, "stack-bytes/client")
					b.ReportMetric(rss, "rss-bytes/client")
				}
			})
		}
	}
}

const memSecret = "poll-memory-secret"

// buildChatd builds cmd/chatd into a temporary directory.
func buildChatd(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "chatd")
	cmd := exec.Command("go", "build", "-o", bin, "../../cmd/chatd")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

var readyLine = regexp.MustCompile(`url=(http://[^\s"]+)`)

// startChatd starts bin on a free loopback port with GOGC=10 and returns
// its base URL and a kill function; the process is killed when the
// benchmark ends at the latest.
func startChatd(b *testing.B, bin string) (string, func()) {
	b.Helper()
	cmd := exec.Command(bin, "--addr", "127.0.0.1:0", "--data", b.TempDir(), "--jwt-secret", memSecret)
	cmd.Env = append(os.Environ(), "GOGC=10")
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var once sync.Once
	kill := func() { once.Do(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) }
	b.Cleanup(kill)
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := readyLine.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
	}()
	select {
	case u := <-urls:
		return u, kill
	case <-time.After(30 * time.Second):
		b.Fatal("chatd did not say it was ready")
	}
	return "", kill
}

func memToken(b *testing.B, user string) string {
	b.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": user, "exp": time.Now().Add(time.Hour).Unix()}).
		SignedString([]byte(memSecret))
	if err != nil {
		b.Fatal(err)
	}
	return tok
}

// measureClients opens n clients of tier on a fresh server, all in one
// room, and returns what each costs the server in heap, stacks, RSS and
// goroutines.
func measureClients(b *testing.B, bin, tier string, broadcast bool, n int) (heap, stack, rss, goroutines float64) {
	const room = "lobby"
	base, kill := startChatd(b, bin)
	addr := strings.TrimPrefix(base, "http://")
	before := scrapeMetrics(b, base)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); kill(); wg.Wait() }() // the server's end ends every client's read
	errs := make(chan error, n)
	for i := range n {
		local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%8))}
		tok := memToken(b, fmt.Sprint("u", i))
		var c receiver
		var err error
		if tier == "poll" {
			p := &rawPoller{addr: addr, local: local, token: tok, rooms: room}
			_, err = p.poll(func(uint64) {})
			c = p
		} else {
			c, err = dialWS(addr, local, tok, room)
		}
		if err != nil {
			b.Fatalf("client %d: %v", i, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.close()
			for ctx.Err() == nil {
				if err := c.next(func(uint64) {}); err != nil {
					if ctx.Err() == nil {
						errs <- fmt.Errorf("client %d: %v", i, err)
					}
					return
				}
			}
		}()
	}
	waitFor(b, "every client's session", func() bool {
		return scrapeMetrics(b, base)[`chat_sessions{transport="`+tier+`"}`] >= float64(n)
	})
	if broadcast {
		stop := sendEvery(ctx, b, base, room, 100*time.Millisecond)
		defer stop()
		time.Sleep(3 * time.Second) // traffic settles: writers and held polls in their steady state
	} else if tier == "poll" {
		// A held poll parks after Config.Park (250 ms): then the server runs
		// about one goroutine per poll (its watch).
		goroutines := before["go_goroutines"]
		waitFor(b, "held polls to park", func() bool {
			return scrapeMetrics(b, base)["go_goroutines"]-goroutines < 1.5*float64(n)
		})
	}
	// Two collections, so that the heap no longer counts what the
	// clients' setup left behind; the scrapes allocate enough to bring
	// them about.
	gc := scrapeMetrics(b, base)["go_gc_duration_seconds_count"]
	waitFor(b, "two collections", func() bool { return scrapeMetrics(b, base)["go_gc_duration_seconds_count"] >= gc+2 })
	var sum map[string]float64
	const samples = 5
	for range samples {
		m := scrapeMetrics(b, base)
		if sum == nil {
			sum = m
			continue
		}
		for k, v := range m {
			sum[k] += v
		}
		time.Sleep(200 * time.Millisecond)
	}
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	per := func(key string) float64 { return (sum[key]/samples - before[key]) / float64(n) }
	return per("go_memstats_heap_inuse_bytes"), per("go_memstats_stack_inuse_bytes"), per("process_resident_memory_bytes"),
		per("go_goroutines")
}

// sendEvery sends a message to room every interval until stop or ctx.
func sendEvery(ctx context.Context, b *testing.B, base, room string, every time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	tok := memToken(b, "sender")
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
			body := fmt.Sprintf(`{"room":%q,"id":"m%d","text":"a broadcast of typical length to everyone"}`, room, i)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/send", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}()
	return func() { cancel(); <-done }
}

// waitFor polls cond, bounded.
func waitFor(b *testing.B, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scrapeMetrics reads the plain series of /metrics into a map.
func scrapeMetrics(b *testing.B, base string) map[string]float64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		b.Fatal(err)
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
