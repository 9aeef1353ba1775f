package transporttest

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/internal/syncbuf"
)

// A join that fails inside the store shows the client the code internal
// and nothing of the cause, which goes to the log once, with the user: an
// error reply on WebSocket and poll (the session, or the next poll, goes
// on with its other rooms), the stream's disconnect on SSE, with 1011 so
// that the client reconnects with backoff, and not counted as a failed
// write.
func TestJoinFailureShowsNoCause(t *testing.T) { Run(t, testJoinFailureShowsNoCause) }

func testJoinFailureShowsNoCause(t *testing.T, dial Dialer) {
	const cause = "store on fire"
	var logs syncbuf.Buffer
	e := NewEnv(t, Options{
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Engine: func(s core.Engine) core.Engine { return &brokenRoom{Engine: s, room: "broken", err: errors.New(cause)} },
	})
	c := dial(t, e, e.Token(t, "alice", Claims{}), []Join{{Room: "general"}})
	got, err := c.Do(Ctx(t), protocol.Envelope{Type: protocol.TypeJoin, Room: "broken", Ref: "join-broken"})
	if c.Transport() == "sse" {
		// The stream ends: Do sees the connection close, Next the disconnect.
		select {
		case code := <-c.Closed():
			if code != protocol.CloseInternal {
				t.Fatalf("stream ended with %d, want %d", code, protocol.CloseInternal)
			}
		case <-Ctx(t).Done():
			t.Fatalf("the stream did not end; Do gave %+v, %v", got, err)
		}
		for {
			ev, err := c.Next(Ctx(t))
			if err != nil {
				t.Fatalf("no disconnect envelope: %v", err)
			}
			if ev.Type != protocol.TypeDisconnect {
				continue
			}
			if want := "join failed: internal: internal error"; ev.Reason != want || ev.CloseCode != protocol.CloseInternal {
				t.Fatalf("disconnect %+v, want close_code %d and reason %q", ev, protocol.CloseInternal, want)
			}
			break
		}
		// An internal error's 1011 is not a failed write (the one 1011 that
		// sends no disconnect), nor a failure of the tier.
		if st := e.Hub.Stats(); st.WriteFailed != 0 || len(st.Failures) != 0 {
			t.Fatalf("after the failed join: write failed %d, failures %v; want none", st.WriteFailed, st.Failures)
		}
	} else {
		if err != nil {
			t.Fatal(err)
		}
		wantError(t, "join of the broken room", got, protocol.CodeInternal)
		if got.Message != "internal error" {
			t.Fatalf("message %q shows more than the code", got.Message)
		}
		alive(t, c)
		hubSend(t, e, "general", "after the failed join")
		if ev := nextOf(t, c, protocol.TypeMessage); ev.Type != protocol.TypeMessage || ev.Text != "after the failed join" {
			t.Fatalf("after the failed join: %+v, want the message in general", ev)
		}
	}
	var lines []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, cause) {
			lines = append(lines, line)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], `msg="request failed"`) || !strings.Contains(lines[0], "user=alice") ||
		!strings.Contains(lines[0], "level=ERROR") {
		t.Fatalf("log lines with the cause: %q, want one request failed line at error level with the user", lines)
	}
	// A session's failed join names the session's op; a poll's is a REST
	// answer, whose cause the hub logs beneath the HTTP layer.
	want := "op=join"
	if c.Transport() == "poll" {
		want = "via=http"
	}
	if !strings.Contains(lines[0], want) {
		t.Fatalf("log line %q lacks %s", lines[0], want)
	}
}

// brokenRoom fails every read of room's history with err.
type brokenRoom struct {
	core.Engine
	room string
	err  error
}

func (b *brokenRoom) Since(ctx context.Context, room string, after uint64, limit int) (core.Page, error) {
	if room == b.room {
		return core.Page{}, b.err
	}
	return b.Engine.Since(ctx, room, after, limit)
}
