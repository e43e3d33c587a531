package supervisor

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/procbal/procbal/balancer/pool"
)

// ErrBusy is returned when a scale or reload is asked for while another is
// running. Overlapping operations are refused, not queued: the operator
// sees at once that the first one still runs (the admin API answers 409).
var ErrBusy = errors.New("a scale or reload is already running")

// waiter is closed by publish once cond holds.
type waiter struct {
	cond func() bool
	done chan struct{}
}

// waitFor returns a channel closed once cond holds on the loop.
func (s *Supervisor) waitFor(cond func() bool) chan struct{} {
	w := waiter{cond: cond, done: make(chan struct{})}
	if cond() {
		close(w.done)
	} else {
		s.waiters = append(s.waiters, w)
	}
	return w.done
}

// checkWaiters closes the waiters whose condition now holds.
func (s *Supervisor) checkWaiters() {
	kept := s.waiters[:0]
	for _, w := range s.waiters {
		if w.cond() {
			close(w.done)
		} else {
			kept = append(kept, w)
		}
	}
	s.waiters = kept
}

// Active returns the number of local worker slots that are not being
// scaled away. Safe for concurrent use.
func (s *Supervisor) Active() int {
	n := 0
	for _, v := range s.Workers() {
		if v.Upstream.Kind == pool.Local && !v.Retiring {
			n++
		}
	}
	return n
}

// exclusive runs start on the loop unless another operation runs, then
// waits for the channel it returns, and frees the supervisor again.
func (s *Supervisor) exclusive(ctx context.Context, start func() (<-chan error, error)) error {
	var result <-chan error
	err := s.call(ctx, func() error {
		if s.stopping {
			return ErrStopping
		}
		if s.busy {
			return ErrBusy
		}
		var err error
		if result, err = start(); err == nil {
			s.busy = true
		}
		return err
	})
	if err != nil {
		return err
	}
	defer s.send(func() { s.busy = false })
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return ErrStopping
	}
}

// Scale starts or drains local workers until n serve. It returns once the
// new workers are healthy, or the extra ones are out of rotation (their
// requests still finish, up to DrainTimeout, before they stop).
func (s *Supervisor) Scale(ctx context.Context, n int) error {
	return s.exclusive(ctx, func() (<-chan error, error) {
		res := make(chan error, 1)
		done := s.scaleTo(n)
		go func() { <-done; res <- nil }()
		return res, nil
	})
}

// scaleTo converges on n serving slots and returns a channel closed when
// every slot kept or added has a healthy process.
func (s *Supervisor) scaleTo(n int) chan struct{} {
	active := s.activeSlots()
	s.want = n
	for i := len(active); i < n; i++ {
		s.startSlot(s.freeID())
	}
	if len(active) > n {
		s.retireOldest(active, len(active)-n)
	}
	s.log.Info("scaling", "from", len(active), "to", n)
	s.publish()
	return s.waitFor(func() bool {
		for _, sl := range s.activeSlots() {
			if sl.cur == nil || !sl.cur.ready {
				return false
			}
		}
		return true
	})
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

// retireOldest drains the k slots whose serving process is oldest.
func (s *Supervisor) retireOldest(active []*slot, k int) {
	sort.SliceStable(active, func(i, j int) bool { return startedAt(active[i]).Before(startedAt(active[j])) })
	for _, sl := range active[:k] {
		sl.retiring = true
		if sl.respawn != nil {
			sl.respawn.Stop()
		}
		if p := sl.next; p != nil {
			sl.retire(p)
			s.stop(p, 0)
			s.swapFailed(sl, errors.New("slot scaled away"))
		}
		if p := sl.cur; p != nil {
			sl.retire(p)
			s.drain(p)
		}
		if len(sl.procs()) == 0 {
			delete(s.slots, sl.id)
		}
	}
}

func startedAt(sl *slot) time.Time {
	if sl.cur != nil {
		return sl.cur.started
	}
	return time.Time{} // no process: retire it first
}

// Reload replaces every worker, one at a time: each replacement runs
// whatever WORKER_CMD is on disk now and must be healthy before the old
// process drains. A replacement that fails stops the reload and the old
// process keeps serving.
func (s *Supervisor) Reload(ctx context.Context) error {
	return s.exclusive(ctx, func() (<-chan error, error) {
		res := make(chan error, 1)
		ids := []int{}
		for _, sl := range s.activeSlots() {
			ids = append(ids, sl.id)
		}
		s.log.Info("rolling reload", "workers", len(ids))
		s.reloadNext(ids, res)
		return res, nil
	})
}

// reloadNext replaces the first slot in ids, then the rest.
func (s *Supervisor) reloadNext(ids []int, res chan<- error) {
	for len(ids) > 0 {
		sl := s.slots[ids[0]]
		ids = ids[1:]
		if sl == nil || sl.retiring {
			continue
		}
		s.replace(sl, CauseReload, func(err error) {
			if err != nil {
				s.log.Error("reload stopped: replacement not healthy, old worker keeps serving", "worker_id", sl.id, "error", err)
				res <- fmt.Errorf("replacing worker %d: %w", sl.id, err)
				return
			}
			s.reloadNext(ids, res)
		})
		return
	}
	s.log.Info("rolling reload done")
	res <- nil
}

// replace starts a replacement for sl's process; once it is healthy it
// serves and the old process drains. then, if not nil, learns the outcome.
// When a replacement is already starting, then waits for that one: it runs
// the same WORKER_CMD. Only the loop calls it.
func (s *Supervisor) replace(sl *slot, cause string, then func(error)) {
	if sl.next != nil {
		prev := sl.onSwap
		sl.onSwap = func(err error) {
			if prev != nil {
				prev(err)
			}
			if then != nil {
				then(err)
			}
		}
		return
	}
	sl.onSwap = func(err error) {
		if err == nil {
			sl.cause = cause
			s.restarts.add(cause)
		}
		if then != nil {
			then(err)
		}
	}
	s.spawnInto(sl, true)
}
