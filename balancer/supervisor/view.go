package supervisor

import (
	"sort"

	"github.com/procbal/procbal/balancer/pool"
)

// WorkerView is one local worker slot as reports show it.
type WorkerView struct {
	// ID is the stable WORKER_ID.
	ID int
	// Upstream is the slot's serving process, or its latest one when none
	// serves; its atomics give the live counters.
	Upstream *pool.Upstream
	// Restarts counts replacements of the slot's process.
	Restarts int
	// Cause says why the last restart happened.
	Cause string
	// Retiring is set while the slot is being scaled away.
	Retiring bool
	// CrashLoop is set while the slot's processes keep failing (two or
	// more short-lived crashes in a row) and none serves; its respawns
	// back off.
	CrashLoop bool
	// LastExit and LastOutput describe the slot's latest process that
	// ended without being asked to: its exit ("exit status 1") and the
	// last line it wrote. Empty before the first such exit.
	LastExit   string
	LastOutput string
}

// Workers returns the latest published view, sorted by id. Safe for
// concurrent use.
func (s *Supervisor) Workers() []WorkerView { return *s.view.Load() }

// publish hands the pool every live process's upstream (draining ones
// too: they finish their requests) and every remote upstream, and stores
// a new view. Only the loop calls it, from manage when the table changed.
func (s *Supervisor) publish() {
	ids := make([]int, 0, len(s.slots))
	for id := range s.slots {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	var ups []*pool.Upstream
	views := make([]WorkerView, 0, len(ids))
	for _, id := range ids {
		sl := s.slots[id]
		for _, p := range sl.procs() {
			ups = append(ups, p.up)
		}
		u := sl.last
		if sl.cur != nil {
			u = sl.cur.up
		}
		if u != nil {
			views = append(views, sl.view(u))
		}
	}
	for _, r := range s.remotes {
		ups = append(ups, r.up)
		views = append(views, WorkerView{ID: r.up.ID, Upstream: r.up})
	}
	s.pool.Publish(ups)
	s.view.Store(&views)
	if s.cfg.DBShares {
		s.dbPeak.Store(max(s.dbPeak.Load(), int64(s.dbHeld())))
	}
	s.checkStartFailed()
}

// view reports the slot with u as its upstream.
func (sl *slot) view(u *pool.Upstream) WorkerView {
	return WorkerView{
		ID: sl.id, Upstream: u, Restarts: sl.restarts, Cause: sl.cause, Retiring: sl.retiring,
		CrashLoop: sl.crashLooping() && !sl.retiring, LastExit: sl.lastExit, LastOutput: sl.lastOutput,
	}
}

// StartFailed is closed once every local worker has failed (exited, or
// could not be started) before any was healthy: no first worker is coming
// soon, so clients had better get 503s now than wait for one.
func (s *Supervisor) StartFailed() <-chan struct{} { return s.startFailed }

// checkStartFailed closes startFailed when its condition first holds.
func (s *Supervisor) checkStartFailed() {
	select {
	case <-s.readyCh:
		return
	case <-s.startFailed:
		return
	default:
	}
	if len(s.slots) == 0 {
		return
	}
	for _, sl := range s.slots {
		if sl.crashes == 0 {
			return
		}
	}
	close(s.startFailed)
}
