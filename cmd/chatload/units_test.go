package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/client"
)

// TestHistogramPercentiles checks the histogram's percentiles against the
// exact ones of the same samples: within the 0.8% the layout promises
// (plus a microsecond of rounding).
func TestHistogramPercentiles(t *testing.T) {
	var h Histogram
	var samples []time.Duration
	for i := 1; i <= 100000; i++ {
		// A spread from 50 µs to about 6 s, denser at the low end.
		d := time.Duration(50*math.Pow(1.000117, float64(i))) * time.Microsecond
		h.Record(d)
		samples = append(samples, d)
	}
	got, want := h.Summary(), exactSummary(samples)
	near := func(name string, g, w float64) {
		if math.Abs(g-w) > w*0.008+0.001 {
			t.Errorf("%s: histogram says %.3f ms, exact %.3f ms", name, g, w)
		}
	}
	near("p50", got.P50MS, want.P50MS)
	near("p95", got.P95MS, want.P95MS)
	near("p99", got.P99MS, want.P99MS)
	near("avg", got.AvgMS, want.AvgMS)
	if got.Count != 100000 || got.MaxMS != want.MaxMS {
		t.Errorf("count %d max %.3f, want 100000 and %.3f", got.Count, got.MaxMS, want.MaxMS)
	}
	var empty Histogram
	if s := empty.Summary(); s != (Summary{}) {
		t.Errorf("empty histogram: %+v", s)
	}
}

// TestBuckets checks that bucket and bucketMid agree at octave edges.
func TestBuckets(t *testing.T) {
	for _, us := range []uint64{0, 1, 63, 64, 127, 128, 129, 255, 256, 1000, 1 << 20, histMaxUS} {
		i := bucket(us)
		if i < 0 || i >= histBuckets {
			t.Fatalf("bucket(%d) = %d, out of range", us, i)
		}
		if mid := bucketMid(i); math.Abs(mid-float64(us)) > float64(us)/64+1 {
			t.Errorf("bucket(%d) = %d, whose middle %.1f is too far", us, i, mid)
		}
	}
}

func TestTierCycle(t *testing.T) {
	cycle := tierCycle([]TierShare{{client.WebSocket, 70}, {client.SSE, 20}, {client.Poll, 10}})
	if len(cycle) != 10 {
		t.Fatalf("cycle %v, want 10 long", cycle)
	}
	count := map[string]int{}
	for _, c := range cycle {
		count[c]++
	}
	if count[client.WebSocket] != 7 || count[client.SSE] != 2 || count[client.Poll] != 1 {
		t.Errorf("cycle %v, want 7 ws, 2 sse, 1 poll", cycle)
	}
	if c := tierCycle([]TierShare{{client.SSE, 5}, {client.Poll, 0}}); !slices.Equal(c, []string{client.SSE}) {
		t.Errorf("a zero share: cycle %v", c)
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := ParseFlags(strings.Fields("--url http://127.0.0.1:9 --workload broadcast --users 500,1000 "+
		"--tiers ws=70,sse=20,poll=10 --source-ips 127.0.0.2-127.0.0.4 --typing 0 --progress off"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Users, []int{500, 1000}) || len(cfg.Tiers) != 3 || len(cfg.SourceIPs) != 3 ||
		!cfg.SourceIPs[2].Equal(net.ParseIP("127.0.0.4")) || cfg.TypingShare >= 0 {
		t.Errorf("parsed %+v", cfg)
	}
	if err := cfg.withDefaults().validate(); err != nil {
		t.Errorf("valid flags: %v", err)
	}
	for _, bad := range []string{"--users 0", "--users 20001", "--tiers ws=x", "--tiers carrier-pigeon",
		"--source-ips 10.0.0.1-10.0.9.9", "--workload soak", "--url ftp://x", "--servers http://a:1,ftp://b",
		"--servers http://a:1,http://b:2 --workload storm", "--servers http://a:1,http://b:2 --server-cmd true"} {
		cfg, err := ParseFlags(strings.Fields(bad+" --progress off"), io.Discard)
		if err == nil {
			err = cfg.withDefaults().validate()
		}
		if !errors.Is(err, ErrConfig) {
			t.Errorf("%s: got %v, want ErrConfig", bad, err)
		}
	}
}

func TestMessageText(t *testing.T) {
	at := time.Unix(1700000000, 123456789)
	text := messageText(at, "u00042", 7, 80)
	if len(text) != 80 || !strings.HasPrefix(text, "t=1700000000123456789 u00042 #7 ") {
		t.Fatalf("text %q", text)
	}
	if got, ok := sentAt(text); !ok || !got.Equal(at) {
		t.Fatalf("sentAt = %v, %v; want %v", got, ok, at)
	}
	if _, ok := sentAt("hello"); ok {
		t.Fatal("sentAt read a time from a text without one")
	}
}

func TestMetricLine(t *testing.T) {
	name, labels, v, ok := metricLine(`chat_sessions{transport="sse"} 42`)
	if !ok || name != "chat_sessions" || labelValue(labels, "transport") != "sse" || v != 42 {
		t.Errorf("got %q %q %v %v", name, labels, v, ok)
	}
	name, _, v, ok = metricLine("process_resident_memory_bytes 1.2345e+08")
	if !ok || name != "process_resident_memory_bytes" || v != 1.2345e8 {
		t.Errorf("got %q %v %v", name, v, ok)
	}
	if _, _, _, ok := metricLine("# HELP go_goroutines x"); ok {
		t.Error("a comment parsed as a sample")
	}
}

// TestBucketQuantile: the server's delivery quantiles come from what its
// histogram gained over the measured phase, as bucket upper bounds.
func TestBucketQuantile(t *testing.T) {
	inf := math.Inf(1)
	start := map[float64]float64{0.1: 50, 1: 60, inf: 60}
	end := map[float64]float64{0.1: 140, 1: 159, inf: 160} // gained: 90 ≤ 0.1, 9 in (0.1, 1], 1 past 1
	for _, c := range []struct{ q, want float64 }{{0.5, 0.1}, {0.9, 0.1}, {0.95, 1}, {0.99, 1}, {0.999, inf}} {
		if got := bucketQuantile(start, end, c.q); got != c.want {
			t.Errorf("q %v: %v, want %v", c.q, got, c.want)
		}
	}
	if got := bucketQuantile(end, end, 0.99); got != 0 {
		t.Errorf("nothing gained: %v, want 0", got)
	}
	if got := bucketQuantile(nil, nil, 0.99); got != 0 {
		t.Errorf("no histogram: %v, want 0", got)
	}
	// A server past the last bound still gets a report (JSON has no +Inf).
	b, err := json.Marshal(ServerResult{DeliveryP50MS: 250, DeliveryP99MS: boundMS(inf)})
	if err != nil || !strings.Contains(string(b), `"delivery_p50_ms":250`) || !strings.Contains(string(b), `"delivery_p99_ms":"+Inf"`) {
		t.Errorf("a bound past the last bucket in JSON: %s (%v)", b, err)
	}
	_, labels, v, ok := metricLine(`chat_delivery_seconds_bucket{transport="websocket",le="+Inf"} 7`)
	if le, err := strconv.ParseFloat(labelValue(labels, "le"), 64); !ok || err != nil || le != inf || v != 7 {
		t.Errorf("bucket line: le %v (%v), value %v", le, err, v)
	}
}

// TestServers checks --servers: the first node is the tool's own target
// unless --url says otherwise, and users are dealt to the nodes in turn,
// so that every room spans them.
func TestServers(t *testing.T) {
	nodes := []string{"http://127.0.0.1:8081", "http://127.0.0.1:8082", "http://127.0.0.1:8083"}
	cfg, err := ParseFlags([]string{"--servers", strings.Join(nodes, ", "), "--progress", "off"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil || !slices.Equal(cfg.Servers, nodes) || cfg.URL != nodes[0] {
		t.Fatalf("servers %q, url %q, %v; want the three nodes and the first as url", cfg.Servers, cfg.URL, err)
	}
	cfg, err = ParseFlags([]string{"--servers", strings.Join(nodes, ","), "--url", nodes[2], "--progress", "off"}, io.Discard)
	if err != nil || cfg.withDefaults().URL != nodes[2] {
		t.Fatalf("an explicit --url: got %q, %v", cfg.URL, err)
	}
	cfg.Users, cfg.RoomSize = []int{7}, 4
	var auths []*authority
	for _, n := range nodes {
		auths = append(auths, &authority{base: n})
	}
	r := newRun(cfg.withDefaults(), 7, auths, nil, nil)
	for i, u := range r.users {
		if u.srv != i%3 || r.auths[u.srv].base != nodes[i%3] {
			t.Errorf("user %d on node %d, want %d", i, u.srv, i%3)
		}
	}
	if r.users[0].room != r.users[3].room || r.users[4].room == r.users[3].room {
		t.Errorf("rooms %q %q %q: want users 0-3 in one room", r.users[0].room, r.users[3].room, r.users[4].room)
	}
}

// TestLedger feeds one user's ledger a gap, a repeat and a short tail,
// and checks what the exactly-once check makes of them.
func TestLedger(t *testing.T) {
	r := newRun(Config{URL: "http://127.0.0.1:9", Users: []int{2}, RoomSize: 2, NoReads: true}.withDefaults(), 2, []*authority{{}}, nil, nil)
	good, bad := r.users[0], r.users[1]
	for _, u := range r.users {
		u.c = client.New(client.Config{})
		u.onJoined(time.Now(), &protocol.Envelope{Type: protocol.TypeJoined, Room: u.room, Head: protocol.Ptr(uint64(3))})
	}
	for _, seq := range []uint64{4, 5, 6, 7} {
		good.onMessage(time.Now(), seq)
	}
	for _, seq := range []uint64{4, 6, 6, 5} { // 5 skipped, 6 twice, 5 late; 7 never
		bad.onMessage(time.Now(), seq)
	}
	k := r.check(map[string]uint64{good.room: 7})
	want := Check{Checked: 2, Expected: 8, Received: 8, Lost: 2, Behind: 1, Duplicated: 2}
	if k != want {
		t.Fatalf("check %+v, want %+v", k, want)
	}
	if r.cnt.subscribed.Load() != 2 {
		t.Fatalf("%d subscribed, want 2", r.cnt.subscribed.Load())
	}
}

// TestRestConns: workloads whose SSE and poll users send and read over
// HTTP get the larger pool of short-call connections; idle and storm,
// whose short calls are connects, keep the small one.
func TestRestConns(t *testing.T) {
	for w, want := range map[string]int{Idle: restConnsPerPool, Storm: restConnsPerPool,
		Chat: sendConnsPerPool, Broadcast: sendConnsPerPool} {
		if got := restConns(Config{Workload: w}); got != want {
			t.Errorf("%s: %d connections a pool, want %d", w, got, want)
		}
	}
	if sendConnsPerPool <= restConnsPerPool {
		t.Errorf("the send pool (%d) is not larger than the connect pool (%d)", sendConnsPerPool, restConnsPerPool)
	}
}

// TestScrapeCutOff checks that a /metrics answer cut off before its end
// reads as not up, not as a server with no CPU time: the first
// measured sample's CPU total read as 0 made a run's mean come out at
// several cores.
func TestScrapeCutOff(t *testing.T) {
	var cut atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		const head = "go_goroutines 12\n"
		if !cut.Load() {
			fmt.Fprint(w, head+"process_cpu_seconds_total 42\n")
			return
		}
		// The answer promises more than it sends, and the connection
		// closes mid-body, as a scrape cut off by its deadline ends.
		w.Header().Set("Content-Length", "4096")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, head)
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	if rd := scrape(context.Background(), srv.Client(), srv.URL); !rd.up || rd.cpu != 42 || rd.goroutines != 12 {
		t.Fatalf("a whole answer: up %v, cpu %v, goroutines %d", rd.up, rd.cpu, rd.goroutines)
	}
	cut.Store(true)
	if rd := scrape(context.Background(), srv.Client(), srv.URL); rd.up {
		t.Fatalf("an answer cut off reads as up (cpu %v, goroutines %d)", rd.cpu, rd.goroutines)
	}
}

// TestStormTimes: ready is /readyz's answer, or the first client back if
// sooner, so no client counts as back before the server was ready; each
// client's time is counted from it and from the crash.
func TestStormTimes(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for _, tc := range []struct {
		name      string
		readyz    int
		resub     []int
		ready     int
		fromReady []int
	}{
		{"readyz first", 500, []int{700, 600, 900}, 500, []int{200, 100, 400}},
		{"a client first", 1800, []int{1900, 1200, 2500}, 1200, []int{700, 0, 1300}},
		{"nobody back", 500, nil, 500, []int{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var resub []time.Time
			for _, ms := range tc.resub {
				resub = append(resub, at(ms))
			}
			ready, fromReady, fromDown := stormTimes(t0, at(tc.readyz), resub)
			if !ready.Equal(at(tc.ready)) {
				t.Errorf("ready at %v, want %v", ready.Sub(t0), at(tc.ready).Sub(t0))
			}
			if len(fromReady) != len(tc.resub) || len(fromDown) != len(tc.resub) {
				t.Fatalf("%d and %d times for %d clients", len(fromReady), len(fromDown), len(tc.resub))
			}
			for i, ms := range tc.fromReady {
				if fromReady[i] != time.Duration(ms)*time.Millisecond || fromDown[i] != time.Duration(tc.resub[i])*time.Millisecond {
					t.Errorf("client %d: %v after ready and %v after the crash, want %dms and %dms", i, fromReady[i], fromDown[i], ms, tc.resub[i])
				}
			}
		})
	}
}

func TestParseProcCPU(t *testing.T) {
	for _, tc := range []struct {
		stat string
		want time.Duration
		ok   bool
	}{
		{"4242 (chatd) S 1 4242 4242 0 -1 4194560 2519 0 0 0 137 25 0 0 20 0 9 0 1234 0 0", 1620 * time.Millisecond, true},
		{"4242 (a b) c)) R 1 4242 4242 0 -1 0 0 0 0 0 3 4 0 0", 70 * time.Millisecond, true},
		{"4242 (chatd) S 1 2", 0, false},
		{"garbage", 0, false},
		{"4242 (chatd) S 1 4242 4242 0 -1 0 0 0 0 0 x 4 0 0", 0, false},
	} {
		got, ok := parseProcCPU([]byte(tc.stat))
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseProcCPU(%q) = %v, %v; want %v, %v", tc.stat, got, ok, tc.want, tc.ok)
		}
	}
}
