package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestRoute: SSE streams and polls, with or without a path prefix, go
// through the streams transport; every other call through the bounded
// one.
func TestRoute(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(srv.Close)
	var restDials, streamDials atomic.Int32
	counting := func(n *atomic.Int32) *http.Transport {
		var d net.Dialer
		return &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			n.Add(1)
			return d.DialContext(ctx, network, addr)
		}}
	}
	hc := &http.Client{Transport: route{rest: counting(&restDials), streams: counting(&streamDials)}}
	t.Cleanup(hc.CloseIdleConnections)
	for _, p := range []string{"/v1/negotiate", "/v1/ticket", "/v1/sse", "/v1/poll", "/chat/v1/sse", "/chat/v1/send"} {
		resp, err := hc.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if r, s := restDials.Load(), streamDials.Load(); r != 3 || s != 3 {
		t.Fatalf("dials: %d through rest, %d through streams; want 3 and 3", r, s)
	}
}
