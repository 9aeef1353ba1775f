package core

import (
	"context"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// Edit replaces the text of the message at seq target in room, which id
// must have sent, and returns the stored edit: an entry of the room's log
// with a seq of its own, delivered to the room like a message. From then
// on the message reads back with the new text and its edit stamp. The
// text follows a send's rules. opID is the edit's own client id: a
// re-send of the same (room, opID) returns the stored edit and stores
// nothing. Edits count against the send rate.
//
// Errors: bad_request for a malformed request or a target that is an
// edit or a delete, or a message edited protocol.MaxEdits times;
// not_found for a target beyond the head, pruned or deleted; forbidden
// for a message id did not send, or a room it may not use.
func (h *Hub) Edit(ctx context.Context, id auth.Identity, room, opID string, target uint64, text string) (protocol.Message, error) {
	e := protocol.Envelope{Type: protocol.TypeEdit, Room: room, ID: opID, Seq: target, Text: text}
	if err := protocol.ValidateClient(&e); err != nil {
		return protocol.Message{}, err
	}
	clean, err := protocol.CleanText(text, h.cfg.MaxTextLen)
	if err != nil {
		return protocol.Message{}, err
	}
	return h.amend(ctx, id, protocol.Message{Kind: protocol.TypeEdit, Room: room, ID: opID,
		From: id.User, Name: id.Name, Text: clean, Target: target})
}

// Delete deletes the message at seq target in room, which id must have
// sent or, as an admin with access to the room, may delete anyway, and
// returns the stored delete: an entry with a seq of its own, delivered
// like a message. From then on the message, and every edit of it, reads
// back without text or files; the files are handed to Config.OnDelete.
// opID is idempotent as in Edit, and the errors are Edit's.
func (h *Hub) Delete(ctx context.Context, id auth.Identity, room, opID string, target uint64) (protocol.Message, error) {
	e := protocol.Envelope{Type: protocol.TypeDelete, Room: room, ID: opID, Seq: target}
	if err := protocol.ValidateClient(&e); err != nil {
		return protocol.Message{}, err
	}
	return h.amend(ctx, id, protocol.Message{Kind: protocol.TypeDelete, Room: room, ID: opID,
		From: id.User, Name: id.Name, Target: target})
}

// amend stores an edit or a delete op from id. A retry is answered from
// the store before anything is checked, so that it gets its first answer
// even once the message is gone or the rate is spent.
func (h *Hub) amend(ctx context.Context, id auth.Identity, op protocol.Message) (protocol.Message, error) {
	if err := id.CanAccess(op.Room); err != nil {
		return protocol.Message{}, err
	}
	if m, ok, err := h.store.Lookup(ctx, op.Room, op.ID); err != nil {
		return protocol.Message{}, internal(err)
	} else if ok {
		h.metrics.duplicates.Inc()
		return retried(id, m)
	}
	allowed, err := h.allowSend(ctx, id.User)
	if err != nil {
		return protocol.Message{}, internal(err)
	}
	if !allowed {
		return protocol.Message{}, protocol.Errorf(protocol.CodeRateLimited,
			"sending faster than %g messages per second", h.cfg.SendRate)
	}
	if err := h.mayAmend(ctx, id, op); err != nil {
		return protocol.Message{}, err
	}
	m, dup, err := h.store.Append(ctx, op)
	if err != nil {
		return protocol.Message{}, internal(err)
	}
	if dup {
		h.metrics.duplicates.Inc()
		return retried(id, m)
	}
	h.metrics.messages.Inc()
	return m, nil
}

// mayAmend checks op's target and id's right to change it: an edit by
// the message's author only, a delete by its author or an admin. The
// author of a message never changes, so this read may precede the
// append; the engine checks again, atomically, what can change (the
// message pruned or deleted meanwhile).
func (h *Hub) mayAmend(ctx context.Context, id auth.Identity, op protocol.Message) error {
	p, err := h.store.Since(ctx, op.Room, op.Target-1, 1)
	if err != nil {
		return internal(err)
	}
	if len(p.Messages) == 0 || p.Messages[0].Seq != op.Target {
		return protocol.Errorf(protocol.CodeNotFound, "no message %d in the room", op.Target)
	}
	t := p.Messages[0]
	switch {
	case !t.IsMessage():
		return protocol.Errorf(protocol.CodeBadRequest, "seq %d is %s, not a message", op.Target, t.Kind)
	case t.Deleted:
		return protocol.Errorf(protocol.CodeNotFound, "message %d was deleted", op.Target)
	case t.From == id.User, op.Kind == protocol.TypeDelete && id.Admin:
		return nil
	case op.Kind == protocol.TypeEdit:
		return protocol.Errorf(protocol.CodeForbidden, "only its author may edit a message")
	}
	return protocol.Errorf(protocol.CodeForbidden, "only its author or an admin may delete a message")
}

// cleanText cleans a send's text: CleanText, or CleanCaption when the
// message has files.
func (h *Hub) cleanText(text string, files bool) (string, error) {
	if files {
		return protocol.CleanCaption(text, h.cfg.MaxTextLen)
	}
	return protocol.CleanText(text, h.cfg.MaxTextLen)
}

// attachable checks that id may send files now: a resolver is
// configured and FeatureFiles (the files flag, off from level 2) is on,
// as for an upload. A retry of a stored send is
// answered (done) before that, and before its files are resolved again,
// which the resolver may refuse once they are attached.
func (h *Hub) attachable(ctx context.Context, id auth.Identity, room, msgID string) (protocol.Message, bool, error) {
	if h.cfg.Files == nil {
		return protocol.Message{}, false, protocol.Errorf(protocol.CodeBadRequest, "this server takes no attachments")
	}
	if m, ok, err := h.store.Lookup(ctx, room, msgID); err != nil {
		return protocol.Message{}, false, internal(err)
	} else if ok {
		h.metrics.duplicates.Inc()
		m, err := retried(id, m)
		return m, true, err
	}
	if !h.cfg.Features(id.User, FeatureFiles) {
		return protocol.Message{}, false, protocol.Errorf(protocol.CodeFeatureDisabled, "attachments are off")
	}
	return protocol.Message{}, false, nil
}

// resolve turns file ids into the files a message carries, through
// Config.Files, and checks its answer.
func (h *Hub) resolve(ctx context.Context, id auth.Identity, room, msgID string, ids []string) ([]protocol.File, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	files, err := h.cfg.Files.Resolve(ctx, id.User, room, msgID, ids)
	if err != nil {
		return nil, internal(err)
	}
	if len(files) != len(ids) {
		return nil, internal(errResolver("%d files for %d ids", len(files), len(ids)))
	}
	for i, f := range files {
		if f.ID != ids[i] || f.URL == "" {
			return nil, internal(errResolver("file %d is %q with url %q, asked for %q", i, f.ID, f.URL, ids[i]))
		}
	}
	return files, nil
}

// amend handles an edit or a delete frame and acks it.
func (s *Session) amend(ctx context.Context, id auth.Identity, e protocol.Envelope) error {
	var (
		m   protocol.Message
		err error
	)
	if e.Type == protocol.TypeEdit {
		m, err = s.hub.Edit(ctx, id, e.Room, e.ID, e.Seq, e.Text)
	} else {
		m, err = s.hub.Delete(ctx, id, e.Room, e.ID, e.Seq)
	}
	if err != nil {
		return err
	}
	s.reply(m.Ack())
	return nil
}
