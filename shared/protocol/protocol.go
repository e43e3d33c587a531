// Package protocol is the contract between the balancer and the workers it
// spawns: environment names, the internal report channel and the JSON shapes
// that cross it. Both binaries import it; it imports neither.
package protocol

import (
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Environment variables the balancer sets for every worker it spawns.
const (
	// EnvSocket is the absolute path of the unix socket the worker listens on.
	EnvSocket = "WORKER_SOCKET"
	// EnvID is the stable slot number of the worker, from 1.
	EnvID = "WORKER_ID"
	// EnvReportSocket is the absolute path of a second unix socket on which a
	// worker built on the worker kit serves its memory report. Only the
	// balancer dials it, so clients can never reach the report through the
	// proxy.
	EnvReportSocket = "WORKER_REPORT_SOCKET"
	// EnvHealthPath is the path the balancer probes (HEALTH_PATH).
	EnvHealthPath = "HEALTH_PATH"
)

// ReportPath is the path of the memory report on the report socket.
const ReportPath = "/memory"

// DefaultHealthPath is probed when HEALTH_PATH is unset.
const DefaultHealthPath = "/healthz"

// MemoryReport is what a worker reports about its own memory. RSS is read by
// the balancer from /proc; the runtime fields come from Go workers only.
type MemoryReport struct {
	RSSBytes       uint64    `json:"rss_bytes"`
	HeapAllocBytes uint64    `json:"heap_alloc_bytes,omitempty"`
	HeapSysBytes   uint64    `json:"heap_sys_bytes,omitempty"`
	Goroutines     int       `json:"goroutines,omitempty"`
	GCCycles       uint32    `json:"gc_cycles,omitempty"`
	ReportedAt     time.Time `json:"reported_at"`
}

// ReadMemory returns the calling Go process's own memory report, RSS included.
func ReadMemory() MemoryReport {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, _ := ReadRSS(os.Getpid())
	return MemoryReport{
		RSSBytes:       rss,
		HeapAllocBytes: ms.HeapAlloc,
		HeapSysBytes:   ms.HeapSys,
		Goroutines:     runtime.NumGoroutine(),
		GCCycles:       ms.NumGC,
		ReportedAt:     time.Now().UTC(),
	}
}

var pageSize = uint64(os.Getpagesize())

// ReadRSS returns the resident set size of process pid in bytes, read from
// /proc/<pid>/statm, so it works for any program.
func ReadRSS(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, os.ErrInvalid
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0, err
	}
	return pages * pageSize, nil
}

// WorkerProcs is the GOMAXPROCS a Go worker gets when n workers share cpus
// cores: an equal share, at least one. Measured on 2 cores with 2 workers
// (make bench): workers at GOMAXPROCS=1 cost the machine less scheduler
// spinning than two runtimes each sized for every core, which left more CPU
// to the proxy (+20-30% req/s).
func WorkerProcs(cpus, n int) int {
	if n <= 0 {
		return cpus
	}
	return max(1, cpus/n)
}

// LoopbackAddr is where a process on this host reaches a listener on addr
// (a LISTEN_ADDR, ADMIN_ADDR or WORKER_ADDR): a wildcard or empty host
// becomes the loopback address of its family. Both binaries' healthcheck
// subcommands dial it.
func LoopbackAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port)
}
