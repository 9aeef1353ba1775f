package transporttest

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/chatd/chatd/core/protocol"
)

// Room names with zero-width or bidi-override characters are refused on
// every transport, so "gen\u200beral" cannot pass for "general".
func TestSpoofedRoomNamesRefused(t *testing.T) {
	Run(t, func(t *testing.T, dial Dialer) {
		e := NewEnv(t, Options{Hub: fast})
		tok := e.Token(t, "alice", Claims{})
		c := dial(t, e, tok, []Join{{Room: "general"}})
		for _, name := range []string{"gen\u200beral", "\u202egeneral", "general\u2066"} {
			got, err := c.Send(Ctx(t), name, "spoof", "hi")
			if err != nil {
				t.Fatal(err)
			}
			wantError(t, "send to "+name, got, protocol.CodeBadRequest)
		}
		if c.Transport() == "websocket" {
			got := reply(t, c, protocol.Envelope{Type: protocol.TypeJoin, Room: "gen\u200beral", Ref: "j"})
			wantError(t, "join gen\\u200beral", got, protocol.CodeBadRequest)
			return
		}
		path := map[string]string{"sse": "/v1/sse", "poll": "/v1/poll"}[c.Transport()]
		status, body := httpDo(t, e, http.MethodGet, path+"?rooms="+url.QueryEscape("gen\u200beral"), tok, nil)
		httpError(t, "subscribe gen\\u200beral", status, body, http.StatusBadRequest, protocol.CodeBadRequest)
	})
}
