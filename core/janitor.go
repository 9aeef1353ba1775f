package core

import "time"

// janitorEvery is how often presence leases are checked.
const janitorEvery = time.Second

// startHeartbeats starts, once, the goroutine that queues a ping to every
// session that wants heartbeats, every Config.Heartbeat. One goroutine for
// the node replaces a ticker per session.
func (h *Hub) startHeartbeats() {
	h.heartbeatOnce.Do(func() { h.every(h.cfg.Heartbeat, h.heartbeat) })
}

func (h *Hub) heartbeat() {
	h.ForEachSession(func(s *Session) {
		if s.opts.Heartbeat && !s.offer(pingFrame) {
			h.metrics.dropped.WithLabelValues("ping_queue_full").Inc()
		}
	})
}

// startJanitor starts, once, the goroutine that expires presence leases.
// It runs only on hubs that have lease sessions (poll).
func (h *Hub) startJanitor() {
	h.janitorOnce.Do(func() { h.every(janitorEvery, h.expireLeases) })
}

// every runs fn every d in a goroutine of the hub's, until Shutdown.
func (h *Hub) every(d time.Duration, fn func()) {
	h.bg.Add(1)
	go func() {
		defer h.bg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
				fn()
			}
		}
	}()
}

// expireLeases ends lapsed presence leases in every room and drops rooms
// left empty.
func (h *Hub) expireLeases() {
	h.mu.Lock()
	rooms := make([]*room, 0, len(h.rooms))
	for _, r := range h.rooms {
		rooms = append(rooms, r)
	}
	h.mu.Unlock()
	now := h.cfg.Now()
	for _, r := range rooms {
		r.expireLeases(now)
		h.releaseIfEmpty(r)
	}
}
