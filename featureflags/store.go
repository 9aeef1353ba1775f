package featureflags

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Store. The zero value is valid.
type Config struct {
	// Logger receives one Info line per flag change. Default slog.Default().
	Logger *slog.Logger
	// AuditSize is how many changes Audit keeps. Default 200.
	AuditSize int
	// Now is the clock stamped on audit entries. Default time.Now.
	Now func() time.Time
}

// Change is one audit entry: who changed which flag from what to what.
type Change struct {
	Time  time.Time `json:"time"`
	Actor string    `json:"actor"` // e.g. "admin:alice", "file:/etc/chatd/flags.json"
	Name  string    `json:"name"`
	Old   Flag      `json:"old"`
	New   Flag      `json:"new"`
}

// Store holds the current flag Set and is the one place flags change.
// Readers call Snapshot; writers call Update or Replace.
type Store struct {
	log       *slog.Logger // static after construction
	auditSize int          // static after construction
	now       func() time.Time

	cur atomic.Pointer[Set] // written only under mu

	mu    sync.Mutex
	audit []Change                   // guarded by mu; oldest first, at most auditSize
	subs  map[chan struct{}]struct{} // guarded by mu
}

// Store implements both seams a cluster-wide source uses.
var (
	_ Target = (*Store)(nil)
	_ Writer = (*Store)(nil)
)

// NewStore returns a Store holding every flag at its default.
func NewStore(cfg Config) *Store {
	s := &Store{log: cfg.Logger, auditSize: cfg.AuditSize, now: cfg.Now,
		subs: make(map[chan struct{}]struct{})}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.auditSize <= 0 {
		s.auditSize = 200
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.cur.Store(defaultSet)
	return s
}

// Snapshot returns the current flags. It is one atomic load: no lock, no
// allocation. The Set never changes; call Snapshot again to see updates.
func (s *Store) Snapshot() *Set { return s.cur.Load() }

// On is Snapshot().On(name, user).
func (s *Store) On(name, user string) bool { return s.cur.Load().On(name, user) }

// Update sets one flag and returns its new state. The error wraps
// ErrUnknownFlag or ErrInvalid, and nothing changes. Setting a flag to the
// state it already has records nothing and wakes no one.
func (s *Store) Update(name string, enabled bool, rollout int, actor string) (Flag, error) {
	f := Flag{Name: name, Enabled: enabled, Rollout: rollout}
	if err := f.Validate(); err != nil {
		return Flag{}, err
	}
	s.mu.Lock()
	cur := s.cur.Load()
	old := cur.flags[name]
	var changes []Change
	if old != f {
		s.cur.Store(cur.with(f))
		changes = s.recordLocked(actor, []Flag{old}, []Flag{f})
	}
	s.mu.Unlock()
	s.logChanges(changes)
	return f, nil
}

// Replace makes flags the whole state: each listed flag takes the given
// value and every unlisted one returns to its default. It is all or
// nothing: an unknown name, an invalid value or a name listed twice fails
// with an error wrapping ErrUnknownFlag or ErrInvalid, and nothing changes.
// Only flags whose value differs are audited.
//
// Sources of whole states call it: the file on every reload, and later a
// cluster-wide backend on every push.
func (s *Store) Replace(flags []Flag, actor string) error {
	seen := make(map[string]bool, len(flags))
	for _, f := range flags {
		if err := f.Validate(); err != nil {
			return err
		}
		if seen[f.Name] {
			return fmt.Errorf("%w: %s is listed twice", ErrInvalid, f.Name)
		}
		seen[f.Name] = true
	}
	next := newSet(flags)
	s.mu.Lock()
	cur := s.cur.Load()
	var olds, news []Flag
	for _, d := range registry { // registry order keeps the audit stable
		if o, n := cur.flags[d.Name], next.flags[d.Name]; o != n {
			olds, news = append(olds, o), append(news, n)
		}
	}
	var changes []Change
	if len(news) > 0 {
		s.cur.Store(next)
		changes = s.recordLocked(actor, olds, news)
	}
	s.mu.Unlock()
	s.logChanges(changes)
	return nil
}

// recordLocked appends one audit entry per changed flag and wakes the
// subscribers once. It returns the entries for logging outside the lock.
func (s *Store) recordLocked(actor string, olds, news []Flag) []Change {
	now := s.now()
	changes := make([]Change, len(news))
	for i := range news {
		changes[i] = Change{Time: now, Actor: actor, Name: news[i].Name, Old: olds[i], New: news[i]}
	}
	s.audit = append(s.audit, changes...)
	if over := len(s.audit) - s.auditSize; over > 0 {
		s.audit = append(s.audit[:0:0], s.audit[over:]...)
	}
	for ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default: // a wake-up is already pending; the subscriber reads the latest Snapshot
		}
	}
	return changes
}

func (s *Store) logChanges(changes []Change) {
	for _, c := range changes {
		s.log.Info("featureflags: flag changed", "flag", c.Name, "actor", c.Actor,
			"old_enabled", c.Old.Enabled, "old_rollout", c.Old.Rollout,
			"new_enabled", c.New.Enabled, "new_rollout", c.New.Rollout)
	}
}

// Audit returns the most recent changes, oldest first.
func (s *Store) Audit() []Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Change(nil), s.audit...)
}

// Subscribe returns a channel that receives a value after each change, and
// a cancel func that closes it. Wake-ups coalesce: the channel holds at
// most one, so a slow subscriber never blocks a writer and never misses the
// latest state; on wake-up, read Snapshot. cancel is idempotent.
func (s *Store) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.subs, ch)
			close(ch)
			s.mu.Unlock()
		})
	}
}
