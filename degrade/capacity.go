package degrade

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// Capacity is what this node is sized for. Each field's comment gives what
// its zero value means.
type Capacity struct {
	// Connections is the open sessions that trip the connections breaker;
	// 0: derived from the open-files limit (Limits.Connections).
	Connections int
	// HeapBytes is the heap reading (live and not yet swept objects) that
	// trips the heap breaker; 0: derived from the memory limits
	// (Limits.HeapBytes), and off when they are unknown.
	HeapBytes   uint64
	Goroutines  int           // 0 disables
	DeliverySLO time.Duration // time from fan-out to the transport write (poll: its answer); 250ms
	StoreSLO    time.Duration // durable append latency; 250ms
}

// Limits are the process's resource limits that capacity derives from.
// Zero fields are unknown.
type Limits struct {
	OpenFiles   uint64 // the soft RLIMIT_NOFILE (Go raises it to the hard limit at start-up)
	MemoryLimit uint64 // Go's soft memory limit (GOMEMLIMIT, debug.SetMemoryLimit); 0: none set
	Memory      uint64 // memory the process may use: the least of MemTotal and the cgroup's memory.max
}

// The capacity formulas' constants.
const (
	// FDShare is the share of the open-files limit sessions may hold; the
	// rest, with FDReserve, covers what sessions use beyond their own
	// socket: idle keep-alive connections between polls, connections in
	// their upgrade or negotiate request.
	FDShare = 0.9
	// FDReserve is the descriptors kept for everything that is not a
	// session: the store's file, the listeners, the admin API, logs and
	// outgoing connections.
	FDReserve = 256
	// FallbackConnections is the connections threshold when the
	// open-files limit is unknown: safe under the common limit of 10240.
	FallbackConnections = 9000
	// MaxConnections caps the derived figure, for an unlimited
	// open-files limit; memory is then the heap breaker's business.
	MaxConnections = 1 << 20
	// MemoryLimitShare is the share of Go's memory limit the heap reading
	// may reach. The limit caps the collector's heap goal; a reading that
	// stays above 70% of it means the collector runs ever more often to
	// stay under, taking CPU from delivery.
	MemoryLimitShare = 0.7
	// MemoryShare is the share of the process's memory the heap reading
	// may reach when Go has no memory limit. The reading counts live and
	// not yet swept objects and peaks at the heap goal, twice the live
	// heap at GOGC=100; staying above half of memory for three readings
	// means the next goal no longer fits beside the goroutine stacks, the
	// runtime and the store's page cache.
	MemoryShare = 0.5
)

// Connections returns the connections threshold these limits allow, and
// how it was derived: FDShare of the open-files limit less FDReserve,
// never less than half the limit, at most MaxConnections;
// FallbackConnections when the limit is unknown. A limit of 20000 gives
// 17744.
func (l Limits) Connections() (int, string) {
	if l.OpenFiles == 0 {
		return FallbackConnections, "open-files limit unknown: fallback"
	}
	n := FDShare*float64(l.OpenFiles) - FDReserve
	n = math.Max(n, float64(l.OpenFiles)/2)
	n = math.Min(n, MaxConnections)
	return int(n), fmt.Sprintf("%.0f%% of the open-files limit %d, less %d reserved",
		FDShare*100, l.OpenFiles, FDReserve)
}

// HeapBytes returns the live-heap threshold these limits allow, and how it
// was derived: MemoryLimitShare of Go's memory limit if one is set, else
// MemoryShare of the process's memory; 0 (the heap breaker off) when
// neither is known.
func (l Limits) HeapBytes() (uint64, string) {
	switch {
	case l.MemoryLimit > 0:
		return uint64(MemoryLimitShare * float64(l.MemoryLimit)),
			fmt.Sprintf("%.0f%% of Go's memory limit %d", MemoryLimitShare*100, l.MemoryLimit)
	case l.Memory > 0:
		return uint64(MemoryShare * float64(l.Memory)),
			fmt.Sprintf("%.0f%% of memory %d", MemoryShare*100, l.Memory)
	}
	return 0, "memory unknown: off"
}

// Capacity returns the capacity these limits allow: Connections and
// HeapBytes derived as their methods say; the rest zero (defaults).
func (l Limits) Capacity() Capacity {
	conns, _ := l.Connections()
	heap, _ := l.HeapBytes()
	return Capacity{Connections: conns, HeapBytes: heap}
}

// readLimits reads the process's limits; tests replace it.
var readLimits = SystemLimits

// SystemCapacity returns the capacity the process's limits allow; see
// Limits.Connections and Limits.HeapBytes for the formulas.
func SystemCapacity() Capacity { return readLimits().Capacity() }

// SystemLimits reads the process's limits: the soft open-files limit, Go's
// memory limit, /proc/meminfo's MemTotal and the cgroup v2 memory.max.
// What cannot be read is left zero.
func SystemLimits() Limits {
	l := Limits{OpenFiles: openFilesLimit()}
	if ml := debug.SetMemoryLimit(-1); ml > 0 && ml < math.MaxInt64 {
		l.MemoryLimit = uint64(ml)
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		l.Memory = memTotal(f)
		f.Close()
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if c := cgroupMax(string(b)); c > 0 && (l.Memory == 0 || c < l.Memory) {
			l.Memory = c
		}
	}
	return l
}

// memTotal returns /proc/meminfo's MemTotal in bytes; 0 if absent.
func memTotal(r io.Reader) uint64 {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}

// cgroupMax parses a cgroup v2 memory.max: bytes, or "max" (0: none).
func cgroupMax(s string) uint64 {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0
	}
	return n
}
