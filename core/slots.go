package core

// writeSlots are the places among the session writers at work
// (Config.WritersRunning). A writer with a batch waits for one, parked,
// and takes its queue once it has it; it gives it back before its
// transport's Write, or, with a SlotWriter, the transport gives it back
// (see Slot). Thousands of writers woken by a busy room then wait in the
// gate's queue instead of the scheduler's run queue, where every read,
// commit and fan-out would have waited behind them.
type writeSlots struct {
	gate     chan struct{} // a token for each slot held; static after construction
	counters *counters     // the hub's; static after construction
}

var _ Slot = (*writeSlots)(nil)

// acquire takes a slot, waiting, counted as waiting, if none is free;
// it gives up, and reports false, once done is closed.
func (w *writeSlots) acquire(done <-chan struct{}) bool {
	select {
	case w.gate <- struct{}{}:
		return true
	default:
	}
	w.counters.waiting.Add(1)
	defer w.counters.waiting.Add(-1)
	select {
	case w.gate <- struct{}{}:
		return true
	case <-done:
		return false
	}
}

// Release gives a slot back.
func (w *writeSlots) Release() { <-w.gate }

// Blocked gives a slot back for a write that waits for its client, and
// counts it.
func (w *writeSlots) Blocked() {
	<-w.gate
	w.counters.blocked.Add(1)
}
