package files

import (
	"context"
	"errors"
	"strings"

	"github.com/chatd/chatd/core/protocol"
)

// Resolve checks the files a send carries and returns the objects the
// message embeds, in the order given. It is what the hub calls when user
// sends message msgID (the send's client id) to room with "files": ids.
//
// Each id must name a file that user uploaded to room (not_found for an
// unknown id, forbidden for another user's file or another room's) and
// that is not attached to another message (bad_request); at most
// MaxPerMessage ids, none twice (bad_request). A pending file older than
// Grace is not_found: Sweep is about to remove it.
//
// Resolve attaches each file to msgID, so it is idempotent for a retried
// send with the same id, and the file stops being pending: from then on it
// lives as long as its message (see Delete and Prune). If the send then
// fails for good, the file stays until Prune finds no message for it.
func (s *Service) Resolve(ctx context.Context, user, room, msgID string, ids []string) ([]File, error) {
	if len(ids) > s.cfg.MaxPerMessage {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "a message carries at most %d files", s.cfg.MaxPerMessage)
	}
	if msgID == "" {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "a message with files needs an id")
	}
	seen := make(map[string]bool, len(ids))
	out := make([]File, 0, len(ids))
	for _, id := range ids {
		if !ValidID(id) { // not echoed: it could be anything
			return nil, protocol.Errorf(protocol.CodeNotFound, "a file id is not one this server gave")
		}
		if seen[id] {
			return nil, protocol.Errorf(protocol.CodeBadRequest, "file %s is listed twice", id)
		}
		seen[id] = true
		f, err := s.attach(ctx, user, room, msgID, id)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// attach checks one file of Resolve and marks it as carried by msgID.
func (s *Service) attach(ctx context.Context, user, room, msgID, id string) (File, error) {
	m, err := s.readMeta(ctx, id)
	if err != nil {
		if e := (*protocol.Error)(nil); errors.As(err, &e) {
			return File{}, protocol.Errorf(e.Code, "file %q: %s", id, e.Message)
		}
		return File{}, err
	}
	switch {
	case m.User != user:
		return File{}, protocol.Errorf(protocol.CodeForbidden, "file %s was uploaded by someone else", id)
	case m.Room != room:
		return File{}, protocol.Errorf(protocol.CodeForbidden, "file %s was uploaded to another room", id)
	case m.Message == msgID:
		return s.file(m), nil
	case m.Message != "":
		return File{}, protocol.Errorf(protocol.CodeBadRequest, "file %s is already in another message; upload it again", id)
	case s.cfg.Now().Sub(m.Created) > s.cfg.Grace:
		return File{}, protocol.Errorf(protocol.CodeNotFound, "file %s was not sent within %s of its upload; upload it again", id, s.cfg.Grace)
	}
	m.Message = msgID
	if err := s.writeMeta(ctx, m); err != nil {
		return File{}, err
	}
	// The marker goes once the meta says attached; if this fails, Sweep
	// removes the marker alone.
	_ = s.store.Delete(ctx, pendingKey(m.Created, m.userHash(), m.ID))
	return s.file(m), nil
}

// Delete removes file id: its data, thumbnail, index entries and, last,
// its metadata, so a Delete cut short can be run again. Deleting a file
// that does not exist is not an error. The hub calls it for each file of
// a message that is deleted, or dropped from history.
func (s *Service) Delete(ctx context.Context, id string) error {
	m, err := s.readMeta(ctx, id)
	if errors.Is(err, errNoFile) {
		return nil
	}
	if err != nil {
		return err
	}
	keys := []string{
		dataKey(m.userHash(), id),
		thumbKey(id),
		roomKey(m.roomHash(), id),
		pendingKey(m.Created, m.userHash(), id),
		metaKey(id),
	}
	for _, k := range keys {
		if err := s.store.Delete(ctx, k); err != nil {
			return err
		}
	}
	s.stats.deleted.Add(1)
	return nil
}

// Prune removes the files of room that were sent in a message for which
// referenced now answers false: the hub calls it after it drops messages
// from a room's history (by count or age), or with a referenced that is
// always false when the room itself goes. Pending uploads, which no
// message carries yet, are left to Sweep. It returns how many files it
// removed. Its cost is one listing of the room's files and one metadata
// read per file.
func (s *Service) Prune(ctx context.Context, room string, referenced func(id string) bool) (int, error) {
	prefix := prefixRooms + hashKey(room) + "/"
	var ids []string
	err := s.store.List(ctx, prefix, func(key string, _ int64) error {
		if id := strings.TrimPrefix(key, prefix); ValidID(id) {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		m, err := s.readMeta(ctx, id)
		switch {
		case errors.Is(err, errNoFile): // deleted since the listing
			continue
		case err != nil:
			return n, err
		case m.Message == "" || referenced(id):
			continue
		}
		if err := s.Delete(ctx, id); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Sweep removes the uploads that were never sent: pending for longer than
// Grace + SweepMargin. Run it now and then (hourly is plenty); it lists
// only the pending uploads. It also clears what a crash left behind in
// the middle of an upload or a Resolve. It returns how many files it
// removed.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	cutoff := s.cfg.Now().Add(-s.cfg.Grace - SweepMargin)
	var old []string
	err := s.store.List(ctx, prefixPending, func(key string, _ int64) error {
		if created, _, _, ok := parsePendingKey(key); ok && created.Before(cutoff) {
			old = append(old, key)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, key := range old {
		_, uh, id, _ := parsePendingKey(key)
		m, err := s.readMeta(ctx, id)
		switch {
		case errors.Is(err, errNoFile):
			// A Put cut short before its meta, so before its room
			// index entry too.
			for _, k := range []string{dataKey(uh, id), thumbKey(id), key} {
				if err := s.store.Delete(ctx, k); err != nil {
					return n, err
				}
			}
			continue
		case err != nil:
			return n, err
		case m.Message != "":
			if err := s.store.Delete(ctx, key); err != nil { // a Resolve cut short
				return n, err
			}
			continue
		}
		if err := s.Delete(ctx, id); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
