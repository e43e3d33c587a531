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

// startSlot creates slot id and spawns its first worker.
func (s *Supervisor) startSlot(id int) *slot {
	sl := &slot{id: id}
	s.slots[id] = sl
	s.spawnInto(sl, false)
	return sl
}

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
	s.publish()
}

// spawnFailed handles a worker that could not be started: a replacement's
// failure ends its swap; a serving process's is a crash that backs off.
func (s *Supervisor) spawnFailed(sl *slot, err error, replacement bool) {
	if replacement {
		s.log.Error("starting worker failed", "worker_id", sl.id, "error", err)
		s.swapFailed(sl, err)
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
	s.scheduleRespawn(sl)
	s.publish()
}

// onReady admits a worker that answered its first health probe.
func (s *Supervisor) onReady(u *pool.Upstream) {
	select {
	case <-s.readyCh:
	default:
		close(s.readyCh)
	}
	p := s.procs[u]
	if p == nil || p.exited || p.stopping {
		return
	}
	sl := p.slot
	args := []any{"after", time.Since(p.started).Round(time.Millisecond)}
	if sl.crashLooping() {
		args = append(args, "crashes_before", sl.crashes) // the crash loop is over
	}
	p.ready = true
	p.log.Info("worker ready", args...)
	if p == sl.next {
		s.swap(sl)
		s.checkRecycle() // the next slot's turn
	}
	s.retireSpent()
	s.publish()
}

// swap makes the healthy replacement the slot's serving process and drains
// the process it replaces.
func (s *Supervisor) swap(sl *slot) {
	old := sl.cur
	sl.cur, sl.next = sl.next, nil
	sl.restarts++
	if old != nil {
		sl.old = append(sl.old, old)
		s.drain(old)
	}
	if f := sl.onSwap; f != nil {
		sl.onSwap = nil
		f(nil)
	}
}

// swapFailed ends a replacement that will not become healthy; the serving
// process stays.
func (s *Supervisor) swapFailed(sl *slot, err error) {
	if f := sl.onSwap; f != nil {
		sl.onSwap = nil
		f(err)
	}
}

// onUnhealthy replaces a worker that stopped answering its health checks:
// out of rotation (the checker did that), SIGTERM, SIGKILL after a grace,
// and a new process in its slot at once.
func (s *Supervisor) onUnhealthy(u *pool.Upstream) {
	p := s.procs[u]
	if p == nil || p.exited || p.stopping || s.stopping {
		return
	}
	sl := p.slot
	p.log.Warn("worker unhealthy, replacing it")
	if p == sl.next {
		sl.retire(p)
		s.stop(p, s.cfg.StopGrace)
		s.swapFailed(sl, errors.New("replacement became unhealthy"))
		return
	}
	sl.retire(p)
	s.stop(p, s.cfg.StopGrace)
	sl.restarts++
	sl.cause = CauseUnhealthy
	s.restarts.add(CauseUnhealthy)
	if !sl.retiring {
		s.spawnInto(sl, false)
	}
	s.publish()
}

// onStartTimeout kills a worker that did not answer in time.
func (s *Supervisor) onStartTimeout(p *proc) {
	if p.ready || p.exited || p.stopping {
		return
	}
	p.log.Error("worker not healthy within start timeout, killing it", "timeout", s.cfg.StartTimeout)
	s.signal(p, syscall.SIGKILL)
}

// drain takes p out of rotation, waits for its requests to finish (up to
// DrainTimeout), then stops it.
func (s *Supervisor) drain(p *proc) {
	p.up.SetState(pool.Draining)
	p.log.Info("draining worker", "inflight", p.up.Inflight())
	deadline := time.Now().Add(s.cfg.DrainTimeout)
	go func() {
		for p.up.Inflight() > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		s.send(func() {
			if left := p.up.Inflight(); left > 0 {
				p.log.Warn("drain timeout, stopping worker with requests in flight", "inflight", left)
			}
			s.stop(p, s.cfg.StopGrace)
		})
	}()
}

// stop sends SIGTERM and, if p is still running after grace, SIGKILL.
func (s *Supervisor) stop(p *proc, grace time.Duration) {
	if p.exited || p.stopping {
		return
	}
	p.stopping = true
	s.signal(p, syscall.SIGTERM)
	p.killTimer = s.after(max(grace, 0), func() {
		if !p.exited {
			p.log.Warn("worker did not stop in time, killing it", "grace", grace)
			s.signal(p, syscall.SIGKILL)
		}
	})
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

// onExit reaps a worker: classifies the exit, frees its socket, and
// respawns it when it was serving and nobody asked it to stop.
func (s *Supervisor) onExit(p *proc, err error) {
	p.exited = true
	p.up.SetState(pool.Stopped)
	p.cancel()
	if p.killTimer != nil {
		p.killTimer.Stop()
	}
	delete(s.procs, p.up)
	os.Remove(p.socket)
	os.Remove(p.report)
	sl := p.slot
	wasCur, wasNext := p == sl.cur, p == sl.next
	sl.forget(p)
	if !p.stopping && !s.stopping {
		sl.lastExit, sl.lastOutput = exitText(err), p.lastOutput()
	}
	switch {
	case s.stopping:
		s.logExit(p, err, false)
	case wasNext:
		s.logExit(p, err, false)
		s.swapFailed(sl, errors.New("replacement exited before it was healthy"))
	case wasCur && !p.stopping:
		s.crashed(sl, p, err)
	default:
		s.logExit(p, err, false)
	}
	if sl.retiring && len(sl.procs()) == 0 {
		delete(s.slots, sl.id)
	}
	s.publish()
	s.checkStopped()
}

// crashed logs the exit of a serving worker that died and schedules its
// respawn. In a crash loop each failed boot is logged at debug, and the
// loop as one error a minute; a worker that got to serve before it died
// is always logged, as the backoff bounds how often that can happen.
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
	if !sl.retiring {
		s.scheduleRespawn(sl)
	}
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

func (s *Supervisor) scheduleRespawn(sl *slot) {
	d := backoff(sl.crashes)
	if d > 0 {
		s.log.Debug("respawning worker after backoff", "worker_id", sl.id, "backoff", d, "crashes", sl.crashes)
	}
	if sl.respawn != nil {
		sl.respawn.Stop()
	}
	sl.respawn = s.after(d, func() {
		sl.respawn = nil
		if s.stopping || sl.retiring || sl.cur != nil || s.slots[sl.id] != sl {
			return
		}
		s.spawnInto(sl, false)
	})
}
