package httpx

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// A flood of rejected requests writes debug lines only, and one summary
// per interval; successes stay at info unless quiet.
func TestAccessLogSummarizesRejections(t *testing.T) {
	var buf bytes.Buffer
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a := NewAccessLog(AccessLogConfig{Logger: log, Interval: 10 * time.Second, Now: clock.now,
		Quiet: func(r *http.Request) bool { return r.URL.Path == "/quiet" }})
	status := http.StatusUnauthorized
	h := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			return // 200, written by nobody
		}
		w.WriteHeader(status)
	}))
	serve := func(path string) {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, path+"?ticket=secret", nil))
	}
	for range 5000 {
		serve("/")
		clock.t = clock.t.Add(time.Millisecond) // 5 s in all
	}
	status = http.StatusServiceUnavailable
	serve("/")
	if buf.Len() != 0 {
		t.Fatalf("rejections within one interval logged at info:\n%s", buf.String())
	}
	serve("/quiet")
	clock.t = clock.t.Add(5 * time.Second)
	serve("/ok") // the first request after the interval writes the summary
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "path=/ok status=200") ||
		!strings.Contains(lines[1], `level=WARN msg="rejected requests" statuses="401×5000 503×1" total=5001 window=10s`) {
		t.Fatalf("got %d lines, want the /ok line and one warn summary:\n%s", len(lines), buf.String())
	}
	if strings.Contains(buf.String(), "secret") {
		t.Fatalf("the query string was logged:\n%s", buf.String())
	}
	// A new window starts with the next rejection; only 4xx: info.
	buf.Reset()
	status = http.StatusTooManyRequests
	serve("/")
	clock.t = clock.t.Add(10 * time.Second)
	serve("/")
	if got := strings.TrimSpace(buf.String()); !strings.Contains(got, `level=INFO msg="rejected requests" statuses=429×1 total=1 window=10s`) || strings.Count(got, "\n") != 0 {
		t.Fatalf("second window: %s", got)
	}
}
