package supervisor

// The database connection budget, DB_MAX_CONNS (Config.DBMaxConns), shared
// among the local workers as protocol/dbshare.go describes. Every worker is
// spawned with DB_POOL_MAX set to the share for the target count,
// share(count) = max(1, DBMaxConns / (count+1)): the one left over is room
// for the one replacement a rolling reload or a recycle runs at a time.
//
// With Config.DBShares the loop keeps the shares of every live local
// process (serving, starting, draining or stopping, until it is reaped)
// within DBMaxConns:
//
//   - a spawn (spawnMissing, replaceStale) waits until its share fits;
//   - moveShares lowers every running process above the target share to
//     it, and raises the serving ones below it once the budget allows and
//     no spawn waits, with POST protocol.DBSharePath on their report
//     socket. Each request runs on a goroutine of its own that sends the
//     answer back to the loop (onShare): the loop never waits on a worker;
//   - until a worker confirms a new share (200), it counts as holding the
//     larger of the old and the new one.
//
// So on a scale up the running workers give connections back first and the
// new ones start as the budget allows; on a scale down the workers left get
// more once the retired ones have exited. A rolling reload moves nothing:
// all hold share(count), which leaves room for its replacement, and the next
// replacement waits for a drained worker to exit if the budget needs it. A
// worker that does not serve DBSharePath (not on the worker kit) keeps the
// share it was spawned with, counted, for good.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/shared/protocol"
)

// ErrDBBudget refuses a scale to more local workers than DB_MAX_CONNS gives
// a connection each, with one left for a replacement (the admin API
// answers 422).
var ErrDBBudget = errors.New("DB_MAX_CONNS too small")

const (
	// shareTimeout bounds one request: the worker itself waits up to
	// DBShareWait for busy connections.
	shareTimeout = protocol.DBShareWait + 3*time.Second
	// shareBusyRetry and shareFailRetry space the requests again after a
	// 503 (the worker waited DBShareWait already) and after a failure.
	shareBusyRetry = 50 * time.Millisecond
	shareFailRetry = time.Second
)

// dbShare is one process's share of DB_MAX_CONNS, as the loop knows it.
type dbShare struct {
	// held counts against the budget: the most connections the process
	// may hold, as far as the loop knows.
	held int
	// set is the share the worker runs with: DB_POOL_MAX, then the last
	// one it took (a 200, or a 503: it closes the extras as released).
	set int
	// asked is the share of the request in flight; 0 when none.
	asked int
	// fixed is set once the worker turned out not to serve DBSharePath:
	// it keeps held for good.
	fixed bool
	// retryAt holds the next request back after a 503 or a failure.
	retryAt time.Time
	warned  bool // a failure was logged at warn
}

// counted is what the process counts against the budget: while a new
// share is asked for, the larger of the two.
func (d *dbShare) counted() int { return max(d.held, d.asked) }

// dbWait follows the spawns held back for want of budget, so that a wait
// is logged once.
type dbWait struct {
	now     bool // a spawn was held back in this manage step
	waiting bool // since an earlier step
	stuck   bool // logged that no move under way can end it
}

// shareOutcome classifies a worker's answer to a new share.
type shareOutcome int

const (
	shareOK     shareOutcome = iota // 200: it holds at most the share
	shareBusy                       // 503: the share holds, busy extras still open
	shareAbsent                     // no endpoint: no report socket, 404 or 405
	shareFailed                     // anything else: no answer, 5xx, a bad body
)

// dbShareFor is a worker's share of budget among count workers.
func dbShareFor(budget, count int) int { return max(1, budget/(count+1)) }

// share is a local worker's share of DB_MAX_CONNS for the target count.
func (s *Supervisor) share() int { return dbShareFor(s.cfg.DBMaxConns, s.target.count) }

// dbHeld sums the shares every live local process counts.
func (s *Supervisor) dbHeld() int {
	n := 0
	for _, p := range s.procs {
		n += p.db.counted()
	}
	return n
}

// affords reports whether one more process at the target share fits the
// budget now. A spawn it refuses waits, and moveShares raises no share in
// this step: what is given back goes to the spawn first.
func (s *Supervisor) affords() bool {
	if !s.cfg.DBShares || s.dbHeld()+s.share() <= s.cfg.DBMaxConns {
		return true
	}
	s.dbWait.now = true
	return false
}

// checkBudget refuses a scale to n local workers that the budget cannot
// give a connection each, with one left for a replacement.
func (s *Supervisor) checkBudget(n int) error {
	if !s.cfg.DBShares || n+1 <= s.cfg.DBMaxConns {
		return nil
	}
	return fmt.Errorf("%w for %d local workers: a connection each and one for a replacement need %d, DB_MAX_CONNS is %d",
		ErrDBBudget, n, n+1, s.cfg.DBMaxConns)
}

// moveShares moves the running processes' shares towards the target
// share: it lowers those above it, then raises the serving ones below it
// as far as the budget allows, unless a spawn waits for budget.
func (s *Supervisor) moveShares(now time.Time) {
	if !s.cfg.DBShares {
		return
	}
	want := s.share()
	procs := s.liveProcs()
	for _, p := range procs {
		if s.mayAsk(p, now) && p.db.held > want {
			s.askShare(p, want)
		}
	}
	if !s.dbWait.now {
		for _, p := range procs {
			if !s.mayAsk(p, now) || p.db.set >= want || !serves(p) {
				continue
			}
			if s.dbHeld()+max(0, want-p.db.held) <= s.cfg.DBMaxConns {
				s.askShare(p, want)
			}
		}
	}
	s.logWait(want)
}

// liveProcs lists the live local processes by slot id, then pid.
func (s *Supervisor) liveProcs() []*proc {
	out := make([]*proc, 0, len(s.procs))
	for _, p := range s.procs {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].slot.id != out[j].slot.id {
			return out[i].slot.id < out[j].slot.id
		}
		return out[i].pid < out[j].pid
	})
	return out
}

// serves reports whether p is, or is to become, its kept slot's serving
// process: only those get a larger share.
func serves(p *proc) bool {
	return !p.slot.retiring && (p == p.slot.cur || p == p.slot.next)
}

// mayAsk reports whether p can be asked for a new share now: it is ready
// (its report socket is up), not stopping, serves DBSharePath as far as
// is known, has no request in flight, and no retry backs off.
func (s *Supervisor) mayAsk(p *proc, now time.Time) bool {
	d := &p.db
	return p.ready && !p.stopping && !p.exited && d.asked == 0 && !d.fixed && !now.Before(d.retryAt)
}

// askShare asks p for share k on a goroutine; onShare takes the answer.
func (s *Supervisor) askShare(p *proc, k int) {
	p.db.asked = k
	s.dirty = true
	p.log.Debug("changing the worker's database share", "from", p.db.set, "to", k)
	go func(up *pool.Upstream, socket string) {
		a := postShare(socket, k)
		a.up = up
		select {
		case s.shares <- a:
		case <-s.done:
		}
	}(p.up, p.report)
}

// onShare takes a worker's answer to a new share.
func (s *Supervisor) onShare(a shareAnswer) {
	p := s.procOf(a.up)
	if p == nil || p.db.asked == 0 {
		return // reaped meanwhile
	}
	d := &p.db
	d.asked = 0
	switch a.outcome {
	case shareOK:
		d.held, d.set = a.max, a.max
		p.log.Debug("database share set", "share", a.max, "open", a.open)
	case shareBusy:
		// The new share holds; busy connections beyond it close as they
		// are released. Until the worker says so, it holds the old one.
		d.set, d.held = a.max, max(d.held, a.max)
		d.retryAt = time.Now().Add(shareBusyRetry)
		p.log.Debug("worker still holds connections beyond its new database share, asking again", "share", a.max, "open", a.open)
	case shareAbsent:
		d.fixed = true
		if !p.stopping {
			p.log.Debug("worker does not serve "+protocol.DBSharePath+" on its report socket, it keeps its database share",
				"share", d.held, "error", a.err)
		}
	default:
		d.held = max(d.held, a.max) // it may have taken a raise
		d.retryAt = time.Now().Add(shareFailRetry)
		if !p.stopping {
			level := hclog.Warn
			if d.warned {
				level = hclog.Debug
			}
			d.warned = true
			p.log.Log(level, "changing the worker's database share failed, retrying", "share", a.max, "error", a.err)
		}
	}
}

// logWait logs a spawn held back for want of budget, once when the wait
// begins and, at warn, once when no move under way can end it.
func (s *Supervisor) logWait(want int) {
	w := &s.dbWait
	if !w.now {
		*w = dbWait{}
		return
	}
	w.now = false
	if !w.waiting {
		w.waiting = true
		s.log.Debug("worker start waits for database shares to be given back",
			"held", s.dbHeld(), "budget", s.cfg.DBMaxConns, "share", want)
	}
	if w.stuck || s.dbMoving(want) {
		return
	}
	w.stuck = true
	var fixed []int
	for _, p := range s.liveProcs() {
		if p.db.fixed {
			fixed = append(fixed, p.slot.id)
		}
	}
	s.log.Warn("worker start held back: DB_MAX_CONNS is held by workers that cannot give their database share back",
		"held", s.dbHeld(), "budget", s.cfg.DBMaxConns, "share", want, "workers", fixed)
}

// dbMoving reports whether budget may come free without a new move: a
// request is in flight, a process is stopping or draining, or one above
// the share can still be asked.
func (s *Supervisor) dbMoving(want int) bool {
	for _, p := range s.procs {
		_, draining := s.draining[p.up]
		if p.db.asked > 0 || p.stopping || draining || (!p.db.fixed && p.db.held > want) {
			return true
		}
	}
	return false
}

// postShare sends POST DBSharePath {"max": k} to a report socket.
func postShare(socket string, k int) shareAnswer {
	a := shareAnswer{max: k}
	c := &http.Client{Timeout: shareTimeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "unix", socket)
		},
	}}
	body, _ := json.Marshal(protocol.DBShare{Max: k})
	resp, err := c.Post("http://worker"+protocol.DBSharePath, "application/json", bytes.NewReader(body))
	if err != nil {
		var op *net.OpError
		a.outcome, a.err = shareFailed, err
		if errors.As(err, &op) && op.Op == "dial" {
			a.outcome = shareAbsent
		}
		return a
	}
	defer resp.Body.Close()
	var st protocol.DBShareStatus
	derr := json.NewDecoder(io.LimitReader(resp.Body, 4<<10)).Decode(&st)
	a.open = st.Open
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed:
		a.outcome, a.err = shareAbsent, fmt.Errorf("status %d", resp.StatusCode)
	case derr != nil:
		a.outcome, a.err = shareFailed, fmt.Errorf("status %d, body not a DBShareStatus: %v", resp.StatusCode, derr)
	case resp.StatusCode == http.StatusOK:
		a.outcome = shareOK
	case resp.StatusCode == http.StatusServiceUnavailable:
		a.outcome, a.err = shareBusy, errors.New(st.Error)
	default:
		a.outcome, a.err = shareFailed, fmt.Errorf("status %d: %s", resp.StatusCode, st.Error)
	}
	return a
}
