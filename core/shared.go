package core

import "sync"

// shared is what every session that carries one fanned-out frame has in
// common: transports keep, once per frame, what they derive from its
// bytes (a prepared WebSocket message, a compressed body), so a broadcast
// to N sessions is encoded once, not N times.
type shared struct {
	mu   sync.Mutex
	keys []any // Guarded by mu; a handful at most, one per transport form.
	vals []any // Guarded by mu.
}

// IsShared reports whether f was fanned out to several sessions with a
// shared cache, so that Shared builds once for all of them.
func (f Frame) IsShared() bool { return f.shared != nil }

// Shared returns what build makes of f's bytes, building it once per key
// for all the sessions that carry this frame when f was fanned out to
// several; otherwise it calls build each time. build must not retain or
// modify data beyond what it returns, and its result must be safe to use
// from several goroutines. Keys are compared with ==; use a package-level
// value of an unexported type.
func (f Frame) Shared(key any, build func(data []byte) any) any {
	if f.shared == nil {
		return build(f.Data)
	}
	c := f.shared
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, k := range c.keys {
		if k == key {
			return c.vals[i]
		}
	}
	v := build(f.Data)
	c.keys = append(c.keys, key)
	c.vals = append(c.vals, v)
	return v
}
