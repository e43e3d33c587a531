package supervisor

import (
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/shared/protocol"
)

// Restart causes, as /metrics and /admin/workers name them.
const (
	CauseCrash       = "crash"
	CauseUnhealthy   = "unhealthy"
	CauseReload      = "reload"
	CauseMemory      = "memory"
	CauseMaxRequests = "max_requests"
	CauseManual      = "manual" // an operator's recycle (POST /admin/recycle; see recycleop.go)
)

// Causes lists every restart cause.
var Causes = []string{CauseCrash, CauseUnhealthy, CauseReload, CauseMemory, CauseMaxRequests, CauseManual}

// restartCounts counts restarts by cause; safe for concurrent reads.
type restartCounts [6]atomic.Uint64

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

// checkRecycle marks one serving worker for replacement, the first by
// slot id that may be recycled now and is past its MAX_REQUESTS or over
// MAX_MEMORY_RESTART_MB; replaceStale starts its replacement. It runs in
// every manage step: the request that reaches a limit wakes the loop (see
// pool.Upstream.WatchRequests), and a worker held back (another's
// replacement is starting, or its backoff runs) is found again later.
func (s *Supervisor) checkRecycle() {
	if s.cfg.MaxMemoryMB <= 0 && s.cfg.MaxRequests <= 0 {
		return
	}
	for _, sl := range s.activeSlots() {
		p := sl.cur
		if p == nil || !s.mayRecycle(p) {
			continue
		}
		if n := p.up.Requests(); p.maxRequests > 0 && n >= p.maxRequests {
			s.markRecycle(p, CauseMaxRequests, n)
			return
		}
		if m := p.up.Memory(); s.cfg.MaxMemoryMB > 0 && m != nil && m.RSSBytes > uint64(s.cfg.MaxMemoryMB)<<20 {
			s.recycleForMemory(p, m.RSSBytes)
			return
		}
	}
}

// mayRecycle reports whether p may be recycled now: it serves its slot
// and is ready, no scale, reload or shutdown runs, no replacement is
// starting or due in any slot, and the slot's recycle backoff is over.
//
// One slot at a time: a replacement needs memory and CPU too, and workers
// that reach MAX_REQUESTS together (round robin keeps them in step) are
// set apart by it. Each keeps serving, in rotation, until its turn; the
// next turn comes in the manage step that swaps the replacement in.
func (s *Supervisor) mayRecycle(p *proc) bool {
	sl := p.slot
	if s.stopping || s.op != nil || sl.retiring || p != sl.cur || !p.ready || p.stopping || s.stale(p) || s.replacing() {
		return false
	}
	since := time.Since(sl.lastRecycle)
	if since >= s.cfg.StablePeriod {
		sl.recycles = 0 // forgiven, as crashes are
	}
	return since >= backoff(sl.recycles+1)
}

// recycleForMemory recycles p for its RSS. Memory recycles back off like
// crashes: a limit below what a fresh worker needs would otherwise replace
// it several times a second, forever. PM2 restarts such a worker at every
// check too; we say once that the limit cannot be met, and back off to one
// recycle every 30s.
func (s *Supervisor) recycleForMemory(p *proc, rss uint64) {
	sl := p.slot
	if sl.recycles > 0 && time.Since(p.started) < s.cfg.StablePeriod {
		// Its predecessor was recycled moments ago, and this one is over
		// the limit already.
		s.logFootprint(rss)
	}
	sl.recycles++
	s.markRecycle(p, CauseMemory, rss)
}

// logFootprint logs, once, that MAX_MEMORY_RESTART_MB is below a fresh
// worker's RSS.
func (s *Supervisor) logFootprint(rss uint64) {
	if s.footprint {
		return
	}
	s.footprint = true
	s.log.Error("memory restart limit is below a fresh worker's footprint, recycling backs off",
		"setting", "MAX_MEMORY_RESTART_MB", "limit_mb", s.cfg.MaxMemoryMB, "rss_mb", rss>>20)
}

// markRecycle marks p for replacement, replacement first (replaceStale,
// swapReady). A worker past MAX_REQUESTS leaves rotation while its
// replacement starts, as long as another is healthy (retireSpent), as
// gunicorn's worker stops accepting at max_requests.
func (s *Supervisor) markRecycle(p *proc, cause string, detail any) {
	p.log.Info("recycling worker", "cause", cause, "detail", detail)
	p.recycle = cause
}

// recycleFailed ends a recycle whose replacement failed: the old worker
// serves on, back in rotation, and the next try backs off.
func (s *Supervisor) recycleFailed(p *proc, err error) {
	sl := p.slot
	sl.lastRecycle = time.Now()
	sl.recycles++
	p.recycle = ""
	p.up.Transition(pool.Recycling, pool.Healthy)
	p.log.Warn("recycling failed, worker keeps serving", "error", err)
}

// retireSpent takes the workers past MAX_REQUESTS whose replacement is
// starting out of rotation, as long as another upstream stays healthy:
// the last one keeps serving (and the pool falls back to Recycling
// upstreams should the others fail meanwhile).
func (s *Supervisor) retireSpent() {
	for _, sl := range s.slots {
		p := sl.cur
		if p == nil || p.recycle != CauseMaxRequests || sl.next == nil || p.up.State() != pool.Healthy {
			continue
		}
		if s.pool.Healthy() < 2 {
			return
		}
		if p.up.Transition(pool.Healthy, pool.Recycling) {
			p.log.Debug("worker out of rotation while its replacement starts")
		}
	}
}
