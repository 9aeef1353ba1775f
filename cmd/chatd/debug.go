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
	"runtime"
	"strconv"
	"sync"
	"time"
)

// The debug listener (--debug-addr) serves Go's runtime profiles
// (net/http/pprof: CPU, heap, goroutines, blocking, mutexes) on an address
// of its own, never on the public one: a profile shows code paths, and a
// CPU profile costs the node while it runs. It takes only a loopback
// address, so reaching it means being on the host (or tunnelling to it).
// Blocking and mutex contention are sampled only while a block or mutex
// profile is being taken over a window (?seconds=N): sampling them costs
// the node about a twentieth of its CPU under a poll broadcast, which a
// listener left on for the CPU profile should not pay.

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
	mux.Handle("/debug/pprof/block", sampled{"block", func(on bool) {
		rate := 0 // off: the runtime does not tell the rate it had
		if on {
			rate = int(10 * time.Microsecond)
		}
		runtime.SetBlockProfileRate(rate)
	}})
	var fraction int // the mutex fraction before the windows; guarded by windows
	mux.Handle("/debug/pprof/mutex", sampled{"mutex", func(on bool) {
		if on {
			fraction = runtime.SetMutexProfileFraction(100)
			return
		}
		runtime.SetMutexProfileFraction(fraction)
	}})
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

// sampled serves the block or mutex profile. Over a window (?seconds=N,
// a delta) it turns the sampling on for the window's length: a wait is
// recorded about once per 10 µs spent waiting, one mutex contention in
// 100. The runtime records only waits that began while sampling was on,
// so a window holds those that began within it. Without a window it
// serves what earlier windows recorded.
type sampled struct {
	name string
	set  func(on bool) // called under windows' lock
}

// windows counts the profiles being taken over a window, by name:
// sampling stays on until the last one ends.
var windows = struct {
	sync.Mutex
	n map[string]int
}{n: map[string]int{}}

func (s sampled) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if sec, err := strconv.ParseInt(r.FormValue("seconds"), 10, 64); err == nil && sec > 0 { // as pprof reads it
		windows.Lock()
		if windows.n[s.name]++; windows.n[s.name] == 1 {
			s.set(true)
		}
		windows.Unlock()
		defer func() {
			windows.Lock()
			if windows.n[s.name]--; windows.n[s.name] == 0 {
				s.set(false)
			}
			windows.Unlock()
		}()
	}
	pprof.Handler(s.name).ServeHTTP(w, r)
}
