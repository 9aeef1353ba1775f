package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
)

func TestSpareProcs(t *testing.T) {
	for _, c := range []struct {
		current int
		env     string
		want    int
	}{
		{1, "", 2},  // one CPU: a spare P for the disk's waits
		{2, "", 2},  // enough already
		{8, "", 8},  // never fewer
		{1, "1", 1}, // the operator's explicit setting stands
	} {
		if got := spareProcs(c.current, c.env); got != c.want {
			t.Errorf("spareProcs(%d, %q) = %d, want %d", c.current, c.env, got, c.want)
		}
	}
}

// --debug-addr takes a loopback address only, and serves the profiles.
func TestDebugAddr(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:6060", ":6060", "10.0.0.1:6060", "example.com:6060", "nonsense"} {
		if err := (Config{DebugAddr: addr}).checkDebug(); err == nil {
			t.Errorf("--debug-addr %s accepted", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:6060", "[::1]:6060", "localhost:6060", ""} {
		if err := (Config{DebugAddr: addr}).checkDebug(); err != nil {
			t.Errorf("--debug-addr %s: %v", addr, err)
		}
	}
	s := startServer(t, "--debug-addr", "127.0.0.1:0")
	if s.m.debug == nil {
		t.Fatal("no debug listener")
	}
	resp, err := http.Get("http://" + s.m.debug.Addr().String() + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("profile: %d %.200s", resp.StatusCode, body)
	}
	// The mutex profile is served (its sampling windows: TestSampledWindows).
	resp3, err := http.Get("http://" + s.m.debug.Addr().String() + "/debug/pprof/mutex?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body3, _ := io.ReadAll(resp3.Body)
	resp3.Body.Close()
	if resp3.StatusCode != http.StatusOK || !strings.Contains(string(body3), "mutex") {
		t.Fatalf("mutex profile: %d %.200s", resp3.StatusCode, body3)
	}
	// Not on the public address.
	resp2, err := http.Get(s.base + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode == http.StatusOK {
		t.Fatal("profiles served on the public address")
	}
}

// Blocking is sampled only while a block profile is taken over a window:
// on when the first window opens, off when the last one ends, untouched
// by a profile without one.
func TestSampledWindows(t *testing.T) {
	events := make(chan bool, 8)
	h := sampled{"block", func(on bool) { events <- on }}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/pprof/block?debug=1", nil))
	if rec.Code != http.StatusOK || len(events) != 0 {
		t.Fatalf("a profile without a window: %d, %d changes to sampling", rec.Code, len(events))
	}
	open := func() (end func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		req := httptest.NewRequest(http.MethodGet, "/debug/pprof/block?seconds=3600", nil).WithContext(ctx)
		go func() { defer close(done); h.ServeHTTP(httptest.NewRecorder(), req) }()
		return func() { cancel(); <-done }
	}
	end1 := open()
	if on := <-events; !on {
		t.Fatal("the first window turned sampling off")
	}
	end2 := open()
	for n := 0; n != 2; runtime.Gosched() { // until the second window is counted
		windows.Lock()
		n = windows.n["block"]
		windows.Unlock()
	}
	end1()
	select {
	case on := <-events:
		t.Fatalf("sampling set to %v while a window was still open", on)
	default:
	}
	end2()
	if on := <-events; on {
		t.Fatal("the last window left sampling on")
	}
}
