package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sample is one point of a run's timeline.
type Sample struct {
	T                float64        `json:"t"` // seconds since the run started
	Phase            string         `json:"phase"`
	Deliveries       uint64         `json:"deliveries"` // in this interval
	DeliveriesPerSec float64        `json:"deliveries_per_sec"`
	SendsPerSec      float64        `json:"sends_per_sec"` // acked
	P50MS            float64        `json:"p50_ms"`        // this interval's latency
	P99MS            float64        `json:"p99_ms"`
	Errors           uint64         `json:"errors"`       // so far
	Tiers            map[string]int `json:"tiers"`        // our clients connected, by tier
	ClientLevel      int            `json:"client_level"` // the highest level our clients heard
	Level            int            `json:"level"`        // the server's level; -1 unknown
	Sessions         map[string]int `json:"sessions"`     // the server's sessions by transport (/metrics)
	Connections      map[string]int `json:"connections"`  // the admin status's count, polling users included
	ServerUp         bool           `json:"server_up"`    // /metrics answered
	ServerRSS        uint64         `json:"server_rss"`   // bytes; 0 unknown
	ServerHeap       uint64         `json:"server_heap"`  // heap in use, bytes
	ServerGoroutines int            `json:"server_goroutines"`
	ServerCPU        float64        `json:"server_cpu"`       // cores busy since the previous scrape (noisy: scrapes are late under load)
	ServerCPUTotal   float64        `json:"server_cpu_total"` // process_cpu_seconds_total
	ServerAt         float64        `json:"server_at"`        // when the scrape was read, seconds since the run started
	LoadRSS          uint64         `json:"load_rss"`         // this tool's
	LoadGoroutines   int            `json:"load_goroutines"`
	LoadCPU          float64        `json:"load_cpu"` // cores busy over the interval
}

// reading is what the server's /metrics and admin status say.
type reading struct {
	up         bool
	rss, heap  uint64
	goroutines int
	level      int // -1 unknown
	sessions   map[string]int
	started    float64   // process_start_time_seconds
	cpu        float64   // process_cpu_seconds_total
	at         time.Time // about when the server read its numbers: halfway through the scrape
	// delivery is chat_delivery_seconds summed over transports: the
	// cumulative count by bucket bound (le, +Inf included).
	delivery map[float64]float64
}

// LevelChange is a change of the server's degradation level.
type LevelChange struct {
	T    float64 `json:"t"` // seconds since the run started
	From int     `json:"from"`
	To   int     `json:"to"`
	By   string  `json:"by,omitempty"` // who or what, from the admin status
}

// monitor samples a run every Sample interval: the tool's own counters
// and the server's /metrics and admin status.
type monitor struct {
	r     *run         // Static after construction.
	http  *http.Client // Static after construction.
	admin *adminToken  // Static after construction.

	// Owned by loop: the previous CPU readings.
	lastCPU    time.Duration
	lastServer reading

	mu      sync.Mutex
	samples []Sample // Guarded by mu.
}

func newMonitor(r *run, hc *http.Client, admin *adminToken) *monitor {
	return &monitor{r: r, http: hc, admin: admin}
}

// loop samples until ctx ends.
func (m *monitor) loop(ctx context.Context) {
	t := time.NewTicker(m.r.cfg.Sample)
	defer t.Stop()
	last := time.Now()
	m.lastCPU = cpuTime()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// The tick's own time may be stale when the tool is busy;
			// rates are per the interval actually measured.
			now := time.Now()
			m.tick(ctx, now.Sub(last))
			last = now
		}
	}
}

// tick takes one sample of the interval that just ended.
func (m *monitor) tick(ctx context.Context, elapsed time.Duration) Sample {
	r := m.r
	w := r.window.Swap(&window{})
	sum := w.lat.Summary()
	secs := max(elapsed.Seconds(), 1e-3)
	s := Sample{
		T: time.Since(r.start).Seconds(), Phase: *r.phase.Load(), Deliveries: w.deliveries.Load(),
		DeliveriesPerSec: float64(w.deliveries.Load()) / secs, SendsPerSec: float64(w.sends.Load()) / secs,
		P50MS: sum.P50MS, P99MS: sum.P99MS, Errors: r.errorTotal(), Tiers: map[string]int{},
		LoadRSS: selfRSS(), LoadGoroutines: runtime.NumGoroutine(), Level: -1,
	}
	for _, u := range r.users {
		if t := u.tierNow.Load(); t >= 0 {
			s.Tiers[tierNames[t]]++
		}
		s.ClientLevel = max(s.ClientLevel, int(u.level.Load()))
	}
	cpu := cpuTime()
	s.LoadCPU, m.lastCPU = (cpu-m.lastCPU).Seconds()/secs, cpu
	rd := m.read(ctx)
	s.ServerUp, s.ServerRSS, s.ServerHeap, s.ServerGoroutines = rd.up, rd.rss, rd.heap, rd.goroutines
	s.Level, s.Sessions = rd.level, rd.sessions
	if prev := m.lastServer; rd.up && prev.up && rd.started == prev.started && rd.cpu >= prev.cpu && rd.at.After(prev.at) {
		s.ServerCPU = (rd.cpu - prev.cpu) / rd.at.Sub(prev.at).Seconds()
	}
	if rd.up {
		m.lastServer = rd
		s.ServerCPUTotal, s.ServerAt = rd.cpu, rd.at.Sub(r.start).Seconds()
	}
	if st, err := m.admin.status(ctx, m.http, r.cfg.URL); err == nil {
		s.Connections = st.Connections
		if s.Level < 0 {
			s.Level = st.Level
		}
	}
	m.mu.Lock()
	m.samples = append(m.samples, s)
	m.mu.Unlock()
	r.prog.sample(r, s)
	return s
}

// timeline returns the samples so far.
func (m *monitor) timeline() []Sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Sample(nil), m.samples...)
}

// read scrapes the nodes' /metrics, bounded by two seconds.
func (m *monitor) read(ctx context.Context) reading {
	return scrapeAll(ctx, m.http, m.r.cfg.servers())
}

// scrapeAll scrapes every node at once and adds them up: memory,
// goroutines, CPU and sessions are the sums, the level the highest, the
// start time a sum (it changes when any node restarts), and the reading
// time the mean. It reads as up only if every node answered.
func scrapeAll(ctx context.Context, hc *http.Client, bases []string) reading {
	if len(bases) == 1 {
		return scrape(ctx, hc, bases[0])
	}
	rds := make([]reading, len(bases))
	var wg sync.WaitGroup
	for i, b := range bases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rds[i] = scrape(ctx, hc, b)
		}()
	}
	wg.Wait()
	sum := reading{up: true, level: -1, sessions: map[string]int{}, delivery: map[float64]float64{}}
	var at int64
	for _, rd := range rds {
		if !rd.up {
			return reading{level: -1}
		}
		sum.rss += rd.rss
		sum.heap += rd.heap
		sum.goroutines += rd.goroutines
		sum.level = max(sum.level, rd.level)
		sum.started += rd.started
		sum.cpu += rd.cpu
		at += rd.at.UnixNano() / int64(len(rds))
		for t, n := range rd.sessions {
			sum.sessions[t] += n
		}
		for le, n := range rd.delivery {
			sum.delivery[le] += n
		}
	}
	sum.at = time.Unix(0, at)
	return sum
}

// scrape reads the server's /metrics: memory, goroutines, level and
// sessions. A server without /metrics (or down), or an answer cut off
// before its end, reads as not up.
func scrape(ctx context.Context, hc *http.Client, base string) (rd reading) {
	rd.level = -1
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/metrics", nil)
	if err != nil {
		return rd
	}
	sent := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return rd
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return rd
	}
	rd.up, rd.sessions, rd.delivery = true, map[string]int{}, map[float64]float64{}
	// The server read its CPU time between our request and its answer.
	defer func() { rd.at = sent.Add(time.Since(sent) / 2) }()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 32<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, labels, v, ok := metricLine(sc.Text())
		if !ok {
			continue
		}
		switch name {
		case "process_resident_memory_bytes":
			rd.rss = uint64(v)
		case "go_memstats_heap_inuse_bytes":
			rd.heap = uint64(v)
		case "go_goroutines":
			rd.goroutines = int(v)
		case "process_start_time_seconds":
			rd.started = v
		case "process_cpu_seconds_total":
			rd.cpu = v
		case "chat_degrade_level":
			rd.level = int(v)
		case "chat_delivery_seconds_bucket":
			if le, err := strconv.ParseFloat(labelValue(labels, "le"), 64); err == nil {
				rd.delivery[le] += v
			}
		case "chat_sessions":
			if t := labelValue(labels, "transport"); t != "" {
				rd.sessions[t] = int(v)
			}
		}
	}
	if sc.Err() != nil {
		// Cut off (the timeout, under load): what was read is a part,
		// and a missing CPU total read as 0 had made a run's mean CPU
		// come out at several cores.
		return reading{level: -1}
	}
	return rd
}

// metricLine splits a Prometheus text line into name, labels and value.
func metricLine(line string) (name, labels string, v float64, ok bool) {
	if line == "" || line[0] == '#' {
		return "", "", 0, false
	}
	rest := line
	if i := strings.IndexAny(line, "{ "); i >= 0 && line[i] == '{' {
		j := strings.LastIndexByte(line, '}')
		if j < i {
			return "", "", 0, false
		}
		name, labels, rest = line[:i], line[i+1:j], line[j+1:]
	} else if i >= 0 {
		name, rest = line[:i], line[i:]
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return "", "", 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	return name, labels, v, err == nil
}

// labelValue finds key="value" in a label list.
func labelValue(labels, key string) string {
	for _, kv := range strings.Split(labels, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok && k == key {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// adminToken is the admin bearer token for GET /v1/admin/status; it is
// fetched again once after a 401 (a restarted dev-mode server).
type adminToken struct {
	a *authority // Static after construction.

	mu  sync.Mutex
	tok string // Guarded by mu.
	off bool   // the server has no admin API or refuses us; guarded by mu
}

// adminStatus is the part of GET /v1/admin/status the tool reads.
type adminStatus struct {
	Level       int            `json:"level"`
	Connections map[string]int `json:"connections"`
	History     []struct {
		From int       `json:"from"`
		To   int       `json:"to"`
		By   string    `json:"by"`
		At   time.Time `json:"at"`
	} `json:"history"`
}

// status reads the admin status; an error when there is none.
func (t *adminToken) status(ctx context.Context, hc *http.Client, base string) (adminStatus, error) {
	var st adminStatus
	for attempt := 0; attempt < 2; attempt++ {
		t.mu.Lock()
		tok, off := t.tok, t.off
		t.mu.Unlock()
		if off {
			return st, errors.New("no admin status")
		}
		if tok == "" {
			var err error
			if tok, err = t.a.token(ctx, "chatload-admin", true); err != nil {
				return st, err
			}
			t.mu.Lock()
			t.tok = tok
			t.mu.Unlock()
		}
		code, err := getJSON(ctx, hc, strings.TrimRight(base, "/")+"/v1/admin/status", tok, &st)
		switch {
		case code == http.StatusUnauthorized:
			t.mu.Lock()
			t.tok = ""
			t.mu.Unlock()
			continue
		case code == http.StatusNotFound || code == http.StatusForbidden:
			t.mu.Lock()
			t.off = true
			t.mu.Unlock()
		}
		return st, err
	}
	return st, errors.New("admin token refused")
}

// getJSON GETs url with a bearer token and decodes a 200 answer.
func getJSON(ctx context.Context, hc *http.Client, url, tok string, out any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return resp.StatusCode, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return resp.StatusCode, json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(out)
}

// levelChanges returns the level changes during the run: from the admin
// history when there is one (with who made them), else from the samples.
func levelChanges(r *run, st *adminStatus, samples []Sample) []LevelChange {
	var out []LevelChange
	if st != nil {
		for _, h := range st.History {
			if h.At.Before(r.start) || h.From == h.To {
				continue
			}
			out = append(out, LevelChange{T: h.At.Sub(r.start).Seconds(), From: h.From, To: h.To, By: h.By})
		}
		return out
	}
	prev := -1
	for _, s := range samples {
		l := s.Level
		if l < 0 {
			l = s.ClientLevel
		}
		if prev >= 0 && l != prev {
			out = append(out, LevelChange{T: s.T, From: prev, To: l})
		}
		prev = l
	}
	return out
}

func (r *run) errorTotal() uint64 {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	var n uint64
	for _, v := range r.errors {
		n += v
	}
	return n
}

// setLevel puts level ("auto" or "0".."3") to PUT /v1/admin/level.
func (t *adminToken) setLevel(ctx context.Context, hc *http.Client, base, level string) error {
	body := `{"mode":"auto"}`
	if level != "auto" {
		n, err := strconv.Atoi(level)
		if err != nil || n < 0 || n > 3 {
			return fmt.Errorf("--level %q: want auto or 0-3", level)
		}
		body = fmt.Sprintf(`{"mode":"manual","level":%d}`, n)
	}
	tok, err := t.a.token(ctx, "chatload-admin", true)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, strings.TrimRight(base, "/")+"/v1/admin/level", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("PUT /v1/admin/level %s: %s %s", body, resp.Status, msg)
	}
	return nil
}
