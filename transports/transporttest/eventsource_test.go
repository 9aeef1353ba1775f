package transporttest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chatd/chatd/core"
)

const chromium = "/usr/bin/chromium"

// esPage is a bare page whose EventSource records every message seq it
// receives. Its URL asks for the room from seq 0 (since=): a reconnect
// that ignored Last-Event-ID would replay from 0 and show duplicates.
const esPage = `<!doctype html><meta charset="utf-8"><title>es</title><script src="/es.js"></script>`

const esScript = `
window.seqs = []; window.opens = 0; window.lastIds = [];
var token = new URLSearchParams(location.search).get('token');
var es = new EventSource('/v1/sse?rooms=es-room&since=es-room:0&token=' + encodeURIComponent(token));
es.onopen = function () { window.opens++; };
es.onmessage = function (ev) {
  var e = JSON.parse(ev.data);
  if (e.type === 'message') { window.seqs.push(e.seq); window.lastIds.push(ev.lastEventId); }
};`

// A real browser's EventSource, dropped by the server, reconnects by
// itself with Last-Event-ID, and the page gets exactly the missed messages.
func TestBrowserEventSourceResumes(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("%s not installed (make deps installs it)", chromium)
	}
	web := http.NewServeMux()
	web.HandleFunc("/es.html", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, esPage)
	})
	web.HandleFunc("/es.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, esScript)
	})
	e := NewEnv(t, Options{Hub: fast, SSERetry: 300 * time.Millisecond, Web: web})
	fill(t, e, "es-room", 3, "before")

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium),
		chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true), chromedp.Flag("disable-quic", true))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	defer cancelT()
	if err := chromedp.Do(ctx, chromedp.Navigate(e.URL+"/es.html?token="+e.Token(t, "alice", Claims{}))); err != nil {
		t.Fatal(err)
	}
	eval := func(expr string, out any) {
		t.Helper()
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatal(err)
		}
	}
	waitSeqs := func(want int) []int {
		t.Helper()
		var seqs []int
		deadline := time.Now().Add(30 * time.Second)
		for {
			eval(`window.seqs`, &seqs)
			if len(seqs) >= want || time.Now().After(deadline) {
				return seqs
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if got := waitSeqs(3); fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("before the drop the page got %v", got)
	}

	// The server drops the stream; messages 4..6 are stored while the
	// browser waits out its retry hint.
	e.Hub.ForEachSession(func(s *core.Session) {
		if s.TransportName() == "sse" {
			s.Close(core.Disconnect{Code: 4009, Reason: "dropped by the test"})
		}
	})
	fill(t, e, "es-room", 3, "missed")
	got := waitSeqs(6)
	var opens int
	eval(`window.opens`, &opens)
	if fmt.Sprint(got) != "[1 2 3 4 5 6]" {
		t.Fatalf("after the reconnect the page got %v, want exactly [1 2 3 4 5 6]", got)
	}
	if opens < 2 {
		t.Fatalf("the EventSource opened %d times; the drop did not happen", opens)
	}
}
