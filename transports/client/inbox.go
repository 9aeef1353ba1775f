package client

import (
	"encoding/json"
	"maps"
	"slices"

	"github.com/chatd/chatd/core/protocol"
)

// decodeFrameInto parses one server frame, an envelope or a JSON array
// of them (the WebSocket writer batches), appending to dst[:0], an array
// a stream's reader reuses from frame to frame (see frameScratch). The
// common shapes take a fast path that gives the same result as
// encoding/json; options o (Config.CountReads, Config.CountChanges)
// apply on either path.
func decodeFrameInto(dst []protocol.Envelope, data []byte, o protocol.FastOptions) ([]protocol.Envelope, error) {
	if list, ok := protocol.DecodeFrameFastWith(dst[:0], data, o); ok {
		return list, nil
	}
	clear(dst[:cap(dst)]) // let go of what the fast path wrote before it gave up
	list, err := decodeJSON(data)
	if err == nil && o.CountReads {
		protocol.CountReads(list)
	}
	if err == nil && o.CountChanges {
		protocol.CountChanges(list)
	}
	return list, err
}

// decodeOptions are the decoders' options from the client's Config.
func (c *Client) decodeOptions() protocol.FastOptions {
	return protocol.FastOptions{CountReads: c.cfg.CountReads, CountChanges: c.cfg.CountChanges}
}

// maxScratch is the largest envelope array kept for the next frame:
// about 102 KiB (408 bytes an envelope).
const maxScratch = 256

// frameScratch is the envelope array a stream's reader decodes a frame
// into, from decode to done; in between frames it holds none (but for
// one whose frame failed to decode, cleared, until the next frame). The
// arrays come from, and go back to, a list shared by every client of
// the process (scratchFree): a busy client decodes most of what it gets
// in frames of many envelopes, and a fresh array per frame, grown by
// doubling, was a sixth of the load tool's CPU in a reconnect storm;
// an array kept by each reader was 93 MB of the tool's heap at 10,000
// users in chat, pointers all, for the collector to mark (7 December).
type frameScratch []protocol.Envelope

// array returns the array to decode into: the one held, else one from
// the shared list.
func (s *frameScratch) array() []protocol.Envelope {
	if cap(*s) == 0 {
		*s = scratchFree.get(0)
	}
	return (*s)[:0]
}

// decode decodes data into the array, with options o.
func (s *frameScratch) decode(data []byte, o protocol.FastOptions) ([]protocol.Envelope, error) {
	envs, err := decodeFrameInto(s.array(), data, o)
	if err == nil {
		s.keep(envs)
	}
	return envs, err
}

// keep makes envs's array the one held if it grew, and is not over
// maxScratch.
func (s *frameScratch) keep(envs []protocol.Envelope) {
	if cap(envs) <= maxScratch && cap(envs) > cap(*s) {
		*s = envs[:0]
	}
}

// done lets go of what the envelopes decoded last point to, and gives
// the array back to the shared list.
func (s *frameScratch) done(envs []protocol.Envelope) {
	if cap(envs) <= maxScratch {
		clear(envs)
	}
	if cap(*s) > 0 {
		scratchFree.put(*s)
		*s = nil
	}
}

// scratchFree are the frames' envelope arrays not in use.
var scratchFree arrayList

// decodeJSON is decodeFrameInto with encoding/json alone.
func decodeJSON(data []byte) ([]protocol.Envelope, error) {
	for len(data) > 0 && (data[0] == ' ' || data[0] == '\n' || data[0] == '\r' || data[0] == '\t') {
		data = data[1:]
	}
	if len(data) > 0 && data[0] == '[' {
		var list []protocol.Envelope
		err := json.Unmarshal(data, &list)
		return list, err
	}
	var e protocol.Envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, err
	}
	return []protocol.Envelope{e}, nil
}

// handle routes one server envelope that arrived on l. It runs on l's
// reader goroutine, so envelopes are handled in arrival order.
func (c *Client) handle(l *link, e protocol.Envelope) {
	switch e.Type {
	case protocol.TypePing:
		l.pong()
		return
	case protocol.TypePong:
		return
	case protocol.TypeAck:
		l.reply(e)
		return
	case protocol.TypeControl:
		c.onControl(l, e)
		return
	case protocol.TypeDisconnect:
		l.end.code, l.end.reason = e.CloseCode, e.Reason
		if e.ReconnectMS > 0 {
			l.end.reconnect = msDuration(int64(e.ReconnectMS))
		}
		return
	case protocol.TypeJoined:
		l.markUp()
		l.reply(e)
	case protocol.TypeError:
		if room, ok := l.joinFailed(e); ok {
			l.markUp() // the server answered: the path works
			e.Room = room
			switch protocol.Code(e.Code) {
			case protocol.CodeForbidden, protocol.CodeBadRequest, protocol.CodeTooManyRooms, protocol.CodeNotFound:
				c.dropRoom(room, e) // no retry will fix it
			default:
				c.accept(e)
				l.fail(envelopeError(e)) // reconnect, and join again
			}
			return
		}
		if l.reply(e) {
			return
		}
	}
	c.accept(e)
}

// accept applies e to the positions and queues it for Events, unless it
// is a log entry (message, edit, delete) already delivered or concerns
// a room no longer followed.
func (c *Client) accept(e protocol.Envelope) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.Type == protocol.TypeRoom || e.Room == protocol.UserRoom {
		c.acceptUserLocked(e)
		return
	}
	if e.Room != "" && e.Type != protocol.TypeError && !slices.Contains(c.rooms, e.Room) {
		return
	}
	switch {
	case positions(e):
		if last, ok := c.pos[e.Room]; ok && e.Seq <= last {
			c.dups++
			return
		}
		c.pos[e.Room] = e.Seq
	case e.Type == protocol.TypeJoined:
		if e.Head == nil {
			break
		}
		last, ok := c.pos[e.Room]
		switch {
		case !ok:
			// First live join: the stream carries what follows head.
			c.pos[e.Room] = *e.Head
		case e.Recovered != nil && !*e.Recovered && *e.Head < last:
			// The server's history restarted below our position; it
			// goes live from its head, so follow it there.
			c.pos[e.Room] = *e.Head
		}
	}
	c.enqueueLocked(e)
}

// acceptUserLocked is accept for the user's own stream: "room" envelopes
// are delivered once each, in seq order, under the position "~", like a
// room's messages; its joined envelopes set the position and are
// delivered only when recovered is false (events were missed: the caller
// reads its list again). Without Config.UserEvents all of it is dropped. Called with
// mu held.
func (c *Client) acceptUserLocked(e protocol.Envelope) {
	if !c.cfg.UserEvents {
		return
	}
	last, ok := c.pos[protocol.UserRoom]
	switch e.Type {
	case protocol.TypeRoom:
		if ok && e.Seq <= last {
			c.dups++
			return
		}
		c.pos[protocol.UserRoom] = e.Seq
		c.enqueueLocked(e)
	case protocol.TypeJoined:
		if e.Head != nil && (!ok || e.Recovered != nil && !*e.Recovered && *e.Head < last) {
			c.pos[protocol.UserRoom] = *e.Head
		}
		if e.Recovered != nil && !*e.Recovered {
			c.enqueueLocked(e) // events were missed: the caller reads the list again
		}
	case protocol.TypeError:
		c.enqueueLocked(e)
	}
}

// dropRoom stops following a room whose join the server refused, and
// reports the refusal on Events.
func (c *Client) dropRoom(room string, e protocol.Envelope) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := slices.Index(c.rooms, room); i >= 0 {
		c.rooms = slices.Delete(c.rooms, i, i+1)
		delete(c.pos, room)
	}
	c.enqueueLocked(e)
}

// onControl records a control envelope and hands it to l's supervisor,
// which decides whether to move. The server greets every stream with one,
// and every poll answer carries one.
func (c *Client) onControl(l *link, e protocol.Envelope) {
	c.mu.Lock()
	c.control = &e
	before := c.offer
	if e.Level != nil {
		c.offer.Level = *e.Level
	}
	if e.Transports != nil {
		c.offer.Transports = slices.Clone(e.Transports)
	}
	if e.Features != nil {
		c.offer.Features = e.Features
	}
	if e.PollIntervalMS > 0 {
		c.offer.PollIntervalMS = int64(e.PollIntervalMS)
	}
	if before.Level != c.offer.Level || !maps.Equal(before.Features, c.offer.Features) {
		c.setStateLocked(func(*State) {})
	}
	c.mu.Unlock()
	select {
	case <-l.control:
	default:
	}
	l.control <- e // only this goroutine sends, so there is room now
}

// moveTarget returns the tier a control envelope asks a client on current
// to move to: the best offered tier when current is no longer offered, or
// a better tier than current that was not offered before (known), which is
// an invitation up. A better tier that was offered all along is not one:
// the client is below it because it failed, or because it was asked to
// be. "" means stay.
func (c *Client) moveTarget(current string, known []string, e protocol.Envelope) string {
	if e.Transports == nil {
		return ""
	}
	best := c.firstOffered(e.Transports)
	switch {
	case best == "" || best == current:
		return ""
	case !slices.Contains(e.Transports, current):
		return best
	case slices.Index(c.cfg.Transports, best) < slices.Index(c.cfg.Transports, current) && !slices.Contains(known, best):
		return best
	}
	return ""
}

// controlTier is the tier a 4001 close sends the client to: the best one
// the last control envelope offers, or "" to ask negotiate.
func (c *Client) controlTier() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.control == nil {
		return ""
	}
	return c.firstOffered(c.control.Transports)
}

// firstOffered returns the first preferred tier in offered.
func (c *Client) firstOffered(offered []string) string {
	for _, t := range c.cfg.Transports {
		if slices.Contains(offered, t) {
			return t
		}
	}
	return ""
}
