package core

import (
	"testing"
	"time"
	"unsafe"
)

// TestSessionSizeClass: a Session fits the allocator's 384-byte size
// class. The next class is 416 bytes, 32 more a connection for a field
// that did not find a place in the padding (see SessionOptions).
func TestSessionSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Session{}); n > 384 {
		t.Fatalf("a Session is %d bytes, over the 384-byte size class", n)
	}
}

// TestChosenWait: the part of a frame's wait that the write delay was,
// for frames that came before, during and after it, and for none.
func TestChosenWait(t *testing.T) {
	const ms = time.Millisecond
	for _, c := range []struct {
		age, began, ended, want time.Duration
	}{
		{900 * ms, 600 * ms, 100 * ms, 500 * ms}, // came before: the whole delay
		{300 * ms, 600 * ms, 100 * ms, 200 * ms}, // came during: the rest of it
		{50 * ms, 600 * ms, 100 * ms, 0},         // came after it ended
		{900 * ms, 0, 0, 0},                      // no delay
		{900 * ms, 600 * ms, 0, 600 * ms},        // ended just now
	} {
		if got := chosenWait(c.age, c.began, c.ended); got != c.want {
			t.Errorf("chosenWait(%v, %v, %v) = %v, want %v", c.age, c.began, c.ended, got, c.want)
		}
	}
}
