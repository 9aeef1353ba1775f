package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/core/protocol"
)

// fakeServer speaks just enough chatd to script what the real server does
// rarely: close codes, control envelopes and pings. It records the
// token each stream brings in its Authorization header.
type fakeServer struct {
	URL string

	// wsScripts[i] runs on the i-th WebSocket after it has answered the
	// first join; sseScripts likewise on SSE streams. Set before use.
	wsScripts  []func(*websocket.Conn)
	sseScripts []func(http.ResponseWriter)
	// pollEnds[i] ends the i-th poll link: its first poll (one without
	// cursor=) is answered with a joined envelope, its next with
	// pollEnds[i]; past them, a link's next poll waits until the client
	// gives it up. Set before use.
	pollEnds []protocol.Envelope

	pongs chan struct{} // a pong arrived

	// refuseQuery answers 414 to a WebSocket dial that joins in its
	// query (rooms= or since=), as a proxy with a short request line
	// would. Set before use.
	refuseQuery bool
	// ignoreQuery makes the WebSocket act as a server from before joins
	// in the query: it greets with a control envelope alone and waits
	// for a join envelope, whatever the query says. Set before use.
	ignoreQuery bool
	joins       []protocol.Envelope // join envelopes received, in order; guarded by mu
	joined      chan struct{}       // a join envelope was received (cap 16)

	mu        sync.Mutex
	offered   []string                 // what negotiate offers; guarded by mu
	wsTokens  []string                 // the token of each WebSocket; guarded by mu
	wsTimes   []time.Time              // when each WebSocket was upgraded; guarded by mu
	sseTokens []string                 // the token of each SSE stream; guarded by mu
	pollLinks []string                 // the token of each poll link's first poll; guarded by mu
	conns     map[*websocket.Conn]bool // open WebSockets; guarded by mu
	wg        sync.WaitGroup           // WebSocket handlers, which outlive their request
}

func newFakeServer(t testing.TB, setup func(*fakeServer)) *fakeServer {
	f := &fakeServer{pongs: make(chan struct{}, 16), joined: make(chan struct{}, 16), conns: map[*websocket.Conn]bool{},
		offered: []string{WebSocket, SSE, Poll}}
	if setup != nil {
		setup(f)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/negotiate", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		o := offer{Transports: f.offered, HeartbeatMS: 15000, PollIntervalMS: 5000}
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, o)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, protocol.Envelope{Type: protocol.TypeError, Code: "not_found", Message: "no such endpoint"})
	})
	mux.HandleFunc("GET /v1/ws", f.serveWS)
	mux.HandleFunc("GET /v1/sse", f.serveSSE)
	mux.HandleFunc("GET /v1/poll", f.servePoll)
	srv := httptest.NewServer(mux)
	f.URL = srv.URL
	t.Cleanup(func() {
		f.mu.Lock()
		for c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
		srv.CloseClientConnections()
		srv.Close()
	})
	return f
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (f *fakeServer) serveWS(w http.ResponseWriter, r *http.Request) {
	f.wg.Add(1)
	defer f.wg.Done()
	if q := r.URL.Query(); f.refuseQuery && (q.Has("rooms") || q.Has("since")) {
		http.Error(w, "request line too long", http.StatusRequestURITooLong)
		return
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	f.mu.Lock()
	i := len(f.wsTokens)
	f.wsTokens = append(f.wsTokens, tokenOf(r))
	f.wsTimes = append(f.wsTimes, time.Now())
	f.conns[conn] = true
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.conns, conn)
		f.mu.Unlock()
	}()
	// A client that resumes names its room in the query; one that joins
	// afresh sends a join.
	var join protocol.Envelope
	if f.ignoreQuery {
		_ = conn.WriteJSON(protocol.Envelope{Type: protocol.TypeControl, Transports: []string{WebSocket, SSE, Poll}})
	}
	if rooms := r.URL.Query().Get("rooms"); rooms != "" && !f.ignoreQuery {
		join.Room, _, _ = strings.Cut(rooms, ",")
	} else if _, data, err := conn.ReadMessage(); err != nil || json.Unmarshal(data, &join) != nil {
		return
	} else {
		f.mu.Lock()
		f.joins = append(f.joins, join)
		f.mu.Unlock()
		select {
		case f.joined <- struct{}{}:
		default:
		}
	}
	_ = conn.WriteJSON(protocol.Envelope{Type: protocol.TypeJoined, Room: join.Room, Ref: join.Ref,
		Head: protocol.Ptr(uint64(0)), Recovered: protocol.Ptr(true)})
	if i < len(f.wsScripts) {
		f.wsScripts[i](conn)
	}
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		var e protocol.Envelope
		if json.Unmarshal(data, &e) == nil && e.Type == protocol.TypePong {
			f.pongs <- struct{}{}
		}
	}
}

func (f *fakeServer) serveSSE(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	i := len(f.sseTokens)
	f.sseTokens = append(f.sseTokens, tokenOf(r))
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/event-stream")
	sseEvent(w, protocol.Envelope{Type: protocol.TypeJoined, Room: r.URL.Query().Get("rooms"),
		Head: protocol.Ptr(uint64(0)), Recovered: protocol.Ptr(true)})
	if i < len(f.sseScripts) {
		f.sseScripts[i](w)
	}
	<-r.Context().Done()
}

// servePoll answers polls as pollEnds says. A link's cursor names the
// link: "link-N".
func (f *fakeServer) servePoll(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cursor := q.Get("cursor")
	if cursor == "" {
		f.mu.Lock()
		i := len(f.pollLinks)
		f.pollLinks = append(f.pollLinks, tokenOf(r))
		f.mu.Unlock()
		room, _, _ := strings.Cut(q.Get("rooms"), ",")
		writeJSON(w, http.StatusOK, protocol.PollAnswer{Cursor: fmt.Sprintf("link-%d", i), Events: []protocol.Envelope{{
			Type: protocol.TypeJoined, Room: room, Head: protocol.Ptr(uint64(0)), Recovered: protocol.Ptr(true)}}})
		return
	}
	var i int
	if _, err := fmt.Sscanf(cursor, "link-%d", &i); err == nil && i < len(f.pollEnds) {
		writeJSON(w, http.StatusOK, protocol.PollAnswer{Cursor: cursor, Events: []protocol.Envelope{f.pollEnds[i]}})
		return
	}
	<-r.Context().Done()
}

func sseEvent(w http.ResponseWriter, e protocol.Envelope) {
	fmt.Fprintf(w, "id: x\ndata: %s\n\n", protocol.Encode(e))
	w.(http.Flusher).Flush()
}

// control changes the offer, as a level change does, and returns the
// control envelope that announces it.
func (f *fakeServer) control(level int, transports ...string) protocol.Envelope {
	f.mu.Lock()
	f.offered = transports
	f.mu.Unlock()
	return protocol.Envelope{Type: protocol.TypeControl, Level: protocol.Ptr(level), Transports: transports}
}

func (f *fakeServer) tokens() (ws, sse []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.wsTokens...), append([]string(nil), f.sseTokens...)
}

// polls returns the token of each poll link's first poll.
func (f *fakeServer) polls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.pollLinks...)
}

func closeWith(code int, reason string) func(*websocket.Conn) {
	return func(c *websocket.Conn) {
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	}
}

// countingTokens returns a Token func that hands out tok-1, tok-2, ...
// and a function that reports how many it has handed out.
func countingTokens() (func(context.Context) (string, error), func() int) {
	var mu sync.Mutex
	n := 0
	return func(context.Context) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			n++
			return fmt.Sprint("tok-", n), nil
		}, func() int {
			mu.Lock()
			defer mu.Unlock()
			return n
		}
}

// tokenOf returns the bearer token of r's Authorization header.
func tokenOf(r *http.Request) string {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return tok
}
