package transporttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// ptr returns a pointer to a seq, for Join.Since and join envelopes.
func ptr(v uint64) *uint64 { return &v }

// reply sends e, which must carry a ref, and returns the reply envelope.
func reply(t testing.TB, c Client, e protocol.Envelope) protocol.Envelope {
	t.Helper()
	if e.Ref == "" {
		t.Fatalf("reply: %s envelope has no ref", e.Type)
	}
	got, err := c.Do(Ctx(t), e)
	if err != nil {
		t.Fatalf("%s (ref %s): %v", e.Type, e.Ref, err)
	}
	if got.Ref != e.Ref {
		t.Fatalf("%s (ref %s): reply %+v carries ref %q", e.Type, e.Ref, got, got.Ref)
	}
	return got
}

// wantError fails unless env is an error envelope with code.
func wantError(t testing.TB, what string, env protocol.Envelope, code protocol.Code) {
	t.Helper()
	if env.Type != protocol.TypeError || env.Code != string(code) {
		t.Fatalf("%s: got %+v, want error %s", what, env, code)
	}
}

// join joins room from since (nil: live) and returns the joined envelope.
func join(t testing.TB, c Client, room string, since *uint64) protocol.Envelope {
	t.Helper()
	got := reply(t, c, protocol.Envelope{Type: protocol.TypeJoin, Room: room, Since: since, Ref: "join:" + room})
	if got.Type != protocol.TypeJoined || got.Room != room || got.Head == nil || got.Recovered == nil {
		t.Fatalf("join %s: got %+v, want joined with head and recovered", room, got)
	}
	return got
}

var pingRefs atomic.Uint64

// alive proves that c's connection is up and served: a ping carrying a
// ref is answered by a pong carrying it.
func alive(t testing.TB, c Client) {
	t.Helper()
	ref := fmt.Sprint("alive-", pingRefs.Add(1))
	got := reply(t, c, protocol.Envelope{Type: protocol.TypePing, Ref: ref})
	if got.Type != protocol.TypePong {
		t.Fatalf("ping: got %+v, want pong", got)
	}
	select {
	case code := <-c.Closed():
		t.Fatalf("connection closed with %d", code)
	default:
	}
}

// closedWith waits for c's connection to close with code; what says
// what should have closed it.
func closedWith(t testing.TB, c interface{ Closed() <-chan int }, code int, what string) {
	t.Helper()
	select {
	case got := <-c.Closed():
		if got != code {
			t.Fatalf("%s: closed with %d, want %d", what, got, code)
		}
	case <-Ctx(t).Done():
		t.Fatalf("%s did not close the connection", what)
	}
}

// nextNot returns the next envelope whose type is not in skip.
func nextNot(t testing.TB, c Client, skip ...string) protocol.Envelope {
	t.Helper()
	ctx := Ctx(t)
	for {
		e, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for an envelope other than %v: %v", skip, err)
		}
		skipped := false
		for _, s := range skip {
			skipped = skipped || e.Type == s
		}
		if !skipped {
			return e
		}
	}
}

// expectSeqs reads messages from..to of room from c, in order, and
// returns them. Anything but ephemeral envelopes in between fails.
func expectSeqs(t testing.TB, c Client, room string, from, to uint64) []protocol.Envelope {
	t.Helper()
	var out []protocol.Envelope
	for s := from; s <= to; s++ {
		m := nextOf(t, c, protocol.TypeMessage)
		if m.Room != room || m.Seq != s {
			t.Fatalf("%s: got message %s/%d (%q), want %s/%d", c.Transport(), m.Room, m.Seq, m.ID, room, s)
		}
		out = append(out, m)
	}
	return out
}

var uniq atomic.Uint64

// hubSend stores one message in room as user "filler", bypassing any
// transport, and returns it.
func hubSend(t testing.TB, e *Env, room, text string) protocol.Message {
	t.Helper()
	id := auth.Identity{User: "filler", Name: "filler"}
	m, err := e.Hub.Send(Ctx(t), id, room, fmt.Sprint("h-", uniq.Add(1)), text)
	if err != nil {
		t.Fatalf("hub send: %v", err)
	}
	return m
}

// fence sends one more message to room and checks that it is the next
// message every client receives: whatever came before was not followed
// by a duplicate or a stray message.
func fence(t testing.TB, e *Env, room string, clients ...Client) protocol.Message {
	t.Helper()
	m := hubSend(t, e, room, "fence")
	for _, c := range clients {
		got := nextOf(t, c, protocol.TypeMessage)
		if got.Seq != m.Seq || got.ID != m.ID {
			t.Fatalf("%s: after the expected messages got %s/%d (%q), want the fence %d (%q)",
				c.Transport(), got.Room, got.Seq, got.ID, m.Seq, m.ID)
		}
	}
	return m
}

// fill stores n messages in room through the hub, from several goroutines
// so that the store can group-commit them. Their seqs are 1..n after the
// head but their ids are in no particular order. The hub's send rate must
// allow it.
func fill(t testing.TB, e *Env, room string, n int, text string) {
	t.Helper()
	if err := fillErr(Ctx(t), e, room, n, text); err != nil {
		t.Fatalf("fill: %v", err)
	}
}

// fillErr is fill for goroutines other than the test's.
func fillErr(ctx context.Context, e *Env, room string, n int, text string) error {
	id := auth.Identity{User: "filler", Name: "filler"}
	work := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range work {
				if _, err := e.Hub.Send(ctx, id, room, fmt.Sprintf("f%d-%d", uniq.Add(1), i), text); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// httpDo makes one HTTP request to e with a bearer token (if not empty)
// and returns the status and body. body may be nil, []byte, a string or
// a value to encode as JSON. Connections are not kept alive, so no client
// goroutine outlives the test.
func httpDo(t testing.TB, e *Env, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	case string:
		r = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(Ctx(t), method, e.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp.StatusCode, data
}

// httpError checks that an HTTP answer is the error envelope for code
// with status.
func httpError(t testing.TB, what string, status int, body []byte, wantStatus int, code protocol.Code) {
	t.Helper()
	var env protocol.Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("%s: status %d, body %q is not an envelope: %v", what, status, body, err)
	}
	if status != wantStatus || env.Type != protocol.TypeError || env.Code != string(code) {
		t.Fatalf("%s: got %d %s, want %d with error %s", what, status, body, wantStatus, code)
	}
}

// decodeJSON decodes an HTTP body into v.
func decodeJSON(t testing.TB, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
}

// historyPage is the answer of GET /v1/rooms/{room}/history.
type historyPage struct {
	Messages []protocol.Envelope `json:"messages"`
	Head     uint64              `json:"head"`
}

// history fetches the newest history page of room as token's user.
func history(t testing.TB, e *Env, token, room string) historyPage {
	t.Helper()
	status, body := httpDo(t, e, http.MethodGet, "/v1/rooms/"+room+"/history?limit=200", token, nil)
	if status != http.StatusOK {
		t.Fatalf("history of %s: %d %s", room, status, body)
	}
	var p historyPage
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("history of %s: %q: %v", room, body, err)
	}
	return p
}

// eventually polls cond until it holds, failing after a generous bound.
// It is for server-side state that no event announces.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// decodeFrame splits one server frame, an envelope or a batch, into
// envelopes.
func decodeFrame(t testing.TB, data []byte) []protocol.Envelope {
	t.Helper()
	if len(data) > 0 && data[0] == '[' {
		var list []protocol.Envelope
		if err := json.Unmarshal(data, &list); err != nil {
			t.Fatalf("bad batch %q: %v", data, err)
		}
		return list
	}
	var env protocol.Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		t.Fatalf("bad frame %q: %v", data, err)
	}
	return []protocol.Envelope{env}
}

// deadlineOf returns ctx's deadline, for socket calls that take a
// deadline rather than a context.
func deadlineOf(ctx context.Context) time.Time {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Now().Add(30 * time.Second)
	}
	return d
}
