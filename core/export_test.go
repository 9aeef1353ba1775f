package core

import "time"

// SetDeliveryLatency primes h's recent delivery latency, as if frames had
// been taking d to be written for a while.
func SetDeliveryLatency(h *Hub, d time.Duration) {
	for range 64 {
		h.counters.delivery.add(d)
	}
}

// WriteDelay is h.writeDelay, for tests.
func WriteDelay(h *Hub) time.Duration { return h.writeDelay() }

// Writing reports whether s has a writer goroutine, running or parked.
func Writing(s *Session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writing
}

// QueueCap is the capacity of s's queue arrays, the spare included.
func QueueCap(s *Session) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cap(s.queue) + cap(s.spare)
}

// QueuedTypes lists the types of the frames in s's queue.
func QueuedTypes(s *Session) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.queue))
	for i, f := range s.queue {
		out[i] = f.Type
	}
	return out
}

// PresenceDue is presenceDue, for tests.
var PresenceDue = presenceDue

// PreloadUsers runs h's read of the engine's users again with other
// bounds, and returns how many users and listed rooms it took.
func PreloadUsers(h *Hub, maxUsers, maxPairs int) (users, pairs int) {
	return h.preloadUsers(maxUsers, maxPairs)
}

// Pausing reports whether s's writer is waiting its write delay.
func Pausing(s *Session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pausing
}

// Lingering reports whether s's writer is parked with nothing to write,
// waiting for a kick or its linger.
func Lingering(s *Session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writing && s.parked && !s.holding && len(s.queue) == 0
}

// HubOf returns s's hub.
func HubOf(s *Session) *Hub { return s.hub }
