package featureflags

import "testing"

// The hot path, Snapshot().On, must not allocate: it runs per user per
// feature on negotiate and on every fan-out decision.
func TestOnDoesNotAllocate(t *testing.T) {
	s := NewStore(Config{Logger: discard()})
	if _, err := s.Update(Typing, true, 50, "test"); err != nil {
		t.Fatal(err)
	}
	user := "user-with-a-rather-long-identifier-0123456789-0123456789-0123456789"
	for _, name := range []string{Typing, Presence, "unknown"} {
		if n := testing.AllocsPerRun(1000, func() { s.Snapshot().On(name, user) }); n != 0 {
			t.Errorf("Snapshot().On(%q) allocates %v times", name, n)
		}
	}
	if n := testing.AllocsPerRun(1000, func() { Bucket(Typing, user) }); n != 0 {
		t.Errorf("Bucket allocates %v times", n)
	}
}

func BenchmarkSnapshotOn(b *testing.B) {
	s := NewStore(Config{Logger: discard()})
	if _, err := s.Update(Typing, true, 50, "bench"); err != nil {
		b.Fatal(err)
	}
	us := users(1024)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Snapshot().On(Typing, us[i&1023])
		i++
	}
}

func BenchmarkSnapshotOnParallel(b *testing.B) {
	s := NewStore(Config{Logger: discard()})
	if _, err := s.Update(Typing, true, 50, "bench"); err != nil {
		b.Fatal(err)
	}
	us := users(1024)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			s.Snapshot().On(Typing, us[i&1023])
			i++
		}
	})
}
