package bolt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"go.uber.org/goleak"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/brokertest"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/core/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// factory builds a Store for the conformance suite.
func factory(t *testing.T, o storetest.Options) storetest.Engine {
	s, err := Open(Config{Path: filepath.Join(o.Dir, "chat.db"), MaxMessages: o.MaxMessages,
		MaxAge: o.MaxAge, Now: o.Now})
	if err != nil {
		t.Fatal(err)
	}
	return storetest.Engine{Store: s, Sweep: s.Sweep}
}

func TestConformance(t *testing.T) { storetest.Run(t, factory) }

// open opens a store in a temp dir with cfg's other fields.
func open(t *testing.T, cfg Config) *Store {
	t.Helper()
	cfg.Path = filepath.Join(t.TempDir(), "chat.db")
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testMsg(room, id string) protocol.Message {
	return protocol.Message{Room: room, ID: id, From: "u", Name: "U", Text: "hello " + id}
}

// TestIdempotencyWindow: a pruned message's id is forgotten with it, so
// the idempotency window is the retention window.
func TestIdempotencyWindow(t *testing.T) {
	s := open(t, Config{MaxMessages: 3})
	ctx := t.Context()
	for i := range 5 {
		if _, _, err := s.Append(ctx, testMsg("r", fmt.Sprint("m", i))); err != nil {
			t.Fatal(err)
		}
	}
	if n := countIDs(t, s, "r"); n != 3 {
		t.Fatalf("%d idempotency entries for 3 retained messages", n)
	}
	m, dup, err := s.Append(ctx, testMsg("r", "m0"))
	if err != nil || dup || m.Seq != 6 {
		t.Fatalf("re-Append of pruned m0: seq %d dup %v err %v; want a new seq 6", m.Seq, dup, err)
	}
}

func countIDs(t *testing.T, s *Store, room string) int {
	t.Helper()
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketRooms).Bucket([]byte(room)).Bucket(bucketIDs).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestGroupCommit: appends queued while the writer is busy are committed
// together, in one transaction and one publication.
func TestGroupCommit(t *testing.T) {
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	published := make(chan struct{}, 64) // one per publication
	var mu sync.Mutex
	var sizes []int
	s := open(t, Config{})
	s.Register(storetest.Publisher(func(ms []protocol.Message) {
		mu.Lock()
		sizes = append(sizes, len(ms))
		first := len(sizes) == 1
		mu.Unlock()
		published <- struct{}{}
		if first {
			entered <- struct{}{}
			<-gate // hold the writer so the next appends queue up
		}
	}))
	ctx := t.Context()
	if _, _, err := s.Append(ctx, testMsg("r", "first")); err != nil {
		t.Fatal(err)
	}
	<-entered
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, _, err := s.Append(ctx, testMsg("r", fmt.Sprint("q", i))); err != nil {
				t.Error(err)
			}
		})
	}
	waitQueued(t, s, n)
	close(gate)
	wg.Wait()
	// An append returns once durable; its publication may follow.
	<-published
	for got := 1; got < n+1; {
		mu.Lock()
		got = 0
		for _, k := range sizes {
			got += k
		}
		mu.Unlock()
		if got < n+1 {
			<-published
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(sizes) != fmt.Sprint([]int{1, n}) {
		t.Fatalf("commit sizes %v, want [1 %d]", sizes, n)
	}
}

// waitQueued yields until n requests wait in the writer's queue. The
// writer is parked, so the count only grows.
func waitQueued(t *testing.T, s *Store, n int) {
	deadline := time.Now().Add(10 * time.Second)
	for len(s.reqs) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests queued", len(s.reqs), n)
		}
		runtime.Gosched()
	}
}

// TestCommitFailure: when the transaction fails, every caller in the
// batch gets the error and nothing is published.
func TestCommitFailure(t *testing.T) {
	published := false
	s := open(t, Config{Logger: slog.New(slog.DiscardHandler)})
	s.Register(storetest.Publisher(func([]protocol.Message) { published = true }))
	if err := s.db.Close(); err != nil { // pull the file from under the writer
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			_, _, err := s.Append(t.Context(), testMsg("r", fmt.Sprint("m", i)))
			if !errors.Is(err, berrors.ErrDatabaseNotOpen) || err.Error()[:14] != "bolt: commit: " {
				t.Errorf("Append on a failing db: %v, want bolt: commit: database not open", err)
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if published {
		t.Fatal("a failed commit was published")
	}
}

// TestInvalid: requests that cannot become keys are refused up front.
func TestInvalid(t *testing.T) {
	s := open(t, Config{})
	ctx := context.Background()
	for _, m := range []protocol.Message{testMsg("", "x"), testMsg("r", ""), testMsg("r", string(make([]byte, bolt.MaxKeySize+1)))} {
		if _, _, err := s.Append(ctx, m); !errors.Is(err, ErrInvalid) {
			t.Errorf("Append(room %q, id len %d): %v, want ErrInvalid", m.Room, len(m.ID), err)
		}
	}
	if err := s.SetReads(ctx, []core.ReadPosition{{Room: "r", Seq: 1}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetReads with no user: %v, want ErrInvalid", err)
	}
	if _, err := Open(Config{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Open without a path: %v, want ErrInvalid", err)
	}
	if _, err := Open(Config{Path: filepath.Join(t.TempDir(), "missing", "chat.db")}); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
}

func TestBroker(t *testing.T) {
	brokertest.Run(t, 1, func(t *testing.T, dir string) core.Engine {
		s, err := Open(Config{Path: filepath.Join(dir, "chat.db")})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
