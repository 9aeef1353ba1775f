package main

import (
	"io"
	"net/http"
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
	// Mutex contention is sampled only while a mutex profile is taken
	// over a window.
	if f := runtime.SetMutexProfileFraction(-1); f != 0 {
		t.Fatalf("mutex sampling on (1 in %d) with no profile being taken", f)
	}
	window := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + s.m.debug.Addr().String() + "/debug/pprof/mutex?seconds=1")
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		window <- err
	}()
	on := false
	for !on {
		select {
		case err := <-window:
			t.Fatalf("the window ended (%v) and mutex sampling never came on", err)
		default:
		}
		on = runtime.SetMutexProfileFraction(-1) == 100
		runtime.Gosched()
	}
	if err := <-window; err != nil {
		t.Fatal(err)
	}
	if f := runtime.SetMutexProfileFraction(-1); f != 0 {
		t.Fatalf("mutex sampling left on (1 in %d) after the window", f)
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
