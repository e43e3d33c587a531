package supervisor

import (
	"errors"
	"os"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procbal/procbal/balancer/pool"
)

// crashLoopLogEvery bounds the crash loop error to one line per slot in
// this time; each try in between is logged at debug.
const crashLoopLogEvery = time.Minute

// spawnInto starts a process for sl, as its serving process or, when
// replacement is true, as the replacement that takes over once healthy.
func (s *Supervisor) spawnInto(sl *slot, replacement bool) {
	p, err := s.spawn(sl)
	if err != nil {
		s.spawnFailed(sl, err, replacement)
		return
	}
	// Before publish: the request path reads what WatchRequests sets.
	p.up.WatchRequests(p.maxRequests, s.limits)
	if replacement {
		sl.next = p
	} else {
		sl.cur = p
	}
	s.dirty = true
}

// spawnFailed handles a worker that could not be started: a replacement's
// failure ends its replacement; a serving process's is a crash that backs
// off.
func (s *Supervisor) spawnFailed(sl *slot, err error, replacement bool) {
	if replacement {
		s.log.Error("starting worker failed", "worker_id", sl.id, "error", err)
		s.replacementFailed(sl, err)
		return
	}
	sl.crashes++
	sl.lastExit, sl.lastOutput = "not started: "+err.Error(), ""
	level := hclog.Error
	if sl.crashLooping() {
		level = hclog.Debug
	}
	s.log.Log(level, "starting worker failed", "worker_id", sl.id, "error", err)
	s.reportCrashLoop(sl)
	s.backOff(sl)
	s.dirty = true
}

// procOf returns the live process behind u, or nil (a remote upstream, or
// a process already reaped).
func (s *Supervisor) procOf(u *pool.Upstream) *proc {
	if p := s.procs[u.PID]; p != nil && p.up == u {
		return p
	}
	return nil
}

// onReady marks a worker that answered its first health probe ready; the
// checker has put it in rotation, and manage swaps in a replacement.
func (s *Supervisor) onReady(u *pool.Upstream) {
	select {
	case <-s.readyCh:
	default:
		close(s.readyCh)
	}
	p := s.procOf(u)
	if p == nil || p.stopping {
		return
	}
	args := []any{"after", time.Since(p.started).Round(time.Millisecond)}
	if p.slot.crashLooping() {
		args = append(args, "crashes_before", p.slot.crashes) // the crash loop is over
	}
	p.ready = true
	p.log.Info("worker ready", args...)
}

// onUnhealthy replaces a serving worker that stopped answering its health
// checks: out of rotation (the checker did that), SIGTERM, SIGKILL after
// a grace, and a new process in its slot at once. Only serving processes
// get here: a replacement serves from its first healthy answer, and
// draining ones are not probed.
func (s *Supervisor) onUnhealthy(u *pool.Upstream) {
	p := s.procOf(u)
	if p == nil || p.stopping || p != p.slot.cur {
		return
	}
	sl := p.slot
	p.log.Warn("worker unhealthy, replacing it")
	sl.retire(p)
	sl.promote()
	s.stop(p, s.cfg.StopGrace)
	sl.restarts++
	sl.cause = CauseUnhealthy
	s.restarts.add(CauseUnhealthy)
}

// checkTimers kills the workers that did not get healthy within
// StartTimeout, and those still running a grace after their SIGTERM.
func (s *Supervisor) checkTimers(now time.Time) {
	for _, p := range s.procs {
		switch {
		case p.killed:
		case p.stopping && !now.Before(p.killAt):
			p.log.Warn("worker did not stop in time, killing it", "grace", p.grace)
			s.signal(p, syscall.SIGKILL)
		case !p.stopping && !p.ready && now.Sub(p.started) >= s.cfg.StartTimeout:
			p.log.Error("worker not healthy within start timeout, killing it", "timeout", s.cfg.StartTimeout)
			s.signal(p, syscall.SIGKILL)
		}
	}
}

// stop sends SIGTERM; checkTimers sends SIGKILL if p still runs after
// grace. Stopping a stopping process again can only bring its SIGKILL
// forward.
func (s *Supervisor) stop(p *proc, grace time.Duration) {
	if p.exited {
		return
	}
	grace = max(grace, 0)
	if at := time.Now().Add(grace); !p.stopping || at.Before(p.killAt) {
		p.killAt, p.grace = at, grace
	}
	if p.stopping {
		return
	}
	p.stopping = true
	s.signal(p, syscall.SIGTERM)
}

// signal sends sig to the worker's process group, so helpers it started
// go too.
func (s *Supervisor) signal(p *proc, sig syscall.Signal) {
	if p.exited {
		return
	}
	if sig == syscall.SIGKILL {
		p.killed = true
	}
	if err := syscall.Kill(-p.pid, sig); err != nil {
		_ = syscall.Kill(p.pid, sig)
	}
}

// reap handles a child's exit: it classifies the exit, frees the socket,
// and when a serving process ended without being asked to, counts a crash
// (manage respawns it, backing off).
func (s *Supervisor) reap(e exit) {
	p := s.procs[e.pid]
	if p == nil || p.slot.id != e.slot {
		return
	}
	sl := p.slot
	wasCur, wasNext := p == sl.cur, p == sl.next
	s.forget(p)
	if !p.stopping && !s.stopping {
		sl.lastExit, sl.lastOutput = exitText(e.err), p.lastOutput()
	}
	switch {
	case s.stopping || p.stopping || (!wasCur && !wasNext):
		s.logExit(p, e.err, false)
	case wasNext:
		s.logExit(p, e.err, false)
		s.replacementFailed(sl, errors.New("replacement exited before it was healthy"))
	default:
		s.crashed(sl, p, e.err)
	}
	s.dropIfEmpty(sl)
}

// forget removes a process that exited from the table and its files.
func (s *Supervisor) forget(p *proc) {
	p.exited = true
	p.up.SetState(pool.Stopped)
	p.cancel()
	delete(s.procs, p.pid)
	delete(s.draining, p.up)
	os.Remove(p.socket)
	os.Remove(p.report)
	p.slot.forget(p)
	p.slot.promote()
}

// crashed counts the crash of a serving worker and backs its respawn off.
// In a crash loop each failed boot is logged at debug, and the loop as one
// error a minute; a worker that got to serve before it died is always
// logged, as the backoff bounds how often that can happen.
func (s *Supervisor) crashed(sl *slot, p *proc, err error) {
	if time.Since(p.started) >= s.cfg.StablePeriod {
		sl.crashes = 0
	}
	sl.crashes++
	sl.restarts++
	sl.cause = CauseCrash
	s.restarts.add(CauseCrash)
	s.logExit(p, err, sl.crashLooping() && !p.ready)
	s.reportCrashLoop(sl)
	s.backOff(sl)
}

// reportCrashLoop logs, at most once a minute per slot, that its worker
// keeps failing: what the last one did and said, and the current backoff.
// gunicorn halts after a worker fails to boot and PM2 gives up after
// max_restarts; we keep trying, backing off, so a fix on disk (or a
// dependency coming up) brings the worker back without an operator.
func (s *Supervisor) reportCrashLoop(sl *slot) {
	if !sl.crashLooping() || time.Since(sl.loopLogged) < crashLoopLogEvery {
		return
	}
	sl.loopLogged = time.Now()
	s.log.Error("worker crash loop, respawning with backoff", "worker_id", sl.id, "crashes", sl.crashes,
		"backoff", backoff(sl.crashes), "last_exit", sl.lastExit, "last_output", sl.lastOutput)
}

// backOff holds the slot's next spawn back after a crash.
func (s *Supervisor) backOff(sl *slot) {
	d := backoff(sl.crashes)
	if d > 0 && sl.cur == nil {
		s.log.Debug("respawning worker after backoff", "worker_id", sl.id, "backoff", d, "crashes", sl.crashes)
	}
	sl.respawnAt = time.Now().Add(d)
}
