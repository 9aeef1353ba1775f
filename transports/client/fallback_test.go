package client

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/degrade"
)

// chat has the client send n messages while bob posts n, interleaved, and
// checks that the client receives all 2n exactly once, in order.
func chat(t *testing.T, srv *testServer, c *Client, room string, n int) {
	t.Helper()
	ctx := stepCtx(t)
	texts := map[uint64]string{}
	for i := range n {
		ack, err := c.Send(ctx, room, fmt.Sprint("alice-", i))
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		texts[ack.Seq] = fmt.Sprint("alice-", i)
		ack = srv.post(t, "bob", room, fmt.Sprint("bob-", i), fmt.Sprint("bob-", i))
		texts[ack.Seq] = fmt.Sprint("bob-", i)
	}
	wantSeqs(t, recvMessages(t, c, 2*n), room, 1, func(seq uint64) string { return texts[seq] })
	wantNoMore(t, srv, c, room)
}

// TestProxyRefusesWebSocket: a proxy that answers 403 to upgrades makes a
// client that prefers WebSocket fall to SSE at once and chat there.
func TestProxyRefusesWebSocket(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{degrade: true}) // SSE greets with an offer that includes websocket
	proxy := newHTTPProxy(t, srv.URL, func(p *httpProxy) { p.refuseWS = true })
	c := start(t, testConfig(t, proxy.URL, "alice", nil, "lobby"))
	waitState(t, c, "sse connected", connectedOn(SSE))
	chat(t, srv, c, "lobby", 10)
	if s := c.State(); s.Transport != SSE || !s.Connected {
		t.Fatalf("final state %+v, want connected on sse", s)
	}
	// The greeting is no invitation: websocket was offered all along.
	if n := proxy.refused.Load(); n != 1 {
		t.Fatalf("%d upgrades refused, want 1", n)
	}
}

// TestProxyBuffersSSE: a proxy that refuses upgrades and buffers event
// streams (SSE "connects" but nothing arrives) makes the client time out
// on SSE and fall to poll, where it chats.
func TestProxyBuffersSSE(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{degrade: true}) // poll answers carry the offer
	proxy := newHTTPProxy(t, srv.URL, func(p *httpProxy) { p.refuseWS, p.bufferSSE = true, true })
	cfg := testConfig(t, proxy.URL, "alice", nil, "lobby")
	cfg.ConnectTimeout = time.Second
	c := start(t, cfg)
	var sawSSE bool
	waitStates(t, c, "poll connected", func(s State) bool {
		sawSSE = sawSSE || (s.Transport == SSE && !s.Connected)
		return connectedOn(Poll)(s)
	})
	chat(t, srv, c, "lobby", 10)
	if s := c.State(); s.Transport != Poll || !s.Connected {
		t.Fatalf("final state %+v, want connected on poll", s)
	}
	if !sawSSE {
		t.Fatal("the client never tried sse")
	}
	if n := proxy.refused.Load(); n != 1 {
		t.Fatalf("%d upgrades refused, want 1: the client left poll", n)
	}
}

// TestDeadLink: a path that silently stops carrying server bytes is
// noticed within three heartbeats; the client reconnects, negotiating
// again rather than resuming on the offer in hand, and receives what was
// sent meanwhile, once.
func TestDeadLink(t *testing.T) {
	const hb = 200 * time.Millisecond
	for _, tier := range []string{WebSocket, SSE} {
		t.Run(tier, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, serverOptions{hub: deadLinkHub(hb)})
			proxy := newTCPProxy(t, srv.URL)
			cfg := testConfig(t, proxy.URL, "alice", []string{tier}, "lobby")
			cfg.ConnectTimeout = time.Second
			ct := &countingTransport{next: srv.http.Transport, n: map[string]int{}}
			cfg.HTTPClient = &http.Client{Transport: ct}
			c := start(t, cfg)
			waitState(t, c, tier+" connected", connectedOn(tier))
			for i := uint64(1); i <= 5; i++ {
				srv.post(t, "bob", "lobby", fmt.Sprint("bob-", i), text(i))
			}
			wantSeqs(t, recvMessages(t, c, 5), "lobby", 1, text)

			proxy.blackhole()
			cut := time.Now()
			for i := uint64(6); i <= 10; i++ {
				srv.post(t, "bob", "lobby", fmt.Sprint("bob-", i), text(i))
			}
			s := waitState(t, c, "dead link noticed", func(s State) bool { return !s.Connected })
			noticed := time.Since(cut)
			if !strings.Contains(s.Reason, "dead link") {
				t.Fatalf("disconnected for %q, want a dead link", s.Reason)
			}
			if limit := 3*hb + time.Second; noticed > limit {
				t.Errorf("dead link noticed after %v, want within 3 heartbeats (+1s slack)", noticed)
			}
			waitState(t, c, tier+" reconnected", connectedOn(tier))
			wantSeqs(t, recvMessages(t, c, 5), "lobby", 6, text)
			wantNoMore(t, srv, c, "lobby")
			// 3 when the second went out on a kept-alive connection the
			// blackhole holds too.
			if n := ct.count("/v1/negotiate"); n < 2 {
				t.Errorf("%d negotiates, want 2 or more: a dead link is not resumed on the offer in hand", n)
			}
		})
	}
}

// TestSendRetryHTTP: a send over SSE or poll whose first POSTs fail with
// 503 is retried with the same id and stored once.
func TestSendRetryHTTP(t *testing.T) {
	for _, tier := range []string{SSE, Poll} {
		t.Run(tier, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, serverOptions{})
			proxy := newHTTPProxy(t, srv.URL, nil)
			c := start(t, testConfig(t, proxy.URL, "alice", []string{tier}, "lobby"))
			waitState(t, c, tier+" connected", connectedOn(tier))
			proxy.failSends.Store(3)
			ack, err := c.Send(stepCtx(t), "lobby", "hello")
			if err != nil {
				t.Fatal(err)
			}
			ids := proxy.sendIDs()
			if len(ids) != 4 {
				t.Fatalf("%d POSTs, want 3 failed and 1 acked", len(ids))
			}
			for _, id := range ids {
				if id != ack.ID {
					t.Fatalf("retried with ids %v, want %s each time", ids, ack.ID)
				}
			}
			wantStoredOnce(t, srv, "lobby", ack)
			got := recvMessages(t, c, 1)
			if got[0].ID != ack.ID || got[0].Seq != ack.Seq {
				t.Fatalf("received %+v, want the acked message", got[0])
			}
			wantNoMore(t, srv, c, "lobby")
		})
	}
}

// TestSendRetryUnreachable: a send made over WebSocket while the server is
// unreachable is retried until it comes back, and stored once.
func TestSendRetryUnreachable(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{})
	proxy := newTCPProxy(t, srv.URL)
	c := start(t, testConfig(t, proxy.URL, "alice", []string{WebSocket}, "lobby"))
	waitState(t, c, "websocket connected", connectedOn(WebSocket))

	proxy.setDown(true)
	waitState(t, c, "disconnected", func(s State) bool { return !s.Connected })
	type result struct {
		ack protocol.Envelope
		err error
	}
	done := make(chan result, 1)
	go func() {
		ack, err := c.Send(stepCtx(t), "lobby", "through the outage")
		done <- result{ack, err}
	}()
	// Let connects fail a few times while the send is pending.
	waitState(t, c, "failing", func(s State) bool { return s.Attempt >= 3 })
	select {
	case r := <-done:
		t.Fatalf("send returned during the outage: %+v, %v", r.ack, r.err)
	default:
	}
	proxy.setDown(false)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	wantStoredOnce(t, srv, "lobby", r.ack)
	got := recvMessages(t, c, 1)
	if got[0].ID != r.ack.ID {
		t.Fatalf("received %+v, want the acked message", got[0])
	}
	wantNoMore(t, srv, c, "lobby")
}

// wantStoredOnce checks that history holds ack's message exactly once.
func wantStoredOnce(t *testing.T, srv *testServer, room string, ack protocol.Envelope) {
	t.Helper()
	n := 0
	for _, m := range srv.history(t, room) {
		if m.ID == ack.ID {
			n++
			if m.Seq != ack.Seq {
				t.Fatalf("stored as #%d, acked as #%d", m.Seq, ack.Seq)
			}
		}
	}
	if n != 1 {
		t.Fatalf("history holds %s %d times, want once", ack.ID, n)
	}
}

// TestShortPolling: at level 3 the server answers polls at once, and the
// client waits poll_interval_ms between them instead of hammering it,
// while still receiving every message.
func TestShortPolling(t *testing.T) {
	t.Parallel()
	const interval = 150 * time.Millisecond
	srv := newServer(t, serverOptions{degrade: true, pollInterval: interval})
	srv.setLevel(t, degrade.LevelPoll)
	proxy := newHTTPProxy(t, srv.URL, nil)
	c := start(t, testConfig(t, proxy.URL, "alice", []string{Poll}, "lobby"))
	waitState(t, c, "short polling", func(s State) bool { return connectedOn(Poll)(s) && s.Level == 3 })
	srv.post(t, "bob", "lobby", "b1", text(1))
	srv.post(t, "bob", "lobby", "b2", text(2))
	wantSeqs(t, recvMessages(t, c, 2), "lobby", 1, text)
	for len(proxy.pollTimes()) < 4 {
		srv.post(t, "bob", "lobby", NewID(), "more") // each answer is a sign of progress
		recvMessages(t, c, 1)
	}
	times := proxy.pollTimes()
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < interval*9/10 {
			t.Fatalf("poll %d came %v after the previous one, want at least %v", i, gap, interval)
		}
	}
}

// TestBusyServerKeepsTier: a server that cannot take a connection now
// (restarting, draining, at a cap) refuses the upgrade with unavailable;
// the client backs off and tries WebSocket again instead of falling to
// SSE, so a restart does not strand clients on a lower tier.
func TestBusyServerKeepsTier(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{})
	proxy := newHTTPProxy(t, srv.URL, func(p *httpProxy) { p.busyWS.Store(2) })
	cfg := testConfig(t, proxy.URL, "alice", nil, "lobby")
	cfg.BackoffBase, cfg.BackoffMax = 10*time.Millisecond, 50*time.Millisecond
	c := start(t, cfg)
	waitState(t, c, "websocket connected", connectedOn(WebSocket))
	if n := proxy.refused.Load(); n != 2 {
		t.Fatalf("%d upgrades refused, want 2", n)
	}
	if n := proxy.lower.Load(); n != 0 {
		t.Fatalf("the client opened %d SSE streams or polls while the server was busy: it fell off WebSocket", n)
	}
	chat(t, srv, c, "lobby", 3)
}

// TestOutOfDescriptorsKeepsTier: a process out of descriptors (EMFILE,
// as a tool holding thousands of clients gets in a reconnect storm)
// cannot dial any tier; the client backs off and tries WebSocket again
// instead of falling to SSE.
func TestOutOfDescriptorsKeepsTier(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{})
	proxy := newHTTPProxy(t, srv.URL, nil)
	cfg := testConfig(t, proxy.URL, "alice", nil, "lobby")
	cfg.BackoffBase, cfg.BackoffMax = 10*time.Millisecond, 50*time.Millisecond
	var failed atomic.Int32
	var d net.Dialer
	cfg.WSDialer = &websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if failed.Add(1) <= 2 {
			return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("socket", syscall.EMFILE)}
		}
		return d.DialContext(ctx, network, addr)
	}}
	c := start(t, cfg)
	waitState(t, c, "websocket connected", connectedOn(WebSocket))
	if n := failed.Load(); n != 3 {
		t.Fatalf("%d WebSocket dials, want 2 failed and 1 that worked", n)
	}
	if n := proxy.lower.Load(); n != 0 {
		t.Fatalf("the client opened %d SSE streams or polls while out of descriptors: it fell off WebSocket", n)
	}
	chat(t, srv, c, "lobby", 3)
}

// TestQuietWebSocketStaysUp: on a quiet WebSocket the server's heartbeats
// are ping control frames, which the client answers and counts as signs
// of life: six heartbeat intervals pass with no reconnect.
func TestQuietWebSocketStaysUp(t *testing.T) {
	t.Parallel()
	const hb = 100 * time.Millisecond
	srv := newServer(t, serverOptions{hub: deadLinkHub(hb)})
	c := start(t, testConfig(t, srv.URL, "alice", []string{WebSocket}, "lobby"))
	waitState(t, c, "websocket connected", connectedOn(WebSocket))
	<-time.After(6 * hb) // the property under test is that this much silence is survived
	if s, st := c.State(), c.Stats(); !s.Connected || st.Connects != 1 {
		t.Fatalf("after 6 quiet heartbeats: state %+v, %d connects; want the first link still up", s, st.Connects)
	}
	srv.post(t, "bob", "lobby", "b1", text(1))
	wantSeqs(t, recvMessages(t, c, 1), "lobby", 1, text)
}
