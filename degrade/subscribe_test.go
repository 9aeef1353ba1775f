package degrade

import (
	"fmt"
	"log/slog"
	"sync"
	"testing"
)

// cancel closes the subscription's channel after what it holds, is
// idempotent, and later changes neither reach it nor panic.
func TestSubscribeCancelCloses(t *testing.T) {
	c := New(Config{})
	ch, cancel := c.Subscribe()
	if err := c.SetManual(LevelNoReceipts, 0, "test"); err != nil {
		t.Fatal(err)
	}
	cancel()
	cancel()
	if err := c.SetManual(LevelNoWS, 0, "test"); err != nil {
		t.Fatal(err)
	}
	got, ok := <-ch
	if !ok || got.To != LevelNoReceipts {
		t.Fatalf("buffered change = %+v, %v; want the change made before cancel", got, ok)
	}
	select {
	case got, ok := <-ch:
		if ok {
			t.Fatalf("received %+v after cancel; want a closed channel", got)
		}
	default:
		t.Fatal("channel still open after cancel")
	}
}

// Cancels racing level changes never send on a closed channel (-race and
// the runtime's panic check it).
func TestSubscribeCancelRacesChanges(t *testing.T) {
	c := New(Config{})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		ch, cancel := c.Subscribe()
		wg.Add(2)
		go func() {
			defer wg.Done()
			for l := Level(0); l <= MaxLevel; l++ {
				_ = c.SetManual(l, 0, "test")
			}
		}()
		go func() {
			defer wg.Done()
			cancel()
			if !drainsClosed(ch) {
				t.Error("channel still open after cancel")
			}
		}()
	}
	wg.Wait()
}

// drainsClosed reads what ch holds without blocking and reports whether
// it then finds ch closed.
func drainsClosed(ch <-chan Change) bool {
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return true
			}
		default:
			return false
		}
	}
}

// A subscriber that lags loses intermediate changes, never the latest.
func TestSubscribeLaggingKeepsLatest(t *testing.T) {
	c := New(Config{Logger: slog.New(slog.DiscardHandler)})
	ch, cancel := c.Subscribe()
	defer cancel()
	for i := 0; i < 40; i++ {
		if err := c.SetManual(Level(i%4), 0, fmt.Sprint("change ", i)); err != nil {
			t.Fatal(err)
		}
	}
	var last Change
	for n := 0; ; n++ {
		select {
		case last = <-ch:
			continue
		default:
		}
		if n != 16 || last.By != "change 39" {
			t.Fatalf("drained %d changes, the last %+v; want 16 ending with change 39", n, last)
		}
		return
	}
}
