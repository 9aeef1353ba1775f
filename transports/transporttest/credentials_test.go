package transporttest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/chatd/chatd/core/protocol"
)

// rawDo makes one request to base+path with headers h and returns the
// status, headers and body. It does not keep the connection alive.
func rawDo(t testing.TB, method, target string, h http.Header, body any) (int, http.Header, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(Ctx(t), method, target, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, target, err)
	}
	return resp.StatusCode, resp.Header, data
}

// openStream opens GET base+path and returns its status once the headers
// are in, then drops the stream.
func openStream(t testing.TB, target string) int {
	t.Helper()
	ctx, cancel := context.WithCancel(Ctx(t))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// ?ticket= and ?token= open /v1/ws, /v1/sse and /v1/poll, and nothing
// else: every REST route, the admin API and the ticket endpoint included,
// answers 401 unauthorized to a credential in the URL.
func TestURLCredentialsOnlyOnStreams(t *testing.T) {
	e := NewEnv(t, Options{Hub: fast, Degrade: true})
	admin := e.URL
	tok := e.Token(t, "alice", Claims{Admin: true})
	ticket := issueTicket(t, e, tok)
	for _, cred := range []string{"ticket=" + url.QueryEscape(ticket), "token=" + url.QueryEscape(tok)} {
		for _, req := range []struct {
			method, base, path string
			body               any
		}{
			{http.MethodPost, e.URL, "/v1/send", map[string]string{"room": "general", "id": "leak", "text": "x"}},
			{http.MethodPost, e.URL, "/v1/ticket", nil},
			{http.MethodGet, e.URL, "/v1/rooms/general/history", nil},
			{http.MethodGet, e.URL, "/v1/rooms/general/presence", nil},
			{http.MethodGet, e.URL, "/v1/rooms/general/reads", nil},
			{http.MethodPost, e.URL, "/v1/read", map[string]any{"room": "general", "seq": 1}},
			{http.MethodPost, e.URL, "/v1/typing", map[string]any{"room": "general"}},
			{http.MethodGet, e.URL, "/v1/negotiate", nil},
			{http.MethodGet, admin, "/v1/admin/status", nil},
			{http.MethodGet, admin, "/v1/admin/flags", nil},
			{http.MethodPut, admin, "/v1/admin/level", map[string]any{"level": 3}},
		} {
			status, _, body := rawDo(t, req.method, req.base+req.path+"?"+cred, nil, req.body)
			httpError(t, req.method+" "+req.path+"?"+cred[:6], status, body, http.StatusUnauthorized, protocol.CodeUnauthorized)
			if !bytes.Contains(body, []byte("Authorization: Bearer")) {
				t.Fatalf("%s %s: the refusal %s does not say to use the header", req.method, req.path, body)
			}
		}
		opensStreams(t, e, cred) // the streaming endpoints take it
	}
	// Nothing the refused calls asked for happened.
	if h := history(t, e, tok, "general"); h.Head != 0 {
		t.Fatalf("a refused send was stored: %+v", h)
	}
	if st := adminStatus(t, admin, tok); st.Level != 0 {
		t.Fatalf("a refused level change took effect: level %d", st.Level)
	}
}

// opensStreams checks that cred (a ticket= or token= query) opens
// /v1/ws, /v1/sse and /v1/poll.
func opensStreams(t *testing.T, e *Env, cred string) {
	t.Helper()
	c, err := DialWSURL(WSURL(e, cred), nil, nil)
	if err != nil {
		t.Fatalf("ws with %s: %v", cred[:6], err)
	}
	alive(t, c)
	c.Close()
	if status := openStream(t, e.URL+"/v1/sse?rooms=general&"+cred); status != http.StatusOK {
		t.Fatalf("sse with %s: %d", cred[:6], status)
	}
	status, _, body := rawDo(t, http.MethodGet, e.URL+"/v1/poll?rooms=general&since=general:0&"+cred, nil, nil)
	var answer pollAnswer
	if status != http.StatusOK || json.Unmarshal(body, &answer) != nil || answer.Cursor == "" {
		t.Fatalf("poll with %s: %d %s", cred[:6], status, body)
	}
}

// Negotiate with a bearer JWT gives a ticket with the offer, as POST
// /v1/ticket would, and it opens every stream; a ticket as the bearer
// gets neither an offer nor a ticket.
func TestNegotiateGivesTicket(t *testing.T) {
	e := NewEnv(t, Options{})
	tok := e.Token(t, "alice", Claims{})
	status, body := httpDo(t, e, http.MethodGet, "/v1/negotiate", tok, nil)
	var off struct {
		Transports      []string `json:"transports"`
		Ticket          string   `json:"ticket"`
		TicketExpiresIn int      `json:"ticket_expires_in"`
	}
	decodeJSON(t, body, &off)
	if status != http.StatusOK || off.Ticket == "" || off.TicketExpiresIn != 60 || len(off.Transports) == 0 {
		t.Fatalf("negotiate: %d %s", status, body)
	}
	opensStreams(t, e, "ticket="+url.QueryEscape(off.Ticket))
	status, _, body = rawDo(t, http.MethodGet, e.URL+"/v1/negotiate", http.Header{"Authorization": {"Bearer " + off.Ticket}}, nil)
	httpError(t, "negotiate with a ticket as bearer", status, body, http.StatusUnauthorized, protocol.CodeUnauthorized)
}

// A ticket never buys a ticket: not in the URL, not as a bearer token
// (it is no JWT). A bearer JWT does.
func TestTicketNeverBuysTicket(t *testing.T) {
	e := NewEnv(t, Options{})
	tok := e.Token(t, "alice", Claims{})
	ticket := issueTicket(t, e, tok)
	inURL := "?ticket=" + url.QueryEscape(ticket)
	asBearer := http.Header{"Authorization": {"Bearer " + ticket}}
	for _, tc := range []struct {
		what, query string
		h           http.Header
	}{
		{"ticket as bearer", "", asBearer},
		{"ticket as bearer and in the URL", inURL, asBearer},
		{"ticket in the URL", inURL, nil},
	} {
		status, _, body := rawDo(t, http.MethodPost, e.URL+"/v1/ticket"+tc.query, tc.h, nil)
		httpError(t, tc.what, status, body, http.StatusUnauthorized, protocol.CodeUnauthorized)
	}
	if again := issueTicket(t, e, tok); again == "" {
		t.Fatal("a bearer JWT got no ticket")
	}
}

// The admin API takes an admin JWT as a bearer token only: a non-admin
// JWT is forbidden; an admin's ticket (in the URL or as a bearer) or
// token in the URL is unauthorized.
func TestAdminNeedsBearerAdminJWT(t *testing.T) {
	e := NewEnv(t, Options{Degrade: true})
	admin := e.URL
	adminTok := e.Token(t, "root", Claims{Admin: true})
	adminTicket := issueTicket(t, e, adminTok)
	userTok := e.Token(t, "alice", Claims{})
	bearer := func(s string) http.Header { return http.Header{"Authorization": {"Bearer " + s}} }
	level := map[string]any{"level": 2}
	for _, tc := range []struct {
		what   string
		query  string
		h      http.Header
		status int
		code   protocol.Code
	}{
		{"non-admin JWT", "", bearer(userTok), http.StatusForbidden, protocol.CodeForbidden},
		{"admin ticket as bearer", "", bearer(adminTicket), http.StatusUnauthorized, protocol.CodeUnauthorized},
		{"admin ticket in the URL", "?ticket=" + url.QueryEscape(adminTicket), nil, http.StatusUnauthorized, protocol.CodeUnauthorized},
		{"admin token in the URL", "?token=" + url.QueryEscape(adminTok), nil, http.StatusUnauthorized, protocol.CodeUnauthorized},
		{"nothing", "", nil, http.StatusUnauthorized, protocol.CodeUnauthorized},
	} {
		status, _, body := rawDo(t, http.MethodGet, admin+"/v1/admin/status"+tc.query, tc.h, nil)
		httpError(t, "status, "+tc.what, status, body, tc.status, tc.code)
		status, _, body = rawDo(t, http.MethodPut, admin+"/v1/admin/level"+tc.query, tc.h, level)
		httpError(t, "level, "+tc.what, status, body, tc.status, tc.code)
	}
	if st := adminStatus(t, admin, adminTok); st.Level != 0 {
		t.Fatalf("a refused level change took effect: level %d", st.Level)
	}
	status, _, body := rawDo(t, http.MethodPut, admin+"/v1/admin/level", bearer(adminTok), level)
	if status != http.StatusOK {
		t.Fatalf("admin sets the level: %d %s", status, body)
	}
	if st := adminStatus(t, admin, adminTok); st.Level != 2 {
		t.Fatalf("level %d after an admin set 2", st.Level)
	}
}

type adminStatusBody struct {
	Level int `json:"level"`
}

// adminStatus reads GET /v1/admin/status as tok.
func adminStatus(t testing.TB, base, tok string) adminStatusBody {
	t.Helper()
	status, _, body := rawDo(t, http.MethodGet, base+"/v1/admin/status", http.Header{"Authorization": {"Bearer " + tok}}, nil)
	var st adminStatusBody
	if status != http.StatusOK || json.Unmarshal(body, &st) != nil {
		t.Fatalf("admin status: %d %s", status, body)
	}
	return st
}
