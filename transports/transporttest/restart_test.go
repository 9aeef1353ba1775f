package transporttest

import (
	"bufio"
	"context"
	"encoding/json"

	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chatd/chatd/core/protocol"
)

// Guarantee 5, for poll: a client polls, the server restarts, and the
// client polls again with the same cursor. It gets exactly the messages it
// missed: the cursor alone carries its position.
func TestPollResumesAcrossRestart(t *testing.T) {
	const room = "restart-poll"
	e := NewEnv(t, Options{Hub: fast})
	tok := e.Token(t, "alice", Claims{})
	fill(t, e, room, 5, "before")
	first := pollOnce(t, e, tok, url.Values{"rooms": {room}, "since": {room + ":0"}})
	if seqs := messageSeqs(first.Events); !equalSeqs(seqs, 1, 5) {
		t.Fatalf("first poll got seqs %v, want 1..5", seqs)
	}
	e.Restart(t)
	fill(t, e, room, 7, "while-away") // seqs 6..12, stored by the new process
	again := pollOnce(t, e, tok, url.Values{"rooms": {room}, "cursor": {first.Cursor}})
	if seqs := messageSeqs(again.Events); !equalSeqs(seqs, 6, 12) {
		t.Fatalf("poll after restart got seqs %v, want exactly 6..12", seqs)
	}
	// Polling with the same old cursor again returns the same answer: no
	// state was consumed on the server.
	if seqs := messageSeqs(pollOnce(t, e, tok, url.Values{"rooms": {room}, "cursor": {first.Cursor}}).Events); !equalSeqs(seqs, 6, 12) {
		t.Fatalf("second poll with the same cursor got %v", seqs)
	}
}

// Guarantee 5, for SSE: a stream is cut by a restart; a reconnect with
// Last-Event-ID, as a browser makes, gets exactly the missed messages.
func TestSSEResumesAcrossRestart(t *testing.T) {
	const room = "restart-sse"
	e := NewEnv(t, Options{Hub: fast})
	tok := e.Token(t, "alice", Claims{})
	fill(t, e, room, 3, "before")
	ctx, cancel := context.WithCancel(Ctx(t))
	events := openSSE(t, ctx, e.URL, tok, room, "", room+":0")
	var lastID string
	for seq := uint64(1); seq <= 3; {
		ev := <-events
		if ev.env.Type == protocol.TypeMessage {
			if ev.env.Seq != seq {
				t.Fatalf("got seq %d, want %d", ev.env.Seq, seq)
			}
			seq++
		}
		lastID = ev.id
	}
	cancel()
	e.Restart(t)
	fill(t, e, room, 4, "while-away") // 4..7
	ctx2, cancel2 := context.WithCancel(Ctx(t))
	defer cancel2()
	events = openSSE(t, ctx2, e.URL, tok, room, lastID, "")
	for seq := uint64(4); seq <= 7; {
		ev, ok := <-events
		if !ok {
			t.Fatal("stream ended")
		}
		switch ev.env.Type {
		case protocol.TypeMessage:
			if ev.env.Seq != seq {
				t.Fatalf("after restart got seq %d, want %d (nothing twice, nothing skipped)", ev.env.Seq, seq)
			}
			seq++
		case protocol.TypeJoined:
			t.Fatalf("an exact resume by Last-Event-ID sent %+v", ev.env)
		}
	}
}

type pollAnswer struct {
	Events []protocol.Envelope `json:"events"`
	Cursor string              `json:"cursor"`
}

func pollOnce(t testing.TB, e *Env, tok string, q url.Values) pollAnswer {
	t.Helper()
	req, _ := http.NewRequestWithContext(Ctx(t), http.MethodGet, e.URL+"/v1/poll?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a pollAnswer
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&a) != nil {
		t.Fatalf("poll: HTTP %d", resp.StatusCode)
	}
	return a
}

type sseEvent struct {
	id  string
	env protocol.Envelope
}

// openSSE opens a raw event stream; lastEventID and since are optional.
func openSSE(t testing.TB, ctx context.Context, base, tok, room, lastEventID, since string) <-chan sseEvent {
	t.Helper()
	q := url.Values{"rooms": {room}}
	if since != "" {
		q.Set("since", since)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/sse?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sse: HTTP %d", resp.StatusCode)
	}
	out := make(chan sseEvent, 64)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var id, data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				id = line[4:]
			case strings.HasPrefix(line, "data: "):
				data = line[6:]
			case line == "" && data != "":
				var env protocol.Envelope
				if json.Unmarshal([]byte(data), &env) == nil {
					select {
					case out <- sseEvent{id: id, env: env}:
					case <-ctx.Done():
						return
					}
				}
				data = ""
			}
		}
	}()
	return out
}

func messageSeqs(evs []protocol.Envelope) []uint64 {
	var out []uint64
	for _, e := range evs {
		if e.Type == protocol.TypeMessage {
			out = append(out, e.Seq)
		}
	}
	return out
}

func equalSeqs(got []uint64, from, to uint64) bool {
	if uint64(len(got)) != to-from+1 {
		return false
	}
	for i, s := range got {
		if s != from+uint64(i) {
			return false
		}
	}
	return true
}
