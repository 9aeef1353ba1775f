//go:build unix

package main

import (
	"os"
	"syscall"
)

// ensureStackStart makes the process run with withStackStart's GODEBUG.
// The runtime reads adaptivestackstart only from the environment it
// starts with (it is not a //go:debug setting, and nothing can change it
// later), so when the environment lacks it chatd executes itself again,
// the same process (same PID, arguments and descriptors) with GODEBUG
// set. If that cannot be done it goes on with the runtime's default.
func ensureStackStart() {
	v, change := withStackStart(os.Getenv("GODEBUG"))
	if !change {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	if os.Setenv("GODEBUG", v) != nil {
		return
	}
	_ = syscall.Exec(exe, os.Args, os.Environ()) // returns only on failure
}
