package transporttest

import (
	"testing"

	"github.com/chatd/chatd/degrade"
)

// A poll answer that is full (more news than one answer carries) ends its
// session normally: it is not a write failure, so it cannot feed the
// ws_failures signal, whose relief is switching WebSocket off for all.
func TestFullPollAnswerIsNotAFailure(t *testing.T) {
	e := NewEnv(t, Options{Hub: fast})
	fill(t, e, "lobby", 600, "backlog")
	tok := e.Token(t, "alice", Claims{})
	var wsSignal func() float64
	for _, sig := range degrade.DefaultSignals(e.Hub, degrade.Capacity{}) {
		if sig.Name == "ws_failures" {
			wsSignal = sig.Read
		}
	}
	if wsSignal == nil {
		t.Fatal("no ws_failures signal")
	}
	wsSignal() // the first reading sets the baseline
	status, body := httpDo(t, e, "GET", "/v1/poll?rooms=lobby&since=lobby:0", tok, nil)
	var answer struct {
		Events []map[string]any `json:"events"`
		Cursor string           `json:"cursor"`
	}
	decodeJSON(t, body, &answer)
	if status != 200 || len(answer.Events) < 500 || answer.Cursor == "" {
		t.Fatalf("poll of a 600-message room: %d with %d events; want a full answer of 500", status, len(answer.Events))
	}
	eventually(t, "the poll session ends", func() bool { return e.Hub.Sessions()["poll"] == 0 })
	st := e.Hub.Stats()
	if st.SlowClosed != 0 || st.WriteFailed != 0 || len(st.Failures) != 0 {
		t.Fatalf("after a full poll answer: slow %d, write failed %d, failures %v; want none",
			st.SlowClosed, st.WriteFailed, st.Failures)
	}
	if v := wsSignal(); v != 0 {
		t.Fatalf("ws_failures reads %v after a full poll answer, want 0", v)
	}
}
