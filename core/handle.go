package core

import (
	"context"
	"errors"
	"math"
	"slices"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// Handle acts on one decoded client envelope. Replies, including errors,
// are enqueued to the session; Handle itself returns nothing. Transports
// call it from their reader, one frame at a time. A join that replays
// history blocks until the replay is queued, pacing itself to the client.
func (s *Session) Handle(ctx context.Context, e protocol.Envelope) {
	if e.RTTMS != 0 {
		s.reportedRTT(e.RTTMS)
	}
	ref := e.Ref
	if ref == "" && (e.Type == protocol.TypeSend || e.Type == protocol.TypeEdit || e.Type == protocol.TypeDelete) {
		ref = e.ID
	}
	if err := s.handle(ctx, e, ref, false); err != nil {
		s.failed(e.Type, err, protocol.ErrorEnvelope(err, ref))
	}
}

// failed logs err, an error handling a client envelope of type op, and
// sends reply, unless the session or the request was closing.
func (s *Session) failed(op string, err error, reply protocol.Envelope) {
	if errors.Is(err, ErrClosed) || errors.Is(err, context.Canceled) {
		return
	}
	s.logError(op, err)
	s.reply(reply)
}

// JoinRequested joins room from since (live if nil) as the join envelope
// {"type":"join","room":room,"since":since} would, for a join the client
// made in the request that opened the session (a WebSocket's rooms=):
// the same joined reply and catch-up. Its error reply, having no ref to
// echo, names the room.
func (s *Session) JoinRequested(ctx context.Context, room string, since *uint64) {
	e := protocol.Envelope{Type: protocol.TypeJoin, Room: room, Since: since}
	if err := s.handle(ctx, e, "", true); err != nil {
		reply := protocol.ErrorEnvelope(err, "")
		reply.Room = room
		s.failed(e.Type, err, reply)
	}
}

// EndJoinFailed ends a session whose join, made for the request that
// opened it, failed where no error reply can answer it (an SSE stream has
// no frames to answer). The disconnect carries the wire code and the
// message a client may see, with 4000 for a refusal the request could
// have avoided (bad_request, forbidden, not_found, too_many_rooms,
// too_large) and 1011 for the rest, the server's trouble (internal,
// unavailable, timeout, ...), which a client retries with backoff. An
// internal error's cause goes to the log only, as a session's failed
// requests do; a store closing (ErrClosed) or cancelled is not logged. A
// session that is already closing ends as it was ending.
func (s *Session) EndJoinFailed(err error) {
	if s.ctx.Err() != nil {
		return
	}
	if !errors.Is(err, ErrClosed) && !errors.Is(err, context.Canceled) {
		s.logError(protocol.TypeJoin, err)
	}
	code, msg := protocol.CodeOf(err)
	closeCode := protocol.CloseInternal
	switch code {
	case protocol.CodeBadRequest, protocol.CodeForbidden, protocol.CodeNotFound, protocol.CodeTooManyRooms, protocol.CodeTooLarge:
		closeCode = protocol.CloseBadRequest
	}
	s.Close(Disconnect{Code: closeCode, Reason: "join failed: " + string(code) + ": " + msg})
}

// HandleFrame decodes one raw client frame and handles it. A frame that
// does not decode gets a bad_request error reply; the session goes on.
func (s *Session) HandleFrame(ctx context.Context, data []byte) {
	e, err := protocol.DecodeClient(data)
	if err != nil {
		s.reply(protocol.ErrorEnvelope(err, e.Ref))
		return
	}
	s.Handle(ctx, e)
}

// Context is cancelled when the session closes. Transports use it for
// work done on the session's behalf after their handler has returned.
func (s *Session) Context() context.Context { return s.ctx }

func (s *Session) logError(op string, err error) {
	if code, _ := protocol.CodeOf(err); code == protocol.CodeInternal {
		s.hub.cfg.Logger.Error("request failed", "session", s.id, "user", s.user, "op", op, "err", err)
	}
}

// handle acts on e; requested says it comes with the request that opened
// the session (JoinRequested), not in a frame.
func (s *Session) handle(ctx context.Context, e protocol.Envelope, ref string, requested bool) error {
	if err := protocol.ValidateClient(&e); err != nil {
		return err
	}
	id := s.Identity()
	if id.Ticket && writes(e.Type) {
		return errTicketWrites
	}
	switch e.Type {
	case protocol.TypePing:
		s.reply(protocol.Envelope{Type: protocol.TypePong, Ref: ref})
	case protocol.TypePong:
	case protocol.TypeJoin:
		return s.join(ctx, e.Room, e.Since, ref, false, requested)
	case protocol.TypeLeave:
		if !s.hub.limits.allowList(id.User) {
			return errListRate // before the leave: refused, it changes nothing
		}
		s.leave(e.Room)
		if err := s.hub.unlist(ctx, id, e.Room); err != nil {
			return err
		}
		if ref != "" {
			s.reply(protocol.Envelope{Type: protocol.TypeAck, Room: e.Room, Ref: ref})
		}
	case protocol.TypeSend:
		m, err := s.hub.SendFiles(ctx, id, e.Room, e.ID, e.Text, protocol.FileIDs(e.Files))
		if err != nil {
			return err
		}
		s.reply(m.Ack())
	case protocol.TypeEdit, protocol.TypeDelete:
		return s.amend(ctx, id, e)
	case protocol.TypeRead:
		seq, err := s.hub.Read(ctx, id, e.Room, e.Seq)
		if err != nil {
			return err
		}
		if ref != "" {
			s.reply(protocol.Envelope{Type: protocol.TypeAck, Room: e.Room, Seq: seq, Ref: ref})
		}
	case protocol.TypeTyping:
		return s.hub.Typing(ctx, id, e.Room)
	case protocol.TypeRefresh:
		return s.refresh(e.Token, ref)
	}
	return nil
}

// errTicketWrites answers a write on a stream a ticket opened, before the
// client proved its token in-band. A ticket travels in a URL and may leak
// (a proxy's log, a browser's history): what it opens may receive for
// the ticket's short life, and nothing more.
var errTicketWrites = protocol.Errorf(protocol.CodeUnauthorized,
	`this connection was opened with a ticket, which may only receive: send {"type":"refresh","token":"<jwt>"} first`)

// writes reports whether a client envelope of type t changes what others
// see or what is stored for the user: what a stream a ticket opened may
// not do until refreshed.
func writes(t string) bool {
	switch t {
	case protocol.TypeSend, protocol.TypeEdit, protocol.TypeDelete, protocol.TypeRead,
		protocol.TypeTyping, protocol.TypeLeave:
		return true
	}
	return false
}

// refresh swaps in a new token for the same user and re-arms the expiry.
func (s *Session) refresh(token, ref string) error {
	if s.hub.cfg.Verifier == nil {
		return protocol.Errorf(protocol.CodeFeatureDisabled, "token refresh is not configured")
	}
	id, err := s.hub.cfg.Verifier.Verify(token)
	if err != nil {
		return err
	}
	if id.User != s.user {
		return protocol.Errorf(protocol.CodeForbidden, "refresh token is for another user")
	}
	s.mu.Lock()
	// A token whose rooms claim leaves out a room the session has joined
	// does not take over: taken, the session went on receiving the room
	// its new token no longer allows.
	stream := UserStream(s.user)
	for _, r := range s.rooms {
		if r.name == stream {
			continue
		}
		if err := id.CanAccess(r.name); err != nil {
			s.mu.Unlock()
			return protocol.Errorf(protocol.CodeForbidden,
				"the new token does not allow room %q, which this connection has joined: leave it first", r.name)
		}
	}
	if s.closing == nil {
		s.ident = id
		s.armExpiry(id)
	}
	s.mu.Unlock()
	s.reply(protocol.Envelope{Type: protocol.TypeAck, Ref: ref})
	return nil
}

// Join subscribes the session to room and replays what it missed after
// since (nil: live only). With quiet, the joined envelope is sent only when
// the resume is not exact: a poll that resumes from a cursor then answers
// only when there is news. Errors are *protocol.Error values or ErrClosed.
//
// The room protocol.UserRoom ("~") is the user's own stream of "room"
// events: it needs no permission, counts against no room limit and has
// no presence. Joining any other room puts it in the user's room list,
// unless the user left it after the session's fence (SessionOptions.Fence):
// Join is for the joins of the request that opened the session.
func (s *Session) Join(ctx context.Context, room string, since *uint64, quiet bool) error {
	return s.join(ctx, room, since, "", quiet, true)
}

// join is Join with the ref to echo; requested says the join is made for
// the request that opened the session, so that it takes the session's
// fence (SessionOptions.Fence) if it has one. See the package doc for
// why it is exact.
func (s *Session) join(ctx context.Context, name string, since *uint64, ref string, quiet, requested bool) error {
	stamp := s.hub.listed.stamp() // a leave from now on wins over this join's listing
	if f := s.opts.Fence; requested && f.set {
		stamp = f.leaves // and one since the request arrived
	}
	id := s.Identity()
	wire, stream := name, name == protocol.UserRoom
	if stream {
		name = UserStream(s.user)
	} else if err := joinable(id, name); err != nil {
		return err
	}
	s.leave(name) // a repeated join restarts the subscription from since
	if !stream {
		if err := s.roomLimit(); err != nil {
			return err
		}
	}
	id = s.hub.withName(ctx, id) // and records a token's name others have not seen
	// Lock order is room, then session: never hold s.mu here.
	r := s.hub.acquireRoom(name)
	sb := &sub{syncing: true}
	r.addSub(s, sb)
	if !stream {
		r.addMember(id.User, id.Name)
	}
	r.mu.Unlock()
	s.mu.Lock()
	closing := s.closing != nil
	if !closing {
		if i := s.roomIndex(name); i >= 0 {
			s.rooms[i] = r
		} else {
			s.rooms = append(s.rooms, r)
		}
	}
	s.mu.Unlock()
	if closing {
		s.unsubscribe(r)
		return ErrClosed
	}

	after, head, err := s.sendJoined(ctx, name, since, ref, quiet)
	if err == nil {
		err = s.catchUp(ctx, r, sb, after, head)
	}
	if err != nil {
		s.leave(name)
		return err
	}
	if !stream && !id.Ticket {
		// A ticket may have leaked: what it opens is not remembered
		// (POST /v1/join remembers a room with the token).
		if err := s.hub.listJoin(ctx, id.User, wire, stamp); err != nil {
			s.hub.cfg.Logger.Debug("rooms: listing a joined room failed", "user", id.User, "room", wire, "err", err)
		}
	}
	return nil
}

// joinable reports whether id may join room: a well-formed room name
// (the transports check it too) that id may use.
func joinable(id auth.Identity, room string) error {
	if err := protocol.ValidRoom(room); err != nil {
		return err
	}
	return id.CanAccess(room)
}

// roomLimit refuses a join past MaxRoomsPerSession rooms; the user's own
// stream does not count.
func (s *Session) roomLimit() error {
	s.mu.Lock()
	n := len(s.rooms)
	if s.roomIndex(UserStream(s.user)) >= 0 {
		n--
	}
	s.mu.Unlock()
	if n >= s.hub.cfg.MaxRoomsPerSession {
		return protocol.Errorf(protocol.CodeTooManyRooms,
			"a connection may join %d rooms", s.hub.cfg.MaxRoomsPerSession)
	}
	return nil
}

// sendJoined enqueues the joined envelope and returns the seq to replay
// after and the room's head in the store.
func (s *Session) sendJoined(ctx context.Context, name string, since *uint64, ref string, quiet bool) (uint64, uint64, error) {
	after := uint64(math.MaxUint64)
	if since != nil {
		after = *since
	}
	page, err := s.hub.store.Since(ctx, name, after, 0)
	if err != nil {
		return 0, 0, internal(err)
	}
	recovered := true
	if since == nil || after > page.Head {
		recovered = since == nil
		after = page.Head
	} else if recovered = page.Recovered(after); !recovered {
		// Pruned up to First-1: this envelope tells the client, and the
		// replay starts at what is left, so that only a prune after this
		// read shows as a gap to catchUp.
		after = page.First - 1
	}
	if quiet && recovered {
		return after, page.Head, nil
	}
	room := wireRoom(name)
	f := Frame{Type: protocol.TypeJoined, Room: room, Seq: after, Data: protocol.EncodeJoined(ref, room, page.Head, recovered)}
	return after, page.Head, s.put(ctx, f)
}

// prunedFrame is the joined envelope that tells a catching-up client that
// messages after seq last of room were pruned before it could read them:
// recovered:false, as a join from beyond the retained history gets. Its
// position is last, so a poll cursor or a resume seq stays exact.
func prunedFrame(name string, last, head uint64) Frame {
	room := wireRoom(name)
	return Frame{Type: protocol.TypeJoined, Room: room, Seq: last, Data: protocol.EncodeJoined("", room, head, false)}
}

// catchUp replays room from after, then turns the subscription live. It
// holds one of the node's replay slots while it reads, so the replayed
// bytes queued on the node stay within Config.ReplayBudget. What the
// room's recent window holds (recent.go) comes from memory; the store is
// read for what lies before the window or beyond the published head, up
// to storeHead, the head the store reported (0: any).
func (s *Session) catchUp(ctx context.Context, r *room, sb *sub, after, storeHead uint64) error {
	if err := s.hub.acquireReplay(ctx, s.ctx); err != nil {
		return err
	}
	defer s.hub.releaseReplay()
	last := after
	page := s.hub.cfg.ReplayPage
	for {
		r.mu.Lock()
		frames, covered, complete := r.recentAfter(last, storeHead)
		r.mu.Unlock()
		if covered {
			// What the window holds, whether or not it reaches the store's
			// head: a node behind on its fan-out (the hand-off after
			// commit) has stored more than it has published, and then only
			// that part is read from the store below.
			s.hub.metrics.replayed(replayMemory, len(frames))
			for _, f := range frames {
				if err := s.putReplay(ctx, f); err != nil {
					return err
				}
				last = f.Seq
			}
		}
		if !complete {
			p, err := s.hub.store.Since(ctx, r.name, last, page)
			if err != nil {
				return internal(err)
			}
			if len(p.Messages) > 0 && p.Messages[0].Seq > last+1 {
				// Pruned since the join read the bounds, or since the last
				// page: a client far enough behind a busy room loses the
				// race with retention. Say so as a join from beyond the
				// retained history does, then send what is left.
				if err := s.putReplay(ctx, prunedFrame(r.name, last, p.Head)); err != nil {
					return err
				}
			}
			s.hub.metrics.replayed(replayStore, len(p.Messages))
			for _, m := range p.Messages {
				if err := s.putReplay(ctx, messageFrame(m)); err != nil {
					return err
				}
				last = m.Seq
			}
			if len(p.Messages) == page {
				continue
			}
		}
		// Go live with room to spare, so that a burst right after the
		// switch does not find the queue still full of replay.
		if err := s.waitLow(ctx); err != nil {
			return err
		}
		if r.goLive(s, sb, last) {
			return nil
		}
	}
}

// goLive turns sb live at last, the newest seq the catch-up has queued,
// unless the room has published past it meanwhile; then the caller reads
// the rest from the store, outside the lock, and tries again. The store is
// never read under the room's lock: the engine publishes only after
// commit, so every seq up to r.head can be read, and every seq after it
// will be published to a live sb.
func (r *room) goLive(s *Session, sb *sub, last uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.subs[s] != sb {
		return true // left meanwhile
	}
	if last < r.head {
		return false
	}
	sb.last = last
	sb.live, sb.syncing = true, false
	return true
}

// goCatchUp resumes a subscription that saw a gap. Called with r.mu held.
func (s *Session) goCatchUp(r *room, sb *sub) {
	from := sb.last
	go func() {
		if err := s.catchUp(s.ctx, r, sb, from, 0); err != nil && !errors.Is(err, ErrClosed) {
			s.Close(Disconnect{Code: protocol.CloseInternal, Reason: "catch-up failed"})
		}
	}()
}

// roomIndex returns the index of the room called name in s.rooms, or -1.
// Called with s.mu held.
func (s *Session) roomIndex(name string) int {
	return slices.IndexFunc(s.rooms, func(r *room) bool { return r.name == name })
}

// leave unsubscribes the session from room, if it had joined.
func (s *Session) leave(name string) {
	s.mu.Lock()
	var r *room
	if i := s.roomIndex(name); i >= 0 {
		r = s.rooms[i]
		s.rooms = slices.Delete(s.rooms, i, i+1)
	}
	s.mu.Unlock()
	if r != nil {
		s.unsubscribe(r)
	}
}

// unsubscribe removes s from r and announces the user offline if this was
// their last session there.
func (s *Session) unsubscribe(r *room) {
	id := s.Identity()
	lease := s.leaseUntil() // before r.mu: it may start the janitor, which takes h.mu
	r.mu.Lock()
	if r.dropSub(s) {
		r.dropMember(id.User, lease)
	}
	r.mu.Unlock()
	s.hub.releaseIfEmpty(r)
}

func messageFrame(m protocol.Message) Frame {
	if IsUserStream(m.Room) {
		return userEventFrame(m)
	}
	return envelopeFrame(m.Envelope())
}

// internal wraps an engine failure: the client sees "internal", the log the cause.
func internal(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, ErrClosed) {
		return err
	}
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return err
	}
	return &protocol.Error{Code: protocol.CodeInternal, Message: "internal error", Cause: err}
}
