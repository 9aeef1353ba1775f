package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// The debug listener (--debug-addr) serves Go's runtime profiles
// (net/http/pprof: CPU, heap, goroutines, blocking, mutexes) on an address
// of its own, never on the public one: a profile shows code paths, and a
// CPU profile costs the node while it runs. It takes only a loopback
// address, so reaching it means being on the host (or tunnelling to it).
// Block and mutex profiles sample only while --debug-addr is set.

// debugFlags defines --debug-addr and its environment twin.
func debugFlags(fs *flag.FlagSet, c *Config, envs map[string]string) {
	fs.StringVar(&c.DebugAddr, "debug-addr", "", "loopback address for Go profiles (/debug/pprof/); empty: off (env CHAT_DEBUG_ADDR)")
	envs["debug-addr"] = "CHAT_DEBUG_ADDR"
}

// checkDebug refuses a debug address that is not loopback.
func (c Config) checkDebug() error {
	if c.DebugAddr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(c.DebugAddr)
	if err != nil {
		return fmt.Errorf("--debug-addr %q: %w", c.DebugAddr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--debug-addr %q: profiles are served on a loopback address only (127.0.0.1:6060, [::1]:6060)", c.DebugAddr)
	}
	return nil
}

// debugServer listens on addr and serves the profiles until closed.
type debugServer struct {
	srv    *http.Server
	ln     net.Listener
	served chan struct{}
}

func startDebug(addr string, log *slog.Logger) (*debugServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--debug-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	d := &debugServer{
		srv:    &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		ln:     ln,
		served: make(chan struct{}),
	}
	go func() {
		defer close(d.served)
		if err := d.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("debug listener stopped; the node goes on without its profiles", "err", err)
		}
	}()
	return d, nil
}

// Addr is the bound address.
func (d *debugServer) Addr() net.Addr { return d.ln.Addr() }

// Close stops the listener and any profile being taken.
func (d *debugServer) Close() {
	if d == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := d.srv.Shutdown(ctx); err != nil {
		_ = d.srv.Close()
	}
	<-d.served
}
