package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	_ "net/http/pprof" // served only with CHATLOAD_DEBUG_ADDR
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
)

func main() {
	cfg, err := ParseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chatload:", err)
		os.Exit(2)
	}
	if path := os.Getenv("CHATLOAD_CPUPROFILE"); path != "" {
		stopProfile := startProfile(path)
		defer stopProfile()
	}
	if addr := os.Getenv("CHATLOAD_DEBUG_ADDR"); addr != "" {
		// The tool's own profiles while it runs (loopback, for a person
		// profiling a run); never on unless asked.
		go func() { fmt.Fprintln(os.Stderr, "chatload: debug server:", http.ListenAndServe(addr, nil)) }()
	}
	if os.Getenv("GOGC") == "" {
		// Thousands of clients decode a stream of small envelopes: trade
		// memory for less collection work on the tool's core.
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chatload:", err)
		os.Exit(2)
	}
	fmt.Print(rep.Markdown())
	if len(rep.Failures) > 0 {
		stop()
		os.Exit(1)
	}
}

// startProfile writes a CPU profile of the tool itself to path until the
// returned function is called (CHATLOAD_CPUPROFILE=file).
func startProfile(path string) func() {
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chatload: cpu profile:", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
