package client

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestBackoff checks full jitter: every delay is in [0, min(max,
// base·2^n)], the bound doubles until the cap, and draws spread over it.
func TestBackoff(t *testing.T) {
	const base, ceiling = time.Second, 30 * time.Second
	top := func(k int64) int64 { return k - 1 } // the largest draw
	zero := func(int64) int64 { return 0 }
	var prev time.Duration
	for n := 0; n < 70; n++ {
		want := ceiling
		if n < 5 {
			want = base << n // 1s, 2s, 4s, 8s, 16s; 32s is capped
		}
		if got := backoff(n, base, ceiling, top); got != want {
			t.Fatalf("attempt %d: largest delay %v, want %v", n, got, want)
		}
		if got := backoff(n, base, ceiling, zero); got != 0 {
			t.Fatalf("attempt %d: smallest delay %v, want 0", n, got)
		}
		if want < prev {
			t.Fatalf("attempt %d: bound %v shrank from %v", n, want, prev)
		}
		prev = want
	}
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 8 {
		bound := min(ceiling, base<<n)
		var lo, hi time.Duration = bound, 0
		for range 2000 {
			d := backoff(n, base, ceiling, r.Int64N)
			if d < 0 || d > bound {
				t.Fatalf("attempt %d: delay %v outside [0, %v]", n, d, bound)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		if lo > bound/10 || hi < bound*9/10 {
			t.Fatalf("attempt %d: delays span only [%v, %v] of [0, %v]: not full jitter", n, lo, hi, bound)
		}
	}
}

// TestReconnectHint reads the reconnect_ms that close reasons carry.
func TestReconnectHint(t *testing.T) {
	for reason, want := range map[string]time.Duration{
		"server shutting down; reconnect_ms=1500": 1500 * time.Millisecond,
		"reconnect_ms=0":        0,
		"normal":                0,
		"x; reconnect_ms=12abc": 12 * time.Millisecond,
	} {
		if got := reconnectHint(reason); got != want {
			t.Errorf("reconnectHint(%q) = %v, want %v", reason, got, want)
		}
	}
}
