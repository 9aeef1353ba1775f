//go:build !unix

package degrade

// openFilesLimit returns 0: this platform has no RLIMIT_NOFILE, and the
// connections threshold falls back to FallbackConnections.
func openFilesLimit() uint64 { return 0 }
