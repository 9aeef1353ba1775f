package redistest

import (
	"strings"
	"testing"
)

func TestStartKillRestart(t *testing.T) {
	s := Start(t, Options{Durable: true})
	if r, err := s.Do("SET", "k", "v"); err != nil || r != "+OK" {
		t.Fatalf("SET: %q %v", r, err)
	}
	if r, err := s.Do("CONFIG", "GET", "appendfsync"); err != nil || !strings.HasPrefix(r, "*2") {
		t.Fatalf("CONFIG GET: %q %v", r, err)
	}
	s.Kill()
	if _, err := s.Do("PING"); err == nil {
		t.Fatal("PING answered after Kill")
	}
	s.Restart()
	if r, err := s.Do("EXISTS", "k"); err != nil || r != ":1" {
		t.Fatalf("EXISTS after restart on AOF: %q %v (the write was lost)", r, err)
	}
}

// TestProxy: commands go through the proxy; a cut closes and refuses
// connections until restored.
func TestProxy(t *testing.T) {
	s := Start(t, Options{})
	p := NewProxy(t, s.Addr)
	addr := strings.TrimSuffix(strings.TrimPrefix(p.URL(), "redis://"), "/0")
	if err := ping(t.Context(), addr); err != nil {
		t.Fatalf("PING through the proxy: %v", err)
	}
	p.Cut()
	if err := ping(t.Context(), addr); err == nil {
		t.Fatal("PING through a cut proxy succeeded")
	}
	p.Restore()
	if err := ping(t.Context(), addr); err != nil {
		t.Fatalf("PING through the restored proxy: %v", err)
	}
}

func TestCommand(t *testing.T) {
	for _, c := range []struct {
		in   string
		end  int
		name string
	}{
		{"*2\r\n$9\r\nSUBSCRIBE\r\n$1\r\nr\r\n*1\r\n$4\r\nping\r\n", 26, "subscribe"},
		{"*2\r\n$9\r\nsubscribe\r\n$1\r\n", -1, ""},
		{"*2\r\n$9\r\nsubscr", -1, ""},
		{"", -1, ""},
		{"PING\r\n", -2, ""},
	} {
		if end, name := command([]byte(c.in)); end != c.end || name != c.name {
			t.Errorf("command(%q) = %d, %q; want %d, %q", c.in, end, name, c.end, c.name)
		}
	}
}
