package redis

import "sync"

// index protects one of this node's sets in Redis (the rooms where it
// holds presence fields, the users it counts connections for) so that the
// set never misses a member under which the node has state: a node that
// dies is cleaned up from its sets, and a member missing from them would
// stay behind for good (presence shown forever, a connection counted
// forever).
//
// Writes that may create state under a member first SADD it, between
// begin and end. Removing a member (SREM, when the node has no state left
// under it) and rewriting a member's state from the node's own records
// are guarded: guard skips members with a write in flight, and a write
// that begins while its member is guarded marks it touched, so that the
// guarded operation's owner adds it again or rewrites it again after.
type index struct {
	mu      sync.Mutex
	writes  map[string]int      // guarded by mu: writes in flight, by member
	guarded map[string]struct{} // guarded by mu: members under a guarded operation
	touched map[string]struct{} // guarded by mu: guarded members a write began on
}

func newIndex() index {
	return index{writes: map[string]int{}, guarded: map[string]struct{}{}, touched: map[string]struct{}{}}
}

// begin records a write in flight under m; end ends it.
func (x *index) begin(m string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.writes[m]++
	if _, ok := x.guarded[m]; ok {
		x.touched[m] = struct{}{}
	}
}

func (x *index) end(m string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.writes[m]--; x.writes[m] <= 0 {
		delete(x.writes, m)
	}
}

// guard returns the members of ms with no write in flight and not already
// guarded, now guarded. Every guarded member is released once.
func (x *index) guard(ms []string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := ms[:0:0]
	for _, m := range ms {
		if _, busy := x.guarded[m]; busy || x.writes[m] > 0 {
			continue
		}
		x.guarded[m] = struct{}{}
		delete(x.touched, m)
		out = append(out, m)
	}
	return out
}

// release ends the guard of ms and returns those a write began on
// meanwhile.
func (x *index) release(ms []string) map[string]bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	touched := map[string]bool{}
	for _, m := range ms {
		if _, ok := x.touched[m]; ok {
			touched[m] = true
		}
		delete(x.guarded, m)
		delete(x.touched, m)
	}
	return touched
}

// idleOf returns the members of only, or of every key of all when only is
// nil, for which idle holds.
func idleOf[V any](all map[string]V, only []string, idle func(string) bool) []string {
	var out []string
	if only == nil {
		for m := range all {
			if idle(m) {
				out = append(out, m)
			}
		}
		return out
	}
	for _, m := range only {
		if idle(m) {
			out = append(out, m)
		}
	}
	return out
}

// forgetIdle deletes from all the members of ms for which idle holds.
func forgetIdle[V any](all map[string]V, ms []string, idle func(string) bool) {
	for _, m := range ms {
		if idle(m) {
			delete(all, m)
		}
	}
}
