//go:build unix

package degrade

import (
	"runtime"
	"runtime/debug"
	"syscall"
	"testing"
)

// SystemLimits reads the real limits: the open-files soft limit as
// getrlimit reports it, and on Linux the memory from /proc/meminfo.
func TestSystemLimits(t *testing.T) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		t.Fatal(err)
	}
	l := SystemLimits()
	if l.OpenFiles != uint64(r.Cur) || l.OpenFiles == 0 {
		t.Fatalf("open files = %d, getrlimit says %d", l.OpenFiles, r.Cur)
	}
	if runtime.GOOS == "linux" && l.Memory == 0 {
		t.Fatal("memory unknown on linux")
	}
	want, _ := l.Connections()
	if got := SystemCapacity().Connections; got != want {
		t.Fatalf("SystemCapacity connections = %d, want %d", got, want)
	}

	old := debug.SetMemoryLimit(1 << 30)
	defer debug.SetMemoryLimit(old)
	if l := SystemLimits(); l.MemoryLimit != 1<<30 {
		t.Fatalf("memory limit = %d, want the one set", l.MemoryLimit)
	}
}
