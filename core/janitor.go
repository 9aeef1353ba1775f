package core

import "time"

// janitorEvery is how often presence leases are checked.
const janitorEvery = time.Second

// startJanitor starts, once, the goroutine that expires presence leases.
// It runs only on hubs that have lease sessions (poll), and stops at
// Shutdown.
func (h *Hub) startJanitor() {
	h.janitorOnce.Do(func() {
		h.janitorWG.Add(1)
		go h.janitor()
	})
}

func (h *Hub) janitor() {
	defer h.janitorWG.Done()
	t := time.NewTicker(janitorEvery)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			h.expireLeases()
		}
	}
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
