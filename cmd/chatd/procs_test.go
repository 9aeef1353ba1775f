package main

import (
	"io"
	"net/http"
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
