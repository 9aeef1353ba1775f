package core

import (
	"testing"
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
