package degrade

import (
	"runtime"
	"sync"
	"time"
)

// ProcessBusy returns a reader of how busy the process has been since the
// reader's last call (since ProcessBusy, the first time): the CPU time it
// used, user and system, as a fraction of the wall time times the cores
// it may use. The cores are the fewer of runtime.NumCPU (the CPUs the
// process may run on, its affinity, when it started) and GOMAXPROCS: a
// node pinned to one core reads 1 when that core is full, even with two
// Go processors. It reads 0 where the CPU time is unknown (ProcessCPU).
// The reader is safe for concurrent use; it costs one getrusage call.
func ProcessBusy() func() float64 {
	return newBusy(ProcessCPU, time.Now, min(runtime.NumCPU(), runtime.GOMAXPROCS(0)))
}

// newBusy is ProcessBusy over a given clock, CPU counter and core count.
func newBusy(cpu func() (time.Duration, bool), now func() time.Time, cores int) func() float64 {
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
			f = float64(used-prev) / (float64(wall) * float64(cores))
		}
		prev, ok, at = used, known, t
		return f
	}
}
