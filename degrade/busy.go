package degrade

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ProcessBusy returns a reader of how busy the process has been since the
// reader's last call (since ProcessBusy, the first time): the CPU time it
// used, user and system, as a fraction of the wall time times the cores
// it may use (usableCores): a node pinned to one core, or limited to one
// CPU by its container, reads 1 when that core is full, even with two Go
// processors. It reads 0 where the CPU time is unknown (ProcessCPU). The
// reader is safe for concurrent use; it costs one getrusage call.
func ProcessBusy() func() float64 {
	return newBusy(ProcessCPU, time.Now, usableCores())
}

// usableCores is the fewest of runtime.NumCPU (the CPUs the process may
// run on, its affinity, when it started), GOMAXPROCS, and the cgroup v2
// CPU limit (cpu.max's quota over its period, which may be a fraction).
// Go's own default GOMAXPROCS follows that limit but is at least 2.
func usableCores() float64 {
	c := float64(min(runtime.NumCPU(), runtime.GOMAXPROCS(0)))
	if b, err := os.ReadFile("/sys/fs/cgroup/cpu.max"); err == nil {
		if q := cgroupCPU(string(b)); q > 0 && q < c {
			c = q
		}
	}
	return c
}

// cgroupCPU parses a cgroup v2 cpu.max, "quota period" or "max period",
// into CPUs: the quota over the period; 0 for none or what it cannot
// read.
func cgroupCPU(s string) float64 {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0
	}
	q, err1 := strconv.ParseFloat(f[0], 64)
	p, err2 := strconv.ParseFloat(f[1], 64)
	if err1 != nil || err2 != nil || q <= 0 || p <= 0 {
		return 0 // "max", or nonsense
	}
	return q / p
}

// newBusy is ProcessBusy over a given clock, CPU counter and core count.
func newBusy(cpu func() (time.Duration, bool), now func() time.Time, cores float64) func() float64 {
	var mu sync.Mutex
	prev, ok := cpu()
	at := now()
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		used, known := cpu()
		t := now()
		wall := t.Sub(at)
		var f float64
		if ok && known && used >= prev && wall > 0 && cores > 0 {
			f = float64(used-prev) / (float64(wall) * cores)
		}
		prev, ok, at = used, known, t
		return f
	}
}
