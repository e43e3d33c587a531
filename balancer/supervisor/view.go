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
}

// Workers returns the latest published view, sorted by id. Safe for
// concurrent use.
func (s *Supervisor) Workers() []WorkerView { return *s.view.Load() }

// publish hands the pool every live process's upstream and stores a new
// view. Only the loop calls it.
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
			views = append(views, WorkerView{ID: id, Upstream: u, Restarts: sl.restarts, Cause: sl.cause, Retiring: sl.retiring})
		}
	}
	for _, u := range s.remoteList() {
		ups = append(ups, u)
		views = append(views, WorkerView{ID: u.ID, Upstream: u})
	}
	s.pool.Publish(ups)
	s.view.Store(&views)
	s.checkWaiters()
}
