package admin

import (
	"net/http"
	"os"
	"time"

	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/shared/protocol"
)

// Worker is one entry of /admin/workers.
type Worker struct {
	ID            int       `json:"id"`
	Kind          pool.Kind `json:"kind"`
	Address       string    `json:"address"`
	PID           int       `json:"pid"`
	State         string    `json:"state"`
	Inflight      int64     `json:"inflight"`
	Tunnels       int64     `json:"tunnels"` // open Upgrade (WebSocket) tunnels, counted in inflight too
	Requests      uint64    `json:"requests"`
	Failures      uint64    `json:"failures"`
	Restarts      int       `json:"restarts"`
	RestartCause  string    `json:"restart_cause,omitempty"`
	Ejections     int       `json:"ejections"`
	StartedAt     string    `json:"started_at"`
	Memory        Memory    `json:"memory"`
	OverThreshold bool      `json:"over_threshold"`
	// Weight is the upstream's share of requests (remote: from UPSTREAMS
	// or the API; local workers 1).
	Weight int `json:"weight"`
	// LastCheckError and LastCheckAt: the last active health probe's
	// failure ("" when it passed) and end (RFC 3339, "" before the first).
	LastCheckError string `json:"last_check_error"`
	LastCheckAt    string `json:"last_check_at"`
	// LastExit and LastOutput: the slot's latest unrequested exit and the
	// last line that process wrote.
	LastExit   string `json:"last_exit,omitempty"`
	LastOutput string `json:"last_output,omitempty"`
}

// Memory is a worker's memory report; runtime fields only for kit workers.
type Memory struct {
	RSSBytes       uint64  `json:"rss_bytes"`
	HeapAllocBytes *uint64 `json:"heap_alloc_bytes,omitempty"`
	HeapSysBytes   *uint64 `json:"heap_sys_bytes,omitempty"`
	Goroutines     *int    `json:"goroutines,omitempty"`
	GCCycles       *uint32 `json:"gc_cycles,omitempty"`
	ReportedAt     string  `json:"reported_at,omitempty"`
}

// Totals sums the workers.
type Totals struct {
	Workers        int    `json:"workers"`
	Healthy        int    `json:"healthy"`
	RSSBytes       uint64 `json:"rss_bytes"`
	HeapAllocBytes uint64 `json:"heap_alloc_bytes"`
	Requests       uint64 `json:"requests"`
}

// Balancer describes the balancer process itself.
type Balancer struct {
	PID           int     `json:"pid"`
	RSSBytes      uint64  `json:"rss_bytes"`
	UptimeSeconds float64 `json:"uptime_seconds"`
}

// Report is the body of GET /admin/workers.
type Report struct {
	Strategy string   `json:"strategy"`
	Workers  []Worker `json:"workers"`
	Totals   Totals   `json:"totals"`
	Balancer Balancer `json:"balancer"`
}

func (a *api) workers(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.report())
}

func (a *api) report() Report {
	r := Report{Strategy: a.Strategy, Workers: []Worker{}}
	for _, v := range a.Supervisor.Workers() {
		wk := workerOf(v.Upstream)
		wk.Restarts, wk.RestartCause = v.Restarts, v.Cause
		if v.Retiring && wk.State != pool.Stopped.String() {
			wk.State = pool.Draining.String()
		}
		if v.CrashLoop {
			wk.State = pool.CrashLoop.String()
		}
		wk.LastExit, wk.LastOutput = v.LastExit, v.LastOutput
		r.add(wk)
	}
	rss, _ := protocol.ReadRSS(os.Getpid())
	r.Balancer = Balancer{PID: a.pid, RSSBytes: rss, UptimeSeconds: time.Since(a.started).Seconds()}
	return r
}

func (r *Report) add(wk Worker) {
	r.Workers = append(r.Workers, wk)
	r.Totals.Workers++
	if wk.State == pool.Healthy.String() {
		r.Totals.Healthy++
	}
	r.Totals.RSSBytes += wk.Memory.RSSBytes
	if wk.Memory.HeapAllocBytes != nil {
		r.Totals.HeapAllocBytes += *wk.Memory.HeapAllocBytes
	}
	r.Totals.Requests += wk.Requests
}

func workerOf(u *pool.Upstream) Worker {
	w := Worker{
		ID:        u.ID,
		Kind:      u.Kind,
		Address:   u.Address,
		PID:       u.PID,
		State:     u.State().String(),
		Inflight:  u.Inflight(),
		Tunnels:   u.Tunnels(),
		Requests:  u.Requests(),
		Failures:  u.Failures(),
		Ejections: u.Ejections(),
		StartedAt: u.StartedAt.UTC().Format(time.RFC3339),
		Memory:    memoryOf(u.Memory()),

		OverThreshold: u.OverThreshold(),
		Weight:        max(u.Weight, 1),
	}
	w.LastCheckAt, w.LastCheckError = lastCheck(u)
	return w
}

func memoryOf(m *protocol.MemoryReport) Memory {
	if m == nil {
		return Memory{}
	}
	out := Memory{RSSBytes: m.RSSBytes, ReportedAt: m.ReportedAt.Format(time.RFC3339Nano)}
	if m.HeapSysBytes > 0 {
		out.HeapAllocBytes, out.HeapSysBytes = &m.HeapAllocBytes, &m.HeapSysBytes
		out.Goroutines, out.GCCycles = &m.Goroutines, &m.GCCycles
	}
	return out
}
