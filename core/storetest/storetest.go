package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// Options configures one store built by a Factory.
type Options struct {
	// Dir is where the store keeps its data: a fresh directory per test.
	// A store built again with the same Dir, after the previous one was
	// closed, must see the same data. An engine without files may derive
	// a key namespace from it.
	Dir string

	// MaxMessages is how many messages each room retains; 0 means the
	// engine's default, which must be at least 2000.
	MaxMessages int

	// MaxAge is how old a retained message may get; 0 means no limit.
	MaxAge time.Duration

	// Now is the clock that stamps messages and drives age retention.
	// Never nil.
	Now func() time.Time
}

// Engine is what a Factory builds.
type Engine struct {
	// Store is the engine under test. The suite registers its own
	// handler with it, which must then get every newly stored message,
	// once, after it is durable, in per-room seq order, one message or a
	// commit's worth at a time.
	Store core.Engine

	// Sweep applies age retention now, as the engine's own schedule
	// would. Nil means the engine enforces MaxAge without one.
	Sweep func() error
}

// Factory builds a store from opts. It calls t.Fatal if it cannot. The
// suite closes the store; Close must be idempotent.
type Factory func(t *testing.T, opts Options) Engine

// Run runs the whole conformance suite against the engine f builds, each
// behaviour as a subtest on a fresh Dir.
func Run(t *testing.T, f Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"SeqPerRoom", testSeqPerRoom},
		{"SeqConcurrent", testSeqConcurrent},
		{"StampsAndReturns", testStampsAndReturns},
		{"Idempotent", testIdempotent},
		{"IdempotentRace", testIdempotentRace},
		{"SameIDOtherRoom", testSameIDOtherRoom},
		{"Lookup", testLookup},
		{"EmptyRoom", testEmptyRoom},
		{"SincePaging", testSincePaging},
		{"BeforePaging", testBeforePaging},
		{"RetentionCount", testRetentionCount},
		{"RetentionAge", testRetentionAge},
		{"PublishAfterStore", testPublishAfterStore},
		{"ReadPositions", testReadPositions},
		{"Reopen", testReopen},
		{"Closed", testClosed},
		{"CloseInFlight", testCloseInFlight},
		{"Cancel", testCancel},
		{"Edit", testEdit},
		{"Delete", testDelete},
		{"AmendRefused", testAmendRefused},
		{"AmendPruned", testAmendPruned},
		{"Files", testFiles},
		{"PruneReleasesFiles", testPruneReleasesFiles},
		{"UserNames", testUserNames},
		{"EachUser", testEachUser},
		{"UserRooms", testUserRooms},
		{"UserRoomsCap", testUserRoomsCap},
		{"RoomStates", testRoomStates},
		{"UserStreamRetention", testUserStreamRetention},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, f) })
	}
}

// Epoch is where every test's clock starts.
var Epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Clock is a manual clock for Options.Now, safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock reading t until advanced.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fixture is one engine under test plus its clock and publish recorder.
type fixture struct {
	t        *testing.T
	ctx      context.Context
	factory  Factory
	opts     Options
	clock    *Clock
	pub      *recorder
	barriers int // how many barrier messages were sent
	Engine
}

// newFixture builds a store with opts adjusted by the optional set.
func newFixture(t *testing.T, f Factory, set func(*Options)) *fixture {
	t.Helper()
	fx := &fixture{t: t, ctx: t.Context(), factory: f, clock: NewClock(Epoch)}
	fx.opts = Options{Dir: t.TempDir(), Now: fx.clock.Now}
	if set != nil {
		set(&fx.opts)
	}
	fx.open()
	return fx
}

// open builds the engine on fx.opts with a fresh recorder.
func (fx *fixture) open() {
	fx.t.Helper()
	fx.pub = newRecorder()
	fx.Engine = fx.factory(fx.t, fx.opts)
	if fx.Store == nil {
		fx.t.Fatal("factory returned no store")
	}
	fx.Store.Register(fx.pub)
	store := fx.Store
	fx.t.Cleanup(func() { store.Close() })
}

// reopen closes the store and builds it again on the same data.
func (fx *fixture) reopen() {
	fx.t.Helper()
	if err := fx.Store.Close(); err != nil {
		fx.t.Fatalf("Close: %v", err)
	}
	fx.open()
}

// msg builds an unsent message.
func msg(room, id string) protocol.Message {
	return protocol.Message{Room: room, ID: id, From: "u-" + id, Name: "User " + id, Text: "text of " + id}
}

// append stores msg(room, id) and fails the test unless it is new.
func (fx *fixture) append(room, id string) protocol.Message {
	fx.t.Helper()
	m, dup, err := fx.Store.Append(fx.ctx, msg(room, id))
	if err != nil || dup {
		fx.t.Fatalf("Append(%s, %s) = dup %v, err %v; want a new message", room, id, dup, err)
	}
	return m
}

// appendN stores ids prefix0..prefix(n-1) in room.
func (fx *fixture) appendN(room, prefix string, n int) []protocol.Message {
	fx.t.Helper()
	out := make([]protocol.Message, n)
	for i := range out {
		out[i] = fx.append(room, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

// since calls Since and fails the test on error.
func (fx *fixture) since(room string, after uint64, limit int) core.Page {
	fx.t.Helper()
	p, err := fx.Store.Since(fx.ctx, room, after, limit)
	if err != nil {
		fx.t.Fatalf("Since(%s, %d, %d): %v", room, after, limit, err)
	}
	return p
}

// before calls Before and fails the test on error.
func (fx *fixture) before(room string, before uint64, limit int) core.Page {
	fx.t.Helper()
	p, err := fx.Store.Before(fx.ctx, room, before, limit)
	if err != nil {
		fx.t.Fatalf("Before(%s, %d, %d): %v", room, before, limit, err)
	}
	return p
}

// readAll pages through Since from after to the head, so that an engine
// may cap its page size.
func (fx *fixture) readAll(room string, after uint64) []protocol.Message {
	fx.t.Helper()
	var all []protocol.Message
	for {
		p := fx.since(room, after, 500)
		if len(p.Messages) == 0 {
			return all
		}
		all = append(all, p.Messages...)
		after = p.Messages[len(p.Messages)-1].Seq
	}
}

// sweep applies age retention if the engine has an explicit sweep.
func (fx *fixture) sweep() {
	fx.t.Helper()
	if fx.Sweep == nil {
		return
	}
	if err := fx.Sweep(); err != nil {
		fx.t.Fatalf("Sweep: %v", err)
	}
}

// Publisher returns a core.Handler that passes committed messages to fn
// and ignores ephemeral and control events: what a test registers with
// an engine to watch its commits.
func Publisher(fn func([]protocol.Message)) core.Handler { return publisher(fn) }

type publisher func([]protocol.Message)

func (p publisher) Publish(msgs []protocol.Message) { p(msgs) }
func (publisher) Deliver(string, protocol.Envelope) {}
func (publisher) Control(core.Control)              {}
