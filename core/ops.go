package core

import (
	"context"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// MaxHistoryLimit caps one history page.
const MaxHistoryLimit = 200

// Send stores a message from id in room and returns it once durable. A
// re-send of the same (room, msgID) returns the stored message again and
// stores nothing. Sending needs permission, not a join.
func (h *Hub) Send(ctx context.Context, id auth.Identity, room, msgID, text string) (protocol.Message, error) {
	return h.SendFiles(ctx, id, room, msgID, text, nil)
}

// SendFiles is Send with attachments: the files with fileIDs (at most
// protocol.MaxFiles), which Config.Files resolves; the text of a message
// with files may be empty. See attach for the rules.
func (h *Hub) SendFiles(ctx context.Context, id auth.Identity, room, msgID, text string, fileIDs []string) (protocol.Message, error) {
	e := protocol.Envelope{Type: protocol.TypeSend, Room: room, ID: msgID, Text: text, Files: protocol.FileRefs(fileIDs)}
	if err := protocol.ValidateClient(&e); err != nil {
		return protocol.Message{}, err
	}
	if err := id.CanAccess(room); err != nil {
		return protocol.Message{}, err
	}
	clean, err := h.cleanText(text, len(fileIDs) > 0)
	if err != nil {
		return protocol.Message{}, err
	}
	if len(fileIDs) > 0 {
		if m, done, err := h.attachable(ctx, id, room, msgID); done || err != nil {
			return m, err
		}
	}
	allowed, err := h.allowSend(ctx, id.User)
	if err != nil {
		return protocol.Message{}, internal(err)
	}
	if !allowed {
		// A retry of a stored send is answered, not limited: clients retry freely.
		if m, ok, err := h.store.Lookup(ctx, room, msgID); err == nil && ok {
			h.metrics.duplicates.Inc()
			return retried(id, m)
		}
		return protocol.Message{}, protocol.Errorf(protocol.CodeRateLimited,
			"sending faster than %g messages per second", h.cfg.SendRate)
	}
	id = h.withName(ctx, id)
	files, err := h.resolve(ctx, id, room, msgID, fileIDs)
	if err != nil {
		return protocol.Message{}, err
	}
	m, dup, err := h.store.Append(ctx, protocol.Message{Room: room, ID: msgID, From: id.User, Name: id.Name, Text: clean, Files: files})
	if err != nil {
		return protocol.Message{}, internal(err)
	}
	if dup {
		h.metrics.duplicates.Inc()
		if m, err = retried(id, m); err != nil {
			return m, err
		}
	} else {
		h.metrics.messages.Inc()
	}
	h.afterSend(ctx, id, m)
	return m, nil
}

// retried answers a send or an op whose (room, id) is stored already: a
// retry of the user's own gets its first answer; another sender's id
// is conflict. Ids are kept per room, not per sender (engines dedupe on
// (room, id)), and a client that picks ids others can guess would else
// be told its message was stored when another user's was.
func retried(id auth.Identity, m protocol.Message) (protocol.Message, error) {
	if m.From != id.User {
		return protocol.Message{}, protocol.Errorf(protocol.CodeConflict,
			"id %q is another sender's in this room; send under a new id", m.ID)
	}
	return m, nil
}

// Read records that id has read room up to seq and, when receipts are on,
// tells the room. Positions are coalesced (see readQueue): the highest one
// per user and room is stored within Config.ReadFlush, never lowering the
// stored one, and its receipt follows. Read returns the highest position
// this node holds pending for the user in room. Past ReadRate a user gets
// rate_limited.
func (h *Hub) Read(ctx context.Context, id auth.Identity, room string, seq uint64) (uint64, error) {
	e := protocol.Envelope{Type: protocol.TypeRead, Room: room, Seq: seq}
	if err := protocol.ValidateClient(&e); err != nil {
		return 0, err
	}
	if err := id.CanAccess(room); err != nil {
		return 0, err
	}
	if !h.limits.allowRead(id.User) {
		return 0, protocol.Errorf(protocol.CodeRateLimited,
			"recording read positions faster than %g per second", h.cfg.ReadRate)
	}
	// A position within what this node has published needs no store
	// read: a client reads what it was delivered, so this is nearly every
	// read (a store read per read was 4% of a node's CPU in a busy chat).
	if seq > h.publishedHead(room) {
		p, err := h.store.Since(ctx, room, seq, 0)
		if err != nil {
			return 0, internal(err)
		}
		if seq > p.Head {
			return 0, protocol.Errorf(protocol.CodeBadRequest, "seq %d is beyond the room's head %d", seq, p.Head)
		}
	}
	return h.reads.add(room, id.User, seq, h.cfg.Features(id.User, FeatureReadReceipts)), nil
}

// Typing tells room's other members that id is typing, at most once per
// TypingInterval per user and room.
func (h *Hub) Typing(ctx context.Context, id auth.Identity, room string) error {
	if err := protocol.ValidRoom(room); err != nil {
		return err
	}
	if err := id.CanAccess(room); err != nil {
		return err
	}
	if !h.cfg.Features(id.User, FeatureTyping) {
		return protocol.Errorf(protocol.CodeFeatureDisabled, "typing indicators are off")
	}
	if !h.limits.allowTyping(id.User, room, h.cfg.TypingInterval) {
		return nil
	}
	id = h.withName(ctx, id)
	h.broker.Broadcast(room, protocol.Envelope{Type: protocol.TypeTyping, Room: room, User: id.User, Name: id.Name})
	return nil
}

// History returns a page of room's messages before seq before (0: the
// newest page), oldest first, with the room's head.
func (h *Hub) History(ctx context.Context, id auth.Identity, room string, before uint64, limit int) (Page, error) {
	if err := protocol.ValidRoom(room); err != nil {
		return Page{}, err
	}
	if err := id.CanAccess(room); err != nil {
		return Page{}, err
	}
	if limit <= 0 {
		limit = h.cfg.HistoryLimit
	}
	if limit > MaxHistoryLimit {
		limit = MaxHistoryLimit
	}
	p, err := h.store.Before(ctx, room, before, limit)
	if err != nil {
		return Page{}, internal(err)
	}
	if p.Messages == nil {
		p.Messages = []protocol.Message{}
	}
	return p, nil
}

// allowSend takes a send token for user: from the cluster's shared
// bucket on a cluster engine, else from this node's.
func (h *Hub) allowSend(ctx context.Context, user string) (bool, error) {
	if h.cluster == nil {
		return h.limits.allowSend(user), nil
	}
	ctx, cancel := context.WithTimeout(ctx, clusterTimeout)
	defer cancel()
	return h.cluster.AllowSend(ctx, user, h.cfg.SendRate, h.cfg.SendBurst)
}

// Presence lists the users online in room: on every node on a cluster
// engine, else on this one.
func (h *Hub) Presence(ctx context.Context, id auth.Identity, room string) ([]Member, error) {
	if err := protocol.ValidRoom(room); err != nil {
		return nil, err
	}
	if err := id.CanAccess(room); err != nil {
		return nil, err
	}
	if !h.cfg.Features(id.User, FeaturePresence) {
		return nil, protocol.Errorf(protocol.CodeFeatureDisabled, "presence is off")
	}
	if h.cluster != nil {
		ctx, cancel := context.WithTimeout(ctx, clusterTimeout)
		defer cancel()
		ms, err := h.cluster.Members(ctx, room)
		if err != nil {
			return nil, internal(err)
		}
		return ms, nil
	}
	if r := h.lookupRoom(room); r != nil {
		return r.presence(), nil
	}
	return []Member{}, nil
}

// Reads returns every read position in room, by user: the caller's own
// (to restore unread counts after a reload) and others' ("seen by"). It
// includes positions this node holds and has not stored yet.
func (h *Hub) Reads(ctx context.Context, id auth.Identity, room string) (map[string]uint64, error) {
	if err := protocol.ValidRoom(room); err != nil {
		return nil, err
	}
	if err := id.CanAccess(room); err != nil {
		return nil, err
	}
	reads, err := h.store.Reads(ctx, room)
	if err != nil {
		return nil, internal(err)
	}
	if reads == nil {
		reads = map[string]uint64{}
	}
	h.reads.overlay(room, reads) // positions reported here and not yet flushed
	return reads, nil
}
