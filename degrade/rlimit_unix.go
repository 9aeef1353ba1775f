//go:build unix

package degrade

import "syscall"

// openFilesLimit returns the soft RLIMIT_NOFILE; 0 if it cannot be read.
// An unlimited limit reads as the largest uint64.
func openFilesLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	return uint64(r.Cur)
}
