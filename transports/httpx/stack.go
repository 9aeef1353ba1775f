package httpx

import (
	"net/http"
	"unsafe"
)

// stackPad is the frame growStack takes: with what is below it, the stack
// of a request's goroutine grows to 16 KiB in one step.
const stackPad = 12 << 10

// GrowStack grows the stack of the goroutine that serves a request to
// path to 16 KiB before anything else runs on it, in one step.
//
// Go starts a goroutine's stack at 2 KiB (chatd's setting, see
// cmd/chatd) and doubles it by copying when a call needs more, walking
// every frame on it to adjust pointers: the deeper the stack when it
// grows, the more each growth costs. A WebSocket upgrade grows its
// goroutine three times (in the router, in the upgrade, in the joins of
// rooms=), each at a depth of 20 to 60 frames: about 19 µs of the
// 210 µs of CPU a reconnect cost in a storm of 10,000, 7% of the node's
// profile (docs/DESIGN.md, "A reconnect in one write"). Grown here, by the
// first middleware (of the router, or of the streaming endpoints looked
// up before it), a few frames deep, it is one short copy. The goroutine
// ends with the upgrade's handler (the connection is hijacked), so the
// larger stack is held only that long; other paths, whose goroutines
// idle on kept-alive connections or hold a poll, are left alone.
func GrowStack(path string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == path {
				growStack()
			}
			next.ServeHTTP(w, r)
		})
	}
}

// growStack takes a stackPad frame, so that calling it grows the stack
// to fit, and returns, leaving it grown.
//
//go:noinline
func growStack() {
	var pad [stackPad]byte
	touchStack(&pad)
}

// touchStack keeps pad, and so growStack's frame, from being optimized
// away; pad does not escape.
//
//go:noinline
func touchStack(pad *[stackPad]byte) { pad[0] = 1 }

// laneStackPad is the frame growLaneStack takes: with what is below it,
// the stack of a lane's goroutine grows to 8 KiB in one step.
const laneStackPad = 5 << 10

// growLaneStack grows the stack of a lane's goroutine to 8 KiB, as
// growStack does for an upgrade, before each request it serves. The
// goroutine lives as long as its connection and parks between requests
// with little on its stack, so the collector shrinks it back, and each
// poll grew it again deep in the handler (in the credential check):
// 4.8% of the node under a broadcast to 5,000 poll
// clients, where growing it here costs 1%. A poll needs no more than 8
// KiB, so a held poll holds no more stack than it did (the held polls'
// RSS a connection was the same, 17.6 against 17.8 KiB).
//
// A lane grows its stack again only when it has moved (stackAt): a
// stack moves when it is copied, grown or shrunk, so one that has not
// moved since it was grown is as large as it was then. Growing it before
// every request, already grown or not, cost 2% of the node (zeroing the
// pad).
//
//go:noinline
func growLaneStack() {
	var pad [laneStackPad]byte
	touchLaneStack(&pad)
}

// touchLaneStack keeps growLaneStack's pad from being optimized away.
//
//go:noinline
func touchLaneStack(pad *[laneStackPad]byte) { pad[0] = 1 }

// stackAt returns the address of a variable in its frame: called from
// the same place, it differs only if the stack has moved.
//
//go:noinline
func stackAt() uintptr {
	var b byte
	return uintptr(unsafe.Pointer(&b))
}
