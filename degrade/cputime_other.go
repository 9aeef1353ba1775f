//go:build !unix

package degrade

import "time"

// ProcessCPU is unknown here: it reports false, and ProcessBusy reads 0.
func ProcessCPU() (time.Duration, bool) { return 0, false }
