package transporttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/chatd/chatd/core/protocol"
)

// streamer is what the SSE and poll test clients share: a set of rooms
// with positions, HTTP calls for everything that is not the stream, and a
// way to restart the stream when the room set changes. These clients are
// deliberately raw: they do not deduplicate, so a server duplicate shows.
type streamer struct {
	*inbox
	env   *Env
	token string
	name  string // transport name

	follow bool // the client was dialled with a join of "~": it streams even with no room; static after dial

	mu      sync.Mutex
	rooms   []string           // Guarded by mu.
	cursor  string             // last cursor seen; guarded by mu.
	fresh   map[string]uint64  // since= positions for the next request; guarded by mu.
	pos     map[string]uint64  // last seq seen per room; guarded by mu.
	restart func()             // ends the current stream or poll; guarded by mu.
	cancel  context.CancelFunc // ends run; static after dial
	exited  chan struct{}      // closed when run has returned
	// lastJoin is the room of the join not yet answered; guarded by mu.
	lastJoin string
}

func newStreamer(e *Env, token, name string, joins []Join) *streamer {
	s := &streamer{inbox: newInbox(), env: e, token: token, name: name, fresh: map[string]uint64{}, pos: map[string]uint64{}}
	for _, j := range joins {
		if j.Room == protocol.UserRoom {
			s.follow = true
			if j.Since != nil {
				s.cursor = protocol.Cursor{protocol.UserRoom: *j.Since}.Encode()
			}
			continue
		}
		s.rooms = append(s.rooms, j.Room)
		if j.Since != nil {
			s.fresh[j.Room] = *j.Since
		}
	}
	return s
}

// query builds rooms=, cursor= and since= for the next request and
// consumes the since= positions.
func (s *streamer) query() (url.Values, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.rooms) == 0 && !s.follow {
		return nil, false
	}
	q := url.Values{}
	if len(s.rooms) > 0 {
		q.Set("rooms", strings.Join(s.rooms, ","))
	}
	if s.cursor != "" {
		q.Set("cursor", s.cursor)
	}
	var pairs []string
	for room, seq := range s.fresh {
		pairs = append(pairs, fmt.Sprintf("%s:%d", room, seq))
	}
	sort.Strings(pairs)
	if len(pairs) > 0 {
		q.Set("since", strings.Join(pairs, ","))
	}
	if b := s.env.batchQuery(); b != "" {
		q.Set(protocol.BatchParam, "1")
	}
	if ticket, ok := TicketOf(s.token); ok {
		q.Set("ticket", ticket)
	}
	s.fresh = map[string]uint64{}
	return q, true
}

// waitForRooms blocks until a join gives the client a room, or ctx ends.
func (s *streamer) waitForRooms(ctx context.Context) {
	wake := make(chan struct{})
	var once sync.Once
	s.mu.Lock()
	if len(s.rooms) > 0 { // a join came in before we got here
		s.mu.Unlock()
		return
	}
	s.restart = func() { once.Do(func() { close(wake) }) }
	s.mu.Unlock()
	select {
	case <-wake:
	case <-ctx.Done():
	}
	s.mu.Lock()
	s.restart = nil
	s.mu.Unlock()
}

// refused handles a stream or poll the server refused with an error
// envelope: it answers the join that caused it, drops that room again, as
// a real client would, and reports whether it did.
func (s *streamer) refused(raw []byte) bool {
	var e protocol.Envelope
	if json.Unmarshal(raw, &e) != nil || e.Type != protocol.TypeError {
		return false
	}
	s.mu.Lock()
	last := s.lastJoin
	if last != "" {
		s.rooms = without(s.rooms, last)
		delete(s.fresh, last)
		s.lastJoin = ""
	}
	s.mu.Unlock()
	if last == "" {
		_ = s.inbox.deliver(raw)
		return false
	}
	e.Ref = "join:" + last
	_ = s.inbox.deliver(protocol.Encode(e))
	return true
}

func (s *streamer) setCursor(c string) {
	if c == "" {
		return
	}
	s.mu.Lock()
	s.cursor = c
	s.mu.Unlock()
}

// deliverEnvelope hands one envelope to the inbox. A joined envelope has
// no ref on these transports; it answers the pending join of its room.
func (s *streamer) deliverEnvelope(data []byte) error {
	var e protocol.Envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return fmt.Errorf("bad event %q: %w", data, err)
	}
	s.mu.Lock()
	switch e.Type {
	case protocol.TypeJoined:
		if e.Ref == "" {
			e.Ref = "join:" + e.Room
		}
		if s.lastJoin == e.Room {
			s.lastJoin = ""
		}
		if _, known := s.pos[e.Room]; !known && e.Head != nil {
			s.pos[e.Room] = *e.Head
		}
	case protocol.TypeMessage, protocol.TypeEdit, protocol.TypeDelete:
		s.pos[e.Room] = e.Seq
	}
	s.mu.Unlock()
	return s.inbox.deliver(protocol.Encode(e))
}

// dial starts run, which feeds the streamer until Close, and waits for
// the joined envelope of every room in joins.
func (s *streamer) dial(t testing.TB, joins []Join, run func(context.Context)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.exited = cancel, make(chan struct{})
	var waits []chan protocol.Envelope
	var waited []Join
	for _, j := range joins {
		if j.Room == protocol.UserRoom && j.Since != nil {
			continue // a resume from the cursor is quiet: no joined comes
		}
		waits = append(waits, s.expect("join:"+j.Room))
		waited = append(waited, j)
	}
	go func() {
		defer close(s.exited)
		defer close(s.done)
		run(ctx)
	}()
	t.Cleanup(s.Close)
	for i, w := range waits {
		if got, err := s.wait(Ctx(t), w); err != nil || got.Type != protocol.TypeJoined {
			t.Fatalf("%s join %s: %+v, %v", s.name, waited[i].Room, got, err)
		}
	}
}

func (s *streamer) Next(ctx context.Context) (protocol.Envelope, error) { return s.next(ctx) }

// Close ends the client and waits for its goroutine.
func (s *streamer) Close() {
	s.cancel()
	<-s.exited
}

func (s *streamer) Transport() string  { return s.name }
func (s *streamer) Closed() <-chan int { return s.closed }

func (s *streamer) Send(ctx context.Context, room, id, text string) (protocol.Envelope, error) {
	return s.Do(ctx, protocol.Envelope{Type: protocol.TypeSend, Room: room, ID: id, Text: text, Ref: id})
}

// Do maps a client envelope onto HTTP: send, edit, delete, read and
// typing become POSTs; join and leave change the room set and restart
// the stream; ping is answered by the client itself while its stream is
// up.
func (s *streamer) Do(ctx context.Context, e protocol.Envelope) (protocol.Envelope, error) {
	switch e.Type {
	case protocol.TypeSend:
		body := map[string]any{"room": e.Room, "id": e.ID, "text": e.Text}
		if e.Files != nil {
			body["files"] = protocol.FileIDs(e.Files)
		}
		return s.post(ctx, "/v1/send", body, e.Ref)
	case protocol.TypeEdit:
		return s.post(ctx, "/v1/edit", map[string]any{"room": e.Room, "id": e.ID, "seq": e.Seq, "text": e.Text}, e.Ref)
	case protocol.TypeDelete:
		return s.post(ctx, "/v1/delete", map[string]any{"room": e.Room, "id": e.ID, "seq": e.Seq}, e.Ref)
	case protocol.TypeRead:
		return s.post(ctx, "/v1/read", map[string]any{"room": e.Room, "seq": e.Seq}, e.Ref)
	case protocol.TypeTyping:
		return s.post(ctx, "/v1/typing", map[string]any{"room": e.Room}, e.Ref)
	case protocol.TypePing:
		select {
		case <-s.done:
			return protocol.Envelope{}, fmt.Errorf("connection closed")
		default:
		}
		return protocol.Envelope{Type: protocol.TypePong, Ref: e.Ref}, nil
	case protocol.TypeJoin:
		if err := protocol.ValidRoom(e.Room); err != nil {
			return protocol.ErrorEnvelope(err, e.Ref), nil
		}
		reply := s.expect("join:" + e.Room)
		s.mu.Lock()
		s.rooms = append(without(s.rooms, e.Room), e.Room)
		s.lastJoin = e.Room
		if e.Since != nil {
			s.fresh[e.Room] = *e.Since
		} else if p, known := s.pos[e.Room]; known {
			s.fresh[e.Room] = p // a rejoin restarts from where this client is
		}
		restart := s.restart
		s.mu.Unlock()
		if restart != nil {
			restart()
		}
		got, err := s.wait(ctx, reply)
		if err == nil && e.Ref != "" {
			got.Ref = e.Ref
		}
		return got, err
	case protocol.TypeLeave:
		s.mu.Lock()
		s.rooms = without(s.rooms, e.Room)
		restart := s.restart
		s.mu.Unlock()
		if restart != nil {
			restart()
		}
		// An explicit leave takes the room out of the user's list, as the
		// WebSocket leave frame does.
		got, err := s.post(ctx, "/v1/leave", map[string]any{"room": e.Room}, e.Ref)
		if err == nil && got.Type == "" {
			got = protocol.Envelope{Type: protocol.TypeAck, Room: e.Room, Ref: e.Ref}
		}
		return got, err
	}
	return protocol.Envelope{}, fmt.Errorf("%s test client cannot send %q", s.name, e.Type)
}

// post calls the HTTP API. The answer (ack or error envelope) is returned
// with ref; without a ref an error goes to the event stream, as it would
// on WebSocket.
func (s *streamer) post(ctx context.Context, path string, body any, ref string) (protocol.Envelope, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.env.URL+path, bytes.NewReader(b))
	if err != nil {
		return protocol.Envelope{}, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return protocol.Envelope{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return protocol.Envelope{}, err
	}
	var e protocol.Envelope
	if err := json.Unmarshal(raw, &e); err != nil {
		return protocol.Envelope{}, fmt.Errorf("%s: HTTP %d %q", path, resp.StatusCode, raw)
	}
	if ref == "" {
		if e.Type == protocol.TypeError {
			return protocol.Envelope{}, s.inbox.deliver(raw)
		}
		return protocol.Envelope{}, nil
	}
	e.Ref = ref
	return e, nil
}

func without(list []string, v string) []string {
	out := list[:0:0]
	for _, x := range list {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

// headers returns the request headers every stream request carries: the
// token as a bearer, unless the client was dialled with a ticket (query).
func (s *streamer) headers() http.Header {
	if _, ok := TicketOf(s.token); ok {
		return http.Header{}
	}
	return http.Header{"Authorization": {"Bearer " + s.token}}
}

// TicketOf returns the ticket of a dialler's token argument of the form
// "ticket=<ticket>": a client dialled so sends its stream requests with
// ?ticket= rather than a bearer header, as a browser does. Its HTTP calls
// (sends over SSE and poll) are then unauthorized.
func TicketOf(token string) (string, bool) {
	return strings.CutPrefix(token, "ticket=")
}
