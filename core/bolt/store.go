package bolt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// Defaults for the zero fields of Config.
const (
	DefaultMaxMessages   = 10000
	DefaultMaxBatch      = 512
	DefaultSweepInterval = time.Minute

	// lockTimeout bounds how long Open waits for the file lock that another
	// process (or another Store in this one) holds.
	lockTimeout = 5 * time.Second
)

// ErrInvalid is returned, wrapped with the reason, for a request the store
// cannot take: an empty room, id or user, or one longer than a bbolt key.
var ErrInvalid = errors.New("bolt: invalid request")

// ErrLocked is returned by Open when another process holds the file.
var ErrLocked = errors.New("bolt: database file is locked by another process")

// Config configures a Store. The zero value is valid except for Path.
type Config struct {
	// Path is the database file. It is created if missing. Required.
	Path string

	// MaxMessages is how many messages each room retains; older ones are
	// pruned by the append that crosses the limit. Default 10000; a
	// negative value means no count limit.
	MaxMessages int

	// MaxAge prunes messages older than this by a periodic sweep.
	// Default 0: no age limit.
	MaxAge time.Duration

	// SweepInterval is how often the age sweep runs when MaxAge is set.
	// Default one minute.
	SweepInterval time.Duration

	// Now is the clock that stamps messages and drives the age sweep.
	// Default time.Now.
	Now func() time.Time

	// MaxBatch caps how many queued requests one transaction takes, and
	// the writer's queue. A SetReads is one request however many
	// positions it carries. Default 512.
	MaxBatch int

	// Logger receives commit and sweep failures. Default slog.Default().
	Logger *slog.Logger

	// BoundsCache is how many rooms' bounds (head, first retained seq)
	// are kept in memory to answer Since without a read transaction when
	// nothing lies after the position (bounds.go). Default
	// DefaultBoundsCache; negative: none.
	BoundsCache int
}

func (c Config) withDefaults() Config {
	if c.MaxMessages == 0 {
		c.MaxMessages = DefaultMaxMessages
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.BoundsCache == 0 {
		c.BoundsCache = DefaultBoundsCache
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Store is the embedded durable engine: a core.Store on one bbolt file.
// Writes go through one writer goroutine that commits them in groups;
// reads run concurrently on bbolt read transactions.
type Store struct {
	// The broker of a single node: after each commit the writer hands
	// the messages that commit newly stored (never duplicates), in commit
	// order, which is per-room seq order, to the registered hub.
	core.LocalBroker

	// Static after Open.
	cfg  Config
	db   *bolt.DB
	done chan struct{} // closed when the writer goroutine has exited

	// mu guards sending on reqs (under RLock) against closing it (under
	// Lock). closed is set under Lock and read anywhere.
	mu     sync.RWMutex
	reqs   chan *request
	closed atomic.Bool

	// Owned by the writer goroutine.
	batch []*request

	bounds *boundsCache // Static after Open; safe for concurrent use.

	// failCommit, set by tests before any write, fails each write
	// transaction at its last step, as a failed commit would.
	failCommit func() error

	closeOnce sync.Once
	closeErr  error // set once by Close
}

var _ core.Store = (*Store)(nil)

// Open opens or creates the database at cfg.Path and starts the writer.
func Open(cfg Config) (*Store, error) {
	if cfg.Path == "" {
		return nil, fmt.Errorf("%w: Config.Path is empty", ErrInvalid)
	}
	cfg = cfg.withDefaults()
	db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s", ErrLocked, cfg.Path)
	}
	if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", cfg.Path, err)
	}
	if err := initLayout(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("bolt: open %s: %w", cfg.Path, err)
	}
	bc := newBoundsCache(cfg.BoundsCache)
	if err := db.View(bc.load); err != nil {
		db.Close()
		return nil, fmt.Errorf("bolt: open %s: %w", cfg.Path, err)
	}
	s := &Store{
		cfg:    cfg,
		db:     db,
		done:   make(chan struct{}),
		reqs:   make(chan *request, cfg.MaxBatch),
		bounds: bc,
	}
	go s.run()
	return s, nil
}

// Append implements core.Store. It returns once the message is committed
// and fsynced. If ctx ends first it returns ctx.Err(); the message may or
// may not have been stored then, and re-sending the same id tells which.
func (s *Store) Append(ctx context.Context, m protocol.Message) (protocol.Message, bool, error) {
	if err := validKeys(m.Room, m.ID); err != nil {
		return protocol.Message{}, false, err
	}
	if err := validKind(m); err != nil {
		return protocol.Message{}, false, err
	}
	m.Edited, m.Deleted = 0, false
	res, err := s.do(ctx, &request{kind: opAppend, msg: m})
	return res.msg, res.dup, err
}

// SetReads implements core.Store. The positions are durable when it
// returns. They go to the writer as one request, which takes one place
// in its queue however many there are (a flush at 10,000 users holds
// thousands), so that a message sent meanwhile is committed in the next
// transaction rather than behind them. The store does not check seqs
// against rooms' heads; the hub does.
func (s *Store) SetReads(ctx context.Context, reads []core.ReadPosition) error {
	for _, rp := range reads {
		if err := validKeys(rp.Room, rp.User); err != nil {
			return err
		}
	}
	if len(reads) == 0 {
		return nil
	}
	// The writer fills in the request's own copy: a caller that gives up
	// (ctx) must not have its slice written after it returned.
	r := &request{kind: opSetReads, reads: slices.Clone(reads)}
	if _, err := s.do(ctx, r); err != nil {
		return err
	}
	copy(reads, r.reads)
	return nil
}

// Sweep prunes, in every room, the messages older than MaxAge by the
// configured clock, as the periodic sweep does. It is a no-op without
// MaxAge. Tests call it after advancing their clock.
func (s *Store) Sweep() error {
	_, err := s.do(context.Background(), &request{kind: opSweep})
	return err
}

// Close stops admitting writes (they get core.ErrClosed), commits those
// already queued, waits for the writer and closes the file. It is
// idempotent; later calls return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed.Store(true)
		close(s.reqs)
		s.mu.Unlock()
		<-s.done
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("bolt: close: %w", err)
		}
	})
	return s.closeErr
}

// do hands r to the writer and waits for its answer or for ctx.
func (s *Store) do(ctx context.Context, r *request) (result, error) {
	if err := s.submit(ctx, r); err != nil {
		return result{}, err
	}
	return s.await(ctx, r)
}

// submit queues r for the writer.
func (s *Store) submit(ctx context.Context, r *request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.ctx = ctx
	r.reply = make(chan result, 1)
	return s.enqueue(ctx, r)
}

// await waits for the writer's answer to a submitted r.
func (s *Store) await(ctx context.Context, r *request) (result, error) {
	select {
	case res := <-r.reply:
		return res, res.err
	case <-ctx.Done():
		select {
		case res := <-r.reply: // answered meanwhile: prefer the answer
			return res, res.err
		default:
			return result{}, ctx.Err()
		}
	}
}

func (s *Store) enqueue(ctx context.Context, r *request) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return core.ErrClosed
	}
	select {
	case s.reqs <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// validKeys checks the strings that become bbolt keys.
func validKeys(room, key string) error {
	switch {
	case room == "":
		return fmt.Errorf("%w: empty room", ErrInvalid)
	case key == "":
		return fmt.Errorf("%w: empty id or user", ErrInvalid)
	case len(room) > bolt.MaxKeySize || len(key) > bolt.MaxKeySize:
		return fmt.Errorf("%w: key longer than %d bytes", ErrInvalid, bolt.MaxKeySize)
	}
	return nil
}

var _ core.Engine = (*Store)(nil)
