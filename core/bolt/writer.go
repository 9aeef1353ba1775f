package bolt

import (
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// opKind says what a request asks of the writer.
type opKind uint8

const (
	opAppend   opKind = iota // store msg
	opSetReads               // raise each of reads to its Seq, setting Seq to the stored position
	opSweep                  // prune by age now
	opName                   // store a user's name (users.go)
	opList                   // put a room in a user's list (users.go)
	opUnlist                 // take a room out of a user's list (users.go)
)

// request is one write waiting for the writer goroutine.
type request struct {
	ctx   context.Context
	kind  opKind
	msg   protocol.Message
	user  userReq             // opName, opList, opUnlist
	reads []core.ReadPosition // opSetReads; the writer sets each Seq to the stored position
	reply chan result         // buffered 1, so the writer never blocks on it
}

// result answers a request.
type result struct {
	msg protocol.Message // opAppend: the stored message
	dup bool             // opAppend: msg was already stored
	hit bool             // opList, opUnlist: the list changed
	err error
}

// run is the writer goroutine. It takes one request, drains whatever else
// is queued without blocking, commits them all in one transaction, answers
// every caller and then publishes. It exits once reqs is closed and
// drained.
func (s *Store) run() {
	defer close(s.done)
	var tick <-chan time.Time
	if s.cfg.MaxAge > 0 {
		t := time.NewTicker(s.cfg.SweepInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case r, ok := <-s.reqs:
			if !ok {
				return
			}
			batch, open := s.drain(r)
			s.commit(batch)
			clear(batch)
			if !open {
				return
			}
		case <-tick:
			s.commit([]*request{{ctx: context.Background(), kind: opSweep, reply: make(chan result, 1)}})
		}
	}
}

// drain returns first plus whatever is queued, up to MaxBatch, and whether
// reqs is still open.
func (s *Store) drain(first *request) ([]*request, bool) {
	batch := append(s.batch[:0], first)
	for len(batch) < s.cfg.MaxBatch {
		select {
		case r, ok := <-s.reqs:
			if !ok {
				return batch, false
			}
			batch = append(batch, r)
		default:
			s.batch = batch
			return batch, true
		}
	}
	s.batch = batch
	return batch, true
}

// commit applies batch in one bbolt transaction, answers every request,
// then hands the newly stored messages to the registered hub. A request whose
// context has already ended is answered with its error and not applied.
// If the transaction fails, every request gets the error.
func (s *Store) commit(batch []*request) {
	results := make([]result, len(batch))
	live := 0
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			results[i].err = err
			continue
		}
		live++
	}
	var (
		stored   []protocol.Message
		released map[string][]protocol.File
	)
	if live > 0 {
		var err error
		if stored, released, err = s.apply(batch, results); err != nil {
			err = fmt.Errorf("bolt: commit: %w", err)
			s.cfg.Logger.Error("bolt: commit failed", "requests", live, "err", err)
			for i := range results {
				results[i] = result{err: err}
			}
			stored, released = nil, nil
		}
	}
	for i, r := range batch {
		r.reply <- results[i]
	}
	if len(stored) > 0 {
		s.Publish(stored)
	}
	for room, files := range released {
		s.ReleaseFiles(room, files)
	}
}

// apply runs the requests of batch that results does not already answer
// in one write transaction, filling in their results. It returns the
// newly stored messages in order, and the files of the messages it
// deleted or pruned, by room.
func (s *Store) apply(batch []*request, results []result) ([]protocol.Message, map[string][]protocol.File, error) {
	var (
		stored   []protocol.Message
		released map[string][]protocol.File
		moved    map[string]*room
		wrote    bool // the bounds cache was told of moved (bounds.go)
	)
	err := s.db.Update(func(tx *bolt.Tx) error {
		w, err := newWriteTx(tx, s.cfg)
		if err != nil {
			return err
		}
		for i, r := range batch {
			if results[i].err != nil {
				continue
			}
			if results[i], err = w.do(r); err != nil {
				return err
			}
		}
		stored, released, moved = w.stored, w.released, w.moved()
		if err := w.finish(); err != nil {
			return err
		}
		s.bounds.writing(moved, tx.ID()) // about to commit (bounds.go)
		wrote = true
		if s.failCommit != nil {
			return s.failCommit()
		}
		return nil
	})
	if err == nil {
		// Committed: before anyone is answered or anything published.
		s.bounds.committed(moved)
	} else if wrote {
		s.bounds.failed(moved)
	}
	return stored, released, err
}
