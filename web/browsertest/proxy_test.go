package browsertest

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
)

// proxyHandler serves one request in front of chatd: itself, or by
// passing it on to pass, a reverse proxy to the server.
type proxyHandler func(w http.ResponseWriter, r *http.Request, pass http.Handler)

// startProxy runs handle in front of srv. setup, when given, may change
// the server before it starts (its ConnState hook, say).
func startProxy(t *testing.T, srv *server, handle proxyHandler, setup func(*httptest.Server)) *httptest.Server {
	t.Helper()
	target, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handle(w, r, rp)
	}))
	if setup != nil {
		setup(proxy)
	}
	proxy.Start()
	// Cleanups run last-in first-out: this runs after the tabs opened
	// later are closed, so no stream keeps Close waiting.
	t.Cleanup(func() {
		proxy.CloseClientConnections()
		proxy.Close()
	})
	return proxy
}
