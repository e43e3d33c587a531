package supervisor

import (
	"context"
	"errors"

	"github.com/procbal/procbal/balancer/pool"
)

// ErrBusy is returned when a scale or reload is asked for while another is
// running. Overlapping operations are refused, not queued: the operator
// sees at once that the first one still runs (the admin API answers 409).
var ErrBusy = errors.New("a scale or reload is already running")

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

// Scale sets the target to n local workers. It returns once every worker
// kept or added is healthy, or the extra ones are out of rotation (their
// requests still finish, up to DrainTimeout, before they stop). When ctx
// ends first the target stays and the workers still converge on it. With
// DBShares, n+1 above DBMaxConns is refused with ErrDBBudget: every worker
// needs a connection, and a replacement one more.
func (s *Supervisor) Scale(ctx context.Context, n int) error {
	n = max(n, 0)
	if err := s.checkBudget(n); err != nil {
		return err
	}
	return s.do(ctx, opRequest{kind: opScale, n: n})
}

// Reload bumps the target generation: every worker is replaced, one at a
// time, by one running whatever WORKER_CMD is on disk now, which must be
// healthy before the old process drains. It returns once every worker is
// of the new generation and healthy (a slot in a crash loop does not hold
// it up). A replacement that fails stops the reload, with an error naming
// the worker, and the old process keeps serving. When ctx ends first the
// rollout goes on.
func (s *Supervisor) Reload(ctx context.Context) error {
	return s.do(ctx, opRequest{kind: opReload})
}

// do hands op to the loop and waits for its answer.
func (s *Supervisor) do(ctx context.Context, op opRequest) error {
	op.ctx, op.reply = ctx, make(chan error, 1)
	select {
	case s.ops <- op:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return ErrStopping
	}
	select {
	case err := <-op.reply:
		return err
	case <-ctx.Done():
		return ctx.Err() // the loop sees it at its next tick and frees the slot
	case <-s.done:
		return ErrStopping
	}
}

// begin starts an operation by changing the target, unless one runs.
func (s *Supervisor) begin(op opRequest) {
	switch {
	case s.stopping:
		op.reply <- ErrStopping
		return
	case s.op != nil:
		op.reply <- ErrBusy
		return
	}
	s.op = &op
	if op.kind == opReload {
		s.target.gen++
		s.log.Info("rolling reload", "workers", len(s.activeSlots()), "generation", s.target.gen)
		return
	}
	s.log.Info("scaling", "from", len(s.activeSlots()), "to", op.n)
	s.target.count = op.n
}

// checkOp ends the running operation once the table matches its target,
// or once its caller gave up.
func (s *Supervisor) checkOp() {
	switch {
	case s.op == nil:
	case s.op.ctx.Err() != nil:
		s.finishOp(s.op.ctx.Err())
	case s.op.kind == opScale && s.converged():
		s.finishOp(nil)
	case s.op.kind == opReload && s.rolled():
		s.log.Info("rolling reload done")
		s.finishOp(nil)
	}
}

// finishOp ends the running operation, if any, and frees the way for the
// next. Its caller gets err at the end of the manage step (answer), once
// the table it leaves is published.
func (s *Supervisor) finishOp(err error) {
	if s.op != nil {
		s.answers = append(s.answers, answer{s.op.reply, err})
		s.op = nil
	}
}

// answer is an operation's outcome, held until the end of a manage step.
type answer struct {
	reply chan<- error
	err   error
}

// answer sends the outcomes of the operations that ended in this step.
func (s *Supervisor) answer() {
	for _, a := range s.answers {
		a.reply <- a.err // never blocks: reply has room for one answer
	}
	s.answers = s.answers[:0]
}

// converged reports whether every slot kept serves a healthy process.
func (s *Supervisor) converged() bool {
	for _, sl := range s.activeSlots() {
		if sl.cur == nil || !sl.cur.ready {
			return false
		}
	}
	return true
}

// rolled reports whether every slot serves a healthy process of the
// target generation and no replacement is starting. A slot without a
// serving process (a crash backing off) does not hold a reload up: its
// next process is of the target generation.
func (s *Supervisor) rolled() bool {
	for _, sl := range s.activeSlots() {
		if sl.next != nil || (sl.cur != nil && (sl.cur.gen < s.target.gen || !sl.cur.ready)) {
			return false
		}
	}
	return true
}
