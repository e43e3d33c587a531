package supervisor

import (
	"fmt"
	"sort"
	"time"
)

// target is what manage converges the worker table on.
type target struct {
	// count is the number of local worker slots (MAX_WORKERS, /admin/scale).
	count int
	// gen is the generation serving processes must be of: a reload bumps
	// it, and processes of an older one are replaced, one at a time.
	gen int
}

// manage is the arbiter's one step: it compares the worker table with the
// target and acts, as gunicorn's manage_workers does. The loop runs it
// after every message and tick. Its steps, in order: deadlines (drains,
// start timeouts, SIGKILL after a grace); slots scaled away; slots without
// a serving process; healthy replacements take over; a worker marked for
// recycling; one replacement started for a stale worker; database shares
// moved towards the target share; the running operation's end. Then the
// pool and the view are published if anything changed, and an operation
// that ended is answered. A spawn waits while the database budget has no
// room for it (dbshare.go).
func (s *Supervisor) manage() {
	now := time.Now()
	s.checkDrains(now)
	s.checkTimers(now)
	if !s.stopping {
		s.retireExtras()
		s.spawnMissing(now)
		s.swapReady()
		s.checkRecycle()
		s.replaceStale()
		s.retireSpent()
		s.moveShares(now)
		s.checkOp()
	}
	s.checkRecycles()
	if s.dirty {
		s.dirty = false
		s.publish()
	}
	s.answer()
}

// retireExtras scales away the slots beyond the target count, those whose
// serving process is oldest first.
func (s *Supervisor) retireExtras() {
	active := s.activeSlots()
	extra := len(active) - s.target.count
	if extra <= 0 {
		return
	}
	sort.SliceStable(active, func(i, j int) bool { return startedAt(active[i]).Before(startedAt(active[j])) })
	for _, sl := range active[:extra] {
		s.retireSlot(sl)
	}
}

func startedAt(sl *slot) time.Time {
	if sl.cur != nil {
		return sl.cur.started
	}
	return time.Time{} // no process: retire it first
}

// retireSlot takes a slot out: its replacement, if any, is stopped at
// once, its serving process drains, and the slot goes with its last
// process.
func (s *Supervisor) retireSlot(sl *slot) {
	sl.retiring = true
	if p := sl.next; p != nil {
		sl.retire(p)
		s.stop(p, 0)
	}
	if p := sl.cur; p != nil {
		sl.last = p.up
		sl.retire(p)
		s.drain(p.up)
	}
	s.dropIfEmpty(sl)
	s.dirty = true
}

// dropIfEmpty removes a retiring slot whose processes are all gone.
func (s *Supervisor) dropIfEmpty(sl *slot) {
	if sl.retiring && len(sl.procs()) == 0 {
		delete(s.slots, sl.id)
	}
}

// spawnMissing adds slots up to the target count, with the lowest free
// ids, and spawns a serving process in every slot that has none once its
// crash backoff is over and the database budget has room for it.
func (s *Supervisor) spawnMissing(now time.Time) {
	for n := len(s.activeSlots()); n < s.target.count; n++ {
		id := s.freeID()
		s.slots[id] = &slot{id: id}
	}
	for _, sl := range s.activeSlots() {
		if sl.cur == nil && !now.Before(sl.respawnAt) {
			if !s.affords() {
				return
			}
			s.spawnInto(sl, false)
		}
	}
}

// swapReady makes each healthy replacement its slot's serving process and
// drains the process it replaces: the replacement is healthy before the
// old one leaves rotation.
func (s *Supervisor) swapReady() {
	for _, sl := range s.slots {
		if sl.next == nil || !sl.next.ready {
			continue
		}
		old := sl.cur
		sl.cur, sl.next = sl.next, nil
		cause := old.replaceCause()
		if old.recycle != "" {
			sl.lastRecycle = time.Now()
		}
		sl.restarts++
		sl.cause = cause
		s.restarts.add(cause)
		sl.retire(old)
		s.drain(old.up)
		s.dirty = true
	}
}

// stale reports whether p is to be replaced: it is of an older generation
// than the target, or marked for recycling.
func (s *Supervisor) stale(p *proc) bool {
	return p.gen < s.target.gen || p.recycle != ""
}

// replaceStale starts a replacement for the first stale serving process,
// by slot id, unless a replacement is starting already: one at a time, so
// serving workers never drop below the target count, and one start at a
// time takes the memory and CPU a start needs. It waits while the database
// budget has no room for the replacement (a drained worker still exiting).
func (s *Supervisor) replaceStale() {
	if s.replacing() {
		return
	}
	for _, sl := range s.activeSlots() {
		if sl.cur != nil && s.stale(sl.cur) {
			if s.affords() {
				s.spawnInto(sl, true)
			}
			return
		}
	}
}

// replacing reports whether a replacement is starting in any slot.
func (s *Supervisor) replacing() bool {
	for _, sl := range s.slots {
		if sl.next != nil {
			return true
		}
	}
	return false
}

// replacementFailed ends a replacement that will not serve; the process it
// was to replace serves on. A recycle backs off (recycleFailed); a reload
// stops, and the workers it did not reach are taken as they are, so manage
// does not try them again.
func (s *Supervisor) replacementFailed(sl *slot, err error) {
	p := sl.cur
	if p == nil || sl.retiring {
		return
	}
	if p.recycle != "" {
		s.recycleFailed(p, err)
	}
	if p.gen >= s.target.gen {
		return
	}
	s.log.Error("reload stopped: replacement not healthy, old worker keeps serving", "worker_id", sl.id, "error", err)
	for _, o := range s.slots {
		if o.cur != nil {
			o.cur.gen = s.target.gen
		}
	}
	if s.op != nil && s.op.kind == opReload {
		s.finishOp(fmt.Errorf("replacing worker %d: %w", sl.id, err))
	}
}

// activeSlots lists the slots not being scaled away, by id.
func (s *Supervisor) activeSlots() []*slot {
	var out []*slot
	for _, sl := range s.slots {
		if !sl.retiring {
			out = append(out, sl)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// freeID returns the lowest slot id not in use.
func (s *Supervisor) freeID() int {
	for id := 1; ; id++ {
		if _, used := s.slots[id]; !used {
			return id
		}
	}
}
