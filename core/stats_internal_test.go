package core

import (
	"testing"
	"time"
)

// TestAverageGoesStale: an average is believed for staleAfter after its
// last sample, then reads zero; a new sample brings it back.
func TestAverageGoesStale(t *testing.T) {
	var a average
	for range 64 {
		a.add(time.Second)
	}
	last := time.Unix(0, a.last.Load())
	if got := a.read(last.Add(staleAfter)); got < 900*time.Millisecond {
		t.Fatalf("read at staleAfter = %v, want about 1 s", got)
	}
	if got := a.read(last.Add(staleAfter + time.Millisecond)); got != 0 {
		t.Fatalf("read after staleAfter = %v, want 0", got)
	}
	a.add(time.Second)
	if got := a.read(time.Unix(0, a.last.Load())); got < 900*time.Millisecond {
		t.Fatalf("read after a new sample = %v, want about 1 s", got)
	}
}
