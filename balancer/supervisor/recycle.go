package supervisor

import (
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/shared/protocol"
)

// recycleCheck is how often the loop looks for workers to recycle.
const recycleCheck = 250 * time.Millisecond

// Restart causes, as /metrics and /admin/workers name them.
const (
	CauseCrash       = "crash"
	CauseUnhealthy   = "unhealthy"
	CauseReload      = "reload"
	CauseMemory      = "memory"
	CauseMaxRequests = "max_requests"
)

// Causes lists every restart cause.
var Causes = []string{CauseCrash, CauseUnhealthy, CauseReload, CauseMemory, CauseMaxRequests}

// restartCounts counts restarts by cause; safe for concurrent reads.
type restartCounts [5]atomic.Uint64

func (r *restartCounts) add(cause string) {
	for i, c := range Causes {
		if c == cause {
			r[i].Add(1)
		}
	}
}

// Restarts returns the number of worker restarts by cause.
func (s *Supervisor) Restarts() map[string]uint64 {
	m := make(map[string]uint64, len(Causes))
	for i, c := range Causes {
		m[c] = s.restarts[i].Load()
	}
	return m
}

// onMemory runs on a checker goroutine for each memory sample: it logs the
// sample when monitoring is on and warns once when a worker crosses the
// threshold (and once when it is back under).
func (s *Supervisor) onMemory(u *pool.Upstream, m *protocol.MemoryReport) {
	const mb = 1 << 20
	log := s.log.Named("memory").With("worker_id", u.ID, "pid", u.PID)
	if s.cfg.MemoryLog {
		log.Info("worker memory", "rss_mb", m.RSSBytes/mb, "heap_alloc_mb", m.HeapAllocBytes/mb,
			"heap_sys_mb", m.HeapSysBytes/mb, "goroutines", m.Goroutines, "gc_cycles", m.GCCycles)
	}
	if s.cfg.MemoryThresholdMB <= 0 {
		return
	}
	over := m.RSSBytes > uint64(s.cfg.MemoryThresholdMB)*mb
	if u.SetOverThreshold(over) {
		if over {
			log.Warn("worker memory above threshold", "rss_mb", m.RSSBytes/mb, "threshold_mb", s.cfg.MemoryThresholdMB)
		} else {
			log.Info("worker memory back under threshold", "rss_mb", m.RSSBytes/mb, "threshold_mb", s.cfg.MemoryThresholdMB)
		}
	}
}

// requestLimit picks one process's MAX_REQUESTS with jitter.
func (s *Supervisor) requestLimit() uint64 {
	n := s.cfg.MaxRequests
	if n <= 0 {
		return 0
	}
	return uint64(n + rand.IntN(n/10+1))
}

// checkRecycle replaces, one slot at a time and replacement first, the
// workers over MAX_MEMORY_RESTART_MB or MAX_REQUESTS. It leaves workers
// alone while a scale or reload runs.
func (s *Supervisor) checkRecycle() {
	if s.stopping || s.busy || (s.cfg.MaxMemoryMB <= 0 && s.cfg.MaxRequests <= 0) {
		return
	}
	for _, sl := range s.slots {
		if sl.next != nil {
			return // a replacement is starting; wait for it
		}
		p := sl.cur
		if sl.retiring || p == nil || !p.ready || p.stopping {
			continue
		}
		if cause, detail := s.recycleCause(p); cause != "" {
			p.log.Info("recycling worker", "cause", cause, "detail", detail)
			s.replace(sl, cause, nil)
			return // one at a time; the next tick takes the next one
		}
	}
}

func (s *Supervisor) recycleCause(p *proc) (string, any) {
	if p.maxRequests > 0 && p.up.Requests() >= p.maxRequests {
		return CauseMaxRequests, p.up.Requests()
	}
	if s.cfg.MaxMemoryMB > 0 {
		if m := p.up.Memory(); m != nil && m.RSSBytes > uint64(s.cfg.MaxMemoryMB)<<20 {
			return CauseMemory, m.RSSBytes
		}
	}
	return "", nil
}
