package featureflags

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
)

func TestDefaults(t *testing.T) {
	s := NewStore(Config{Logger: discard()})
	for _, name := range []string{WebSocket, SSE, Poll, ReadReceipts, Typing, Presence} {
		f, ok := s.Snapshot().Get(name)
		if !ok || f != (Flag{Name: name, Enabled: true, Rollout: 100}) {
			t.Errorf("default %s = %+v, %v", name, f, ok)
		}
		if d, ok := Lookup(name); !ok || d.Reason == "" {
			t.Errorf("registry entry for %s: %+v, %v", name, d, ok)
		}
	}
	all := s.Snapshot().All()
	if len(all) != len(Definitions()) {
		t.Fatalf("All() has %d flags, registry %d", len(all), len(Definitions()))
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].Name >= all[i].Name {
			t.Errorf("All() not sorted: %s before %s", all[i-1].Name, all[i].Name)
		}
	}
}

func TestUpdateValidation(t *testing.T) {
	s, _ := newTestStore(t)
	for _, c := range []struct {
		name    string
		enabled bool
		rollout int
		want    error
	}{
		{"nope", true, 50, ErrUnknownFlag},
		{"", true, 50, ErrUnknownFlag},
		{Typing, true, -1, ErrInvalid},
		{Typing, true, 101, ErrInvalid},
		{Poll, false, 100, ErrInvalid},
		{Poll, true, 50, ErrInvalid},
	} {
		_, err := s.Update(c.name, c.enabled, c.rollout, "admin:alice")
		if !errors.Is(err, c.want) {
			t.Errorf("Update(%q, %v, %d) = %v, want %v", c.name, c.enabled, c.rollout, err, c.want)
		}
	}
	if s.Snapshot() != defaultSet || len(s.Audit()) != 0 {
		t.Error("a rejected update changed the store")
	}
	for _, r := range []int{0, 100} {
		if _, err := s.Update(Typing, true, r, "admin:alice"); err != nil {
			t.Errorf("rollout %d: %v", r, err)
		}
	}
}

func TestUpdateAuditsAndNotifies(t *testing.T) {
	s, logs := newTestStore(t)
	ch, cancel := s.Subscribe()
	defer cancel()
	before := s.Snapshot()

	got, err := s.Update(Typing, true, 25, "admin:alice")
	if err != nil {
		t.Fatal(err)
	}
	want := Flag{Name: Typing, Enabled: true, Rollout: 25}
	if got != want {
		t.Errorf("Update returned %+v, want %+v", got, want)
	}
	select {
	case <-ch:
	default:
		t.Fatal("subscriber not notified")
	}
	if f, _ := s.Snapshot().Get(Typing); f != want {
		t.Errorf("snapshot has %+v", f)
	}
	if f, _ := before.Get(Typing); f.Rollout != 100 {
		t.Error("the old snapshot changed: sets must be immutable")
	}
	wantAudit := []Change{{Time: fixedTime, Actor: "admin:alice", Name: Typing,
		Old: Flag{Name: Typing, Enabled: true, Rollout: 100}, New: want}}
	if a := s.Audit(); !reflect.DeepEqual(a, wantAudit) {
		t.Errorf("audit = %+v, want %+v", a, wantAudit)
	}
	if count(logs, "featureflags: flag changed") != 1 || count(logs, "actor=admin:alice") != 1 {
		t.Errorf("log = %q", logs.String())
	}

	// Same value again: no change, no audit, no wake-up.
	if _, err := s.Update(Typing, true, 25, "admin:bob"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
		t.Error("a no-op update woke the subscriber")
	default:
	}
	if n := len(s.Audit()); n != 1 {
		t.Errorf("a no-op update was audited: %d entries", n)
	}
}

func TestSubscribeCoalescesAndCancels(t *testing.T) {
	s, _ := newTestStore(t)
	ch, cancel := s.Subscribe()
	other, cancelOther := s.Subscribe()
	defer cancelOther()
	for i := range 5 {
		if _, err := s.Update(Presence, true, 10+i, "admin:alice"); err != nil {
			t.Fatal(err)
		}
	}
	<-ch // five changes, one pending wake-up, never a blocked writer
	select {
	case <-ch:
		t.Error("wake-ups did not coalesce")
	default:
	}
	<-other
	cancel()
	cancel() // idempotent
	if _, ok := <-ch; ok {
		t.Error("channel open after cancel")
	}
	if _, err := s.Update(Presence, true, 99, "admin:alice"); err != nil {
		t.Fatal(err) // must not send on the closed channel
	}
	<-other
}

func TestAuditKeepsLastN(t *testing.T) {
	s := NewStore(Config{Logger: discard(), AuditSize: 3})
	for i := 1; i <= 5; i++ {
		if _, err := s.Update(Typing, true, i, fmt.Sprintf("admin:%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	a := s.Audit()
	if len(a) != 3 || a[0].Actor != "admin:3" || a[2].Actor != "admin:5" || a[2].Old.Rollout != 4 {
		t.Errorf("audit = %+v", a)
	}
}

func TestReplace(t *testing.T) {
	s, _ := newTestStore(t)
	ch, cancel := s.Subscribe()
	defer cancel()
	if _, err := s.Update(Presence, false, 100, "admin:alice"); err != nil {
		t.Fatal(err)
	}
	<-ch

	// Invalid input changes nothing, whichever entry is bad.
	before := s.Snapshot()
	for _, c := range []struct {
		flags []Flag
		want  error
	}{
		{[]Flag{{Name: Typing, Enabled: true, Rollout: 5}, {Name: "nope", Enabled: true}}, ErrUnknownFlag},
		{[]Flag{{Name: Typing, Enabled: true, Rollout: 500}}, ErrInvalid},
		{[]Flag{{Name: Typing, Rollout: 5}, {Name: Typing, Rollout: 6}}, ErrInvalid},
		{[]Flag{{Name: Poll, Enabled: false, Rollout: 100}}, ErrInvalid},
	} {
		if err := s.Replace(c.flags, "file:x"); !errors.Is(err, c.want) {
			t.Errorf("Replace(%+v) = %v, want %v", c.flags, err, c.want)
		}
	}
	if s.Snapshot() != before {
		t.Error("a rejected Replace changed the store")
	}

	// The list is the whole state: unlisted flags (presence) go back to their default.
	if err := s.Replace([]Flag{{Name: Typing, Enabled: true, Rollout: 30}}, "file:/etc/flags.json"); err != nil {
		t.Fatal(err)
	}
	<-ch
	if f, _ := s.Snapshot().Get(Typing); f.Rollout != 30 {
		t.Errorf("typing = %+v", f)
	}
	if f, _ := s.Snapshot().Get(Presence); !f.Enabled {
		t.Errorf("presence = %+v, want back at its default", f)
	}
	a := s.Audit()
	if len(a) != 3 || a[1].Name != Typing || a[2].Name != Presence || a[2].Actor != "file:/etc/flags.json" {
		t.Errorf("audit = %+v", a)
	}

	// Replacing with the same state is a no-op.
	if err := s.Replace([]Flag{{Name: Typing, Enabled: true, Rollout: 30}}, "file:x"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
		t.Error("a no-op Replace woke the subscriber")
	default:
	}
}

// Readers on the hot path race writers; run with -race.
func TestConcurrentReadersAndWriters(t *testing.T) {
	s := NewStore(Config{Logger: discard()})
	ch, cancel := s.Subscribe()
	defer cancel()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				snap := s.Snapshot()
				snap.On(Typing, fmt.Sprint("user-", r, i))
				snap.All()
			}
		})
	}
	var writers sync.WaitGroup
	for w := range 4 {
		writers.Go(func() {
			for i := range 200 {
				if _, err := s.Update(Typing, true, (w*200+i)%101, "admin:w"); err != nil {
					t.Error(err)
				}
				_ = s.Replace([]Flag{{Name: Presence, Enabled: i%2 == 0, Rollout: 100}}, "file:x")
				s.Audit()
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-ch:
			case <-stop:
				return
			}
		}
	})
	writers.Wait()
	close(stop)
	wg.Wait()
}
