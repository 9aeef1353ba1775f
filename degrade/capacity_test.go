package degrade

import (
	"strings"
	"testing"
)

func TestLimitsConnections(t *testing.T) {
	for _, tc := range []struct {
		openFiles uint64
		want      int
	}{
		{20000, 17744},        // 0.9 × 20000 − 256
		{10240, 8960},         // the common default
		{1024, 665},           // 921.6 − 256
		{300, 150},            // never less than half the limit
		{0, 9000},             // unknown: the fallback
		{^uint64(0), 1 << 20}, // unlimited: capped
	} {
		got, basis := Limits{OpenFiles: tc.openFiles}.Connections()
		if got != tc.want || basis == "" {
			t.Errorf("open files %d: connections %d (%q), want %d", tc.openFiles, got, basis, tc.want)
		}
	}
}

func TestLimitsHeapBytes(t *testing.T) {
	for _, tc := range []struct {
		l    Limits
		want uint64
	}{
		{Limits{MemoryLimit: 10 << 30, Memory: 64 << 30}, 7 << 30}, // Go's limit wins
		{Limits{Memory: 8 << 30}, 4 << 30},
		{Limits{OpenFiles: 20000}, 0}, // unknown: off
	} {
		if got, basis := tc.l.HeapBytes(); got != tc.want || basis == "" {
			t.Errorf("%+v: heap %d (%q), want %d", tc.l, got, basis, tc.want)
		}
	}
	if c := (Limits{OpenFiles: 20000, Memory: 8 << 30}).Capacity(); c.Connections != 17744 || c.HeapBytes != 4<<30 {
		t.Errorf("capacity = %+v", c)
	}
}

func TestMemTotalAndCgroupMax(t *testing.T) {
	meminfo := "MemFree:         1000 kB\nMemTotal:       24683568 kB\nBuffers: 1 kB\n"
	if got := memTotal(strings.NewReader(meminfo)); got != 24683568*1024 {
		t.Errorf("memTotal = %d", got)
	}
	if got := memTotal(strings.NewReader("MemFree: 1 kB\n")); got != 0 {
		t.Errorf("memTotal without the line = %d", got)
	}
	if got := cgroupMax("536870912\n"); got != 512<<20 {
		t.Errorf("cgroupMax = %d", got)
	}
	if got := cgroupMax("max\n"); got != 0 {
		t.Errorf("cgroupMax(max) = %d", got)
	}
}
