//go:build !unix

package main

import "time"

// raiseNoFile reports no limit where there is no RLIMIT_NOFILE.
func raiseNoFile() (soft, hard uint64, err error) { return 0, 0, nil }

// cpuTime is unknown here.
func cpuTime() time.Duration { return 0 }
