package httpx

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// AccessLogConfig tunes an AccessLog. The zero value is valid.
type AccessLogConfig struct {
	// Logger receives the lines; nil means slog.Default().
	Logger *slog.Logger
	// Interval is the shortest time between two summaries of rejected
	// requests; 10s when zero.
	Interval time.Duration
	// Quiet marks requests whose success is logged at debug rather than
	// info: the high-volume ones (a long-poll, a send). Nil: none.
	Quiet func(*http.Request) bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// AccessLog logs requests: method, path, status and duration, never the
// query string, where tickets and tokens travel.
//
//   - A success (status below 400) is one info line, or one debug line if
//     Quiet says so.
//   - A rejected request (400 and up) is one debug line, and is counted by
//     status. At most once per Interval, a summary line gives the counts
//     ("rejected requests", statuses "401×98123 429×3", the window's
//     length): info, or warn when a 5xx is among them. So a flood of bad
//     requests costs a few lines, not one each.
//
// No goroutine or timer is started: the summary of a window is written by
// the first request, of any kind, that ends after the window has lasted
// Interval (health checks keep that prompt on an otherwise idle server).
// Memory is one counter per distinct status. Safe for concurrent use.
type AccessLog struct {
	// Static after construction.
	log      *slog.Logger
	interval time.Duration
	quiet    func(*http.Request) bool
	now      func() time.Time

	mu       sync.Mutex
	rejected map[int]uint64 // by status, in the current window; guarded by mu.
	since    time.Time      // the window's first rejection; guarded by mu.
}

// NewAccessLog returns an AccessLog for cfg.
func NewAccessLog(cfg AccessLogConfig) *AccessLog {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Quiet == nil {
		cfg.Quiet = func(*http.Request) bool { return false }
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &AccessLog{log: cfg.Logger, interval: cfg.Interval, quiet: cfg.Quiet, now: cfg.Now,
		rejected: make(map[int]uint64)}
}

// Middleware logs each request as the AccessLog doc says, once next has
// returned.
func (a *AccessLog) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := a.now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		a.record(r, sw.status, start)
	})
}

// record logs one finished request.
func (a *AccessLog) record(r *http.Request, status int, start time.Time) {
	if status == 0 {
		status = http.StatusOK // net/http sends 200 for a handler that wrote nothing
	}
	now := a.now()
	level := slog.LevelInfo
	if status >= 400 || a.quiet(r) {
		level = slog.LevelDebug
	}
	ctx := r.Context()
	if a.log.Enabled(ctx, level) {
		a.log.Log(ctx, level, "http", "method", r.Method, "path", r.URL.Path, "status", status,
			"dur", now.Sub(start).Round(time.Microsecond))
	}
	a.mu.Lock()
	var counts map[int]uint64
	var window time.Duration
	if len(a.rejected) > 0 && now.Sub(a.since) >= a.interval {
		counts, window = a.rejected, now.Sub(a.since)
		a.rejected = make(map[int]uint64)
	}
	if status >= 400 {
		if len(a.rejected) == 0 {
			a.since = now
		}
		a.rejected[status]++
	}
	a.mu.Unlock()
	if counts != nil {
		a.summarize(ctx, counts, window)
	}
}

// summarize writes one summary line for a window's rejected requests.
func (a *AccessLog) summarize(ctx context.Context, counts map[int]uint64, window time.Duration) {
	statuses := make([]int, 0, len(counts))
	var total uint64
	for s, n := range counts {
		statuses = append(statuses, s)
		total += n
	}
	slices.Sort(statuses)
	parts := make([]string, len(statuses))
	level := slog.LevelInfo
	for i, s := range statuses {
		parts[i] = fmt.Sprintf("%d×%d", s, counts[s])
		if s >= 500 {
			level = slog.LevelWarn
		}
	}
	a.log.Log(ctx, level, "rejected requests", "statuses", strings.Join(parts, " "), "total", total,
		"window", window.Round(time.Millisecond))
}

// statusWriter records the status. It keeps Flush, Hijack and Unwrap so
// that streams and WebSocket upgrades pass through.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack goes through the writers beneath to the server's (their Unwrap
// chain), as reportWriter's does.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
