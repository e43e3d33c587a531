package supervisor

import (
	"time"

	"github.com/procbal/procbal/balancer/pool"
)

// drain takes u out of rotation; checkDrains ends it once its requests are
// done, or DrainTimeout has passed. It is the one drain for a local worker
// (replaced or scaled away) and a remote upstream (its address gone).
func (s *Supervisor) drain(u *pool.Upstream) {
	u.SetState(pool.Draining)
	s.draining[u] = time.Now().Add(s.cfg.DrainTimeout)
	if p := s.procOf(u); p != nil {
		p.log.Info("draining worker", "inflight", u.Inflight())
	}
}

// checkDrains ends the drains whose upstream is idle or whose time is up.
// Acquire counts a request before it checks the state, so a drain that
// sees none in flight after Draining was set cannot miss one starting.
func (s *Supervisor) checkDrains(now time.Time) {
	for u, until := range s.draining {
		left := u.Inflight()
		if left > 0 && now.Before(until) {
			continue
		}
		delete(s.draining, u)
		if left > 0 {
			s.log.Warn("drain timeout, stopping with requests in flight", "id", u.ID, "upstream", u.Address, "inflight", left)
		}
		s.drained(u)
	}
}

// drained ends a drain: a local worker is stopped (SIGTERM, then SIGKILL
// after StopGrace), a remote upstream forgotten.
func (s *Supervisor) drained(u *pool.Upstream) {
	if p := s.procOf(u); p != nil {
		s.stop(p, s.cfg.StopGrace)
		return
	}
	s.dropRemote(u)
}
