package transporttest

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/chatd/chatd/internal/syncbuf"
)

// A flood of rejected requests (no credentials, a URL credential on a
// REST route, an expired token, a bad since=) writes one debug line each
// and no info line per request: the access log summarizes rejections at
// most once per interval instead.
func TestRejectedFloodIsQuiet(t *testing.T) {
	const perKind = 256 // a multiple of the 4 workers per kind
	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := NewEnv(t, Options{Logger: log})
	good := e.Token(t, "alice", Claims{})
	bearer := http.Header{"Authorization": {"Bearer " + good}}
	kinds := []struct {
		method, path string
		h            http.Header
		status       int
	}{
		{http.MethodPost, "/v1/send", nil, http.StatusUnauthorized},
		{http.MethodPost, "/v1/send?token=" + url.QueryEscape(good), nil, http.StatusUnauthorized},
		{http.MethodGet, "/v1/poll?rooms=a", http.Header{"Authorization": {"Bearer x.y.z"}}, http.StatusUnauthorized},
		{http.MethodGet, "/v1/poll?rooms=a&since=b:1", bearer, http.StatusBadRequest},
	}
	before := len(strings.Split(logs.String(), "\n"))
	var wg sync.WaitGroup
	for _, k := range kinds {
		for range 4 {
			wg.Go(func() {
				for range perKind / 4 {
					if status, _, body := rawDo(t, k.method, e.URL+k.path, k.h, nil); status != k.status {
						t.Errorf("%s %s: %d %s, want %d", k.method, k.path, status, body, k.status)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	lines := strings.Split(logs.String(), "\n")[before-1:]
	var debug, loud int
	for _, l := range lines {
		switch {
		case strings.Contains(l, "level=DEBUG") && strings.Contains(l, "msg=http"):
			debug++
		case strings.Contains(l, "level=INFO"), strings.Contains(l, "level=WARN"), strings.Contains(l, "level=ERROR"):
			loud++
			if !strings.Contains(l, `msg="rejected requests"`) {
				t.Errorf("a rejected request was logged above debug: %s", l)
			}
		}
	}
	if want := perKind * len(kinds); debug < want {
		t.Fatalf("%d debug access lines for %d rejected requests: the log was not captured", debug, want)
	}
	// The flood takes well under the 10 s interval; on a very slow machine
	// a summary or two may come out, never one line per request.
	if loud > 2 {
		t.Fatalf("%d lines above debug for %d rejected requests", loud, perKind*len(kinds))
	}
}
