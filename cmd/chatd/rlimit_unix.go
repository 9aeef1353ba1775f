//go:build unix

package main

import "syscall"

// fileLimit is the process's soft RLIMIT_NOFILE, read at start (Go has by
// then raised it to the hard limit), or 0 if it cannot be read.
func fileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return uint64(rl.Cur)
}
