//go:build unix

package degrade

import (
	"syscall"
	"time"
)

// ProcessCPU is the CPU time the process has used so far, user and
// system; false if it cannot be read.
func ProcessCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
