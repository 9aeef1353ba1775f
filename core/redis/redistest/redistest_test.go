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
