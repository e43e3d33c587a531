package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat. Linux fixes
// USER_HZ at 100 for user space, whatever the kernel's own HZ.
const clockTick = 10 * time.Millisecond

// procStat is the part of /proc/<pid>/stat the harness reads.
type procStat struct {
	State byte // R, S, D, Z, ...
	PPID  int
	UTime uint64 // clock ticks in user mode, all threads
	STime uint64 // clock ticks in kernel mode, all threads
}

// CPU returns the process's user plus system time.
func (s procStat) CPU() time.Duration {
	return time.Duration(s.UTime+s.STime) * clockTick
}

// parseProcStat parses the content of /proc/<pid>/stat. The command name (the
// second field) may hold spaces and parentheses, so fields are counted from
// the last closing parenthesis.
func parseProcStat(content string) (procStat, error) {
	end := strings.LastIndexByte(content, ')')
	if end < 0 {
		return procStat{}, errors.New("stat: no command name")
	}
	// After ")": state(3) ppid(4) ... utime(14) stime(15); index 0 is state.
	f := strings.Fields(content[end+1:])
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("stat: %d fields after the name, want at least 13", len(f))
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, fmt.Errorf("stat: ppid: %w", err)
	}
	ut, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("stat: utime: %w", err)
	}
	st, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("stat: stime: %w", err)
	}
	return procStat{State: f[0][0], PPID: ppid, UTime: ut, STime: st}, nil
}

// readProcStat reads and parses /proc/<pid>/stat.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(string(b))
}

// parseStatusKB returns the value, in bytes, of a "Key:  123 kB" line of
// /proc/<pid>/status, such as VmHWM (peak resident set size).
func parseStatusKB(content, key string) (uint64, error) {
	for _, line := range strings.Split(content, "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || name != key {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("status: malformed %s line %q", key, line)
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("status: %s: %w", key, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("status: no %s line", key)
}

// readPeakRSS returns VmHWM of process pid in bytes.
func readPeakRSS(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	return parseStatusKB(string(b), "VmHWM")
}

// childrenOf returns the live (not zombie) processes whose parent is one of
// pids, found by scanning /proc.
func childrenOf(pids ...int) []int {
	parents := make(map[int]bool, len(pids))
	for _, p := range pids {
		parents[p] = true
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readProcStat(pid); err == nil && parents[st.PPID] && st.State != 'Z' {
			out = append(out, pid)
		}
	}
	return out
}

// descendantsOf returns every live descendant of pid, children first.
func descendantsOf(pid int) []int {
	var all []int
	level := []int{pid}
	for len(level) > 0 {
		level = childrenOf(level...)
		all = append(all, level...)
	}
	return all
}

// usage is a snapshot of the CPU time of a group of processes.
type usage struct {
	CPU time.Duration
}

// sampleCPU sums the CPU time of pids; processes that vanished count zero.
func sampleCPU(pids []int) usage {
	var u usage
	for _, p := range pids {
		if st, err := readProcStat(p); err == nil {
			u.CPU += st.CPU()
		}
	}
	return u
}

// samplePeakRSS sums VmHWM over pids; processes that vanished count zero.
func samplePeakRSS(pids []int) uint64 {
	var sum uint64
	for _, p := range pids {
		if v, err := readPeakRSS(p); err == nil {
			sum += v
		}
	}
	return sum
}
