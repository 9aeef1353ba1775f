package main

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Machine describes where the tool ran.
type Machine struct {
	CPUs       int    `json:"cpus"`       // CPUs this process may run on (affinity)
	GOMAXPROCS int    `json:"gomaxprocs"` //
	MemBytes   uint64 `json:"mem_bytes"`  // MemTotal
	Kernel     string `json:"kernel,omitempty"`
	Go         string `json:"go"`
	NoFileSoft uint64 `json:"nofile_soft"` // RLIMIT_NOFILE after raising
	NoFileHard uint64 `json:"nofile_hard"`
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), Go: runtime.Version()}
	m.MemBytes = meminfo("MemTotal:")
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// meminfo returns a /proc/meminfo line's value in bytes; 0 if unknown.
func meminfo(key string) uint64 {
	return procField("/proc/meminfo", key)
}

// selfRSS returns this process's resident set in bytes; 0 if unknown.
func selfRSS() uint64 {
	return procField("/proc/self/status", "VmRSS:")
}

// procField reads "Key:   123 kB" from a /proc file, in bytes.
func procField(path, key string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, key) {
			continue
		}
		f := strings.Fields(line[len(key):])
		if len(f) == 0 {
			return 0
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0
		}
		if len(f) > 1 && f[1] == "kB" {
			n <<= 10
		}
		return n
	}
	return 0
}

// userHZ is the unit of /proc/<pid>/stat's CPU times: USER_HZ, 100 on
// every Linux architecture Go runs on.
const userHZ = 100

// procCPU returns the CPU time, user and system, that process pid has
// used, from /proc/<pid>/stat (fields 14 and 15, after the command name,
// which may hold spaces); false where there is no such file.
func procCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	return parseProcCPU(b)
}

// parseProcCPU reads utime and stime out of a /proc/<pid>/stat line.
func parseProcCPU(stat []byte) (time.Duration, bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(stat[i+1:])) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * time.Second / userHZ, true
}
