package core

import "time"

// janitorEvery is how often presence leases are checked.
const janitorEvery = time.Second

// heartbeatSlots is how many parts the heartbeat interval is cut into. A
// session is pinged in the slot its id falls in, so a node's pings, and
// the writer wake-ups they cause, are spread over the interval instead of
// firing for every session in the same instant.
const heartbeatSlots = 16

// startHeartbeats starts, once, the goroutine that queues a ping to every
// session that wants heartbeats, once per Config.Heartbeat, each in its
// own slot of the interval. One goroutine for the node replaces a ticker
// per session. Called with h.mu held, while not closing.
func (h *Hub) startHeartbeats() {
	if h.heartbeatOn {
		return
	}
	h.heartbeatOn = true
	slot := 0
	h.every(h.cfg.Heartbeat/heartbeatSlots, func() {
		h.heartbeat(uint64(slot))
		slot = (slot + 1) % heartbeatSlots
	})
}

// heartbeat pings the sessions of one slot.
func (h *Hub) heartbeat(slot uint64) {
	h.ForEachSession(func(s *Session) {
		if s.id%heartbeatSlots != slot || !s.opts.Heartbeat {
			return
		}
		if !s.offer(pingFrame) {
			h.drop(dropPingFull)
		}
	})
}

// startJanitor starts, once, the goroutine that expires presence leases.
// It runs only on hubs that have lease sessions (poll). It must not be
// called with h.mu or a room's mu held.
func (h *Hub) startJanitor() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.janitorOn || h.closing {
		return
	}
	h.janitorOn = true
	h.every(janitorEvery, h.expireLeases)
}

// every runs fn every d in a goroutine of the hub's, until Shutdown.
// Called with h.mu held, while not closing: Shutdown sets closing under
// mu before it waits for these goroutines.
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
	h.counters.polls.sweep(now)
}
