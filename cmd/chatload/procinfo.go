package main

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
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
