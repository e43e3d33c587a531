package supervisor

import (
	"context"
	"errors"
	"fmt"
)

// An operator's recycle (POST /admin/recycle, `balancer ctl recycle ID`):
// one local worker is replaced as MAX_REQUESTS and MAX_MEMORY_RESTART_MB
// replace theirs, replacement first. The request is a typed message to the
// loop (recycleRequest); the loop marks the serving process (markRecycle),
// manage starts and swaps in its replacement as it does for any stale
// process (replaceStale, swapReady), and checkRecycles answers once the
// replacement serves, or once it failed and the old process serves on.

// ErrNoWorker is returned by Recycle for an id that names no local worker
// slot (a remote upstream, or a slot being scaled away).
var ErrNoWorker = errors.New("no such local worker")

// ErrNotServing is returned by Recycle for a slot with no healthy serving
// process to replace (starting, crashed, or already being replaced).
var ErrNotServing = errors.New("worker is not serving")

type (
	// recycleRequest asks the loop to recycle slot id. The loop answers on
	// reply, which has room for the answer, once the replacement serves,
	// failed, or ctx ended.
	recycleRequest struct {
		id    int
		ctx   context.Context
		reply chan error
	}
	// pendingRecycle is a recycle the loop has begun: old is the process
	// marked for replacement.
	pendingRecycle struct {
		recycleRequest
		old *proc
	}
)

// Recycle replaces local worker id, replacement first: a new process is
// started in its slot and, once healthy, takes over while the old one
// drains. It returns once the replacement serves; with an error when id
// names no local worker (ErrNoWorker), the worker has no healthy process
// to replace or a replacement is starting there already (ErrNotServing),
// a scale or reload runs (ErrBusy), the replacement failed (the old
// process serves on), or ctx ended first (the recycle goes on).
func (s *Supervisor) Recycle(ctx context.Context, id int) error {
	r := recycleRequest{id: id, ctx: ctx, reply: make(chan error, 1)}
	select {
	case s.recycleQ <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return ErrStopping
	}
	select {
	case err := <-r.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return ErrStopping
	}
}

// beginRecycle marks the serving process of slot r.id for replacement, or
// answers at once why it cannot.
func (s *Supervisor) beginRecycle(r recycleRequest) {
	sl := s.slots[r.id]
	switch {
	case s.stopping:
		r.reply <- ErrStopping
		return
	case sl == nil || sl.retiring:
		r.reply <- fmt.Errorf("worker %d: %w", r.id, ErrNoWorker)
		return
	case s.op != nil:
		r.reply <- ErrBusy
		return
	case sl.next != nil || (sl.cur != nil && s.stale(sl.cur)):
		r.reply <- fmt.Errorf("worker %d: %w: a replacement is starting already", r.id, ErrNotServing)
		return
	case sl.cur == nil || !sl.cur.ready || sl.cur.stopping:
		r.reply <- fmt.Errorf("worker %d: %w: no healthy process to replace", r.id, ErrNotServing)
		return
	}
	s.markRecycle(sl.cur, CauseManual, "asked for")
	s.recycling = append(s.recycling, pendingRecycle{recycleRequest: r, old: sl.cur})
}

// checkRecycles answers the operators' recycles that ended; manage runs it
// in every step, and the answers go out with the step's other answers,
// once the table is published.
func (s *Supervisor) checkRecycles() {
	keep := s.recycling[:0]
	for _, r := range s.recycling {
		if err, done := s.recycleOutcome(r); done {
			s.answers = append(s.answers, answer{r.reply, err})
			continue
		}
		keep = append(keep, r)
	}
	clear(s.recycling[len(keep):])
	s.recycling = keep
}

// recycleOutcome reports whether r has ended, and how.
func (s *Supervisor) recycleOutcome(r pendingRecycle) (err error, done bool) {
	sl := r.old.slot
	switch {
	case s.stopping:
		return ErrStopping, true
	case r.ctx.Err() != nil:
		return r.ctx.Err(), true
	case sl.retiring:
		return fmt.Errorf("worker %d was scaled away before its replacement served", r.id), true
	case sl.cur != r.old && sl.cur != nil && sl.cur.ready:
		return nil, true // swapped in (or the old one died and its respawn serves)
	case sl.cur == r.old && r.old.recycle == "":
		// recycleFailed cleared the mark: the replacement did not serve.
		return fmt.Errorf("replacing worker %d: replacement not healthy, the old worker keeps serving", r.id), true
	}
	return nil, false
}
