package supervisor

import (
	"context"
	"os"
	"time"

	"github.com/procbal/procbal/balancer/pool"
)

// tickEvery is the loop's ticker: the resolution of every deadline it
// keeps (crash and recycle backoffs, start timeouts, SIGKILL after a grace,
// drains) and of its polls (request and memory limits, a caller that gave
// up on a scale or reload). The shortest backoff is 100ms.
const tickEvery = 20 * time.Millisecond

// The loop's messages. Each is handled by one method named for it; none
// carries code to run.
type (
	// exit is a child's end, sent by the goroutine that waited for it.
	exit struct {
		slot, pid int
		err       error
	}
	// healthEvent is the checker's finding about an upstream: its first
	// healthy answer (ready) or, after being healthy, too many failures.
	healthEvent struct {
		up    *pool.Upstream
		ready bool
	}
	// opRequest is a scale (to n local workers) or a reload. The loop
	// answers on reply, which has room for the answer, once the work is
	// done, failed or ctx ended.
	opRequest struct {
		kind  opKind
		n     int
		ctx   context.Context
		reply chan error
	}
	// stopRequest starts the shutdown; workers still running at deadline
	// get SIGKILL.
	stopRequest struct {
		deadline time.Time
	}
	// shareAnswer is a worker's answer to a new share of DB_MAX_CONNS,
	// sent by the goroutine that asked for it (askShare).
	shareAnswer struct {
		up      *pool.Upstream
		max     int // the share asked for
		outcome shareOutcome
		open    int // the connections the worker said it holds
		err     error
	}
)

type opKind int

const (
	opScale opKind = iota
	opReload
)

// Run starts the workers and supervises them until Shutdown has stopped
// them all, then removes the socket directory. It returns nil after a
// clean shutdown. Start is the first manage step, from an empty table.
func (s *Supervisor) Run() error {
	defer close(s.done)
	s.target = target{count: s.cfg.Workers, gen: 1}
	s.manage()
	s.startRemotes()
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	for !s.stopping || len(s.procs) > 0 {
		s.receive(tick.C)
		s.manage()
	}
	s.log.Info("all workers stopped")
	return os.RemoveAll(s.cfg.SocketDir)
}

// receive handles one message, or a tick.
func (s *Supervisor) receive(tick <-chan time.Time) {
	select {
	case e := <-s.exits:
		s.reap(e)
	case h := <-s.health:
		if h.ready {
			s.onReady(h.up)
		} else {
			s.onUnhealthy(h.up)
		}
	case <-s.limits:
		// manage compares every worker's requests with its limit
	case res := <-s.resolved:
		s.applyResolved(res)
	case op := <-s.rs.ops:
		s.upstreamOp(op)
	case op := <-s.ops:
		s.begin(op)
	case st := <-s.stops:
		s.beginShutdown(st)
	case a := <-s.shares:
		s.onShare(a)
	case r := <-s.recycleQ:
		s.beginRecycle(r)
	case <-tick:
		return
	}
	s.dirty = true
}

// notify hands a health event to the loop. It runs on checker goroutines
// and drops the event once the loop has returned.
func (s *Supervisor) notify(h healthEvent) {
	select {
	case s.health <- h:
	case <-s.done:
	}
}

// beginShutdown stops every process and remote upstream; Run returns once
// every process has been reaped.
func (s *Supervisor) beginShutdown(st stopRequest) {
	if s.stopping {
		return
	}
	s.stopping = true
	s.finishOp(ErrStopping)
	s.log.Info("stopping workers", "workers", len(s.procs))
	s.stopRemotes()
	clear(s.draining)
	grace := time.Until(st.deadline)
	for _, p := range s.procs {
		p.up.SetState(pool.Stopped)
		s.stop(p, grace)
	}
}
