package supervisor

import (
	"context"
	"os/exec"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procbal/procbal/balancer/pool"
)

// slot is one stable worker id, a row of the worker table. It holds the
// serving process, a replacement starting to take over once healthy, and
// older processes still draining or stopping. Only the loop touches it.
type slot struct {
	id   int
	cur  *proc // serving, or starting to; nil while a respawn backs off
	next *proc // the replacement of cur; never set while cur is nil
	old  []*proc
	last *pool.Upstream // the most recent process's upstream, for reports
	// retiring is set once the slot is scaled away: it is removed when its
	// processes are gone.
	retiring bool
	// respawnAt is when cur may be spawned again after a crash (backoff).
	respawnAt time.Time
	restarts  int
	crashes   int    // consecutive crashes of short-lived processes
	cause     string // why the last restart happened
	// recycles counts recycles in a row that back off: memory recycles
	// and failed replacements less than StablePeriod apart.
	recycles    int
	lastRecycle time.Time // when the last recycle ended, swapped or failed
	// lastExit and lastOutput describe the latest process that ended
	// without being asked to, for /admin/workers.
	lastExit   string
	lastOutput string
	loopLogged time.Time // when the crash loop error was last logged
}

// proc is one worker process.
type proc struct {
	slot *slot
	// gen is the target generation it was started for: a reload bumps the
	// target's, and manage replaces the processes left behind.
	gen     int
	cmd     *exec.Cmd
	pid     int
	up      *pool.Upstream
	log     hclog.Logger
	socket  string
	report  string
	started time.Time
	ready   bool
	// recycle is the restart cause it is to be replaced for
	// (CauseMemory, CauseMaxRequests); empty while it is not.
	recycle  string
	stopping bool      // we asked it to stop; its exit is no crash
	killAt   time.Time // when a stopping process gets SIGKILL
	grace    time.Duration
	killed   bool // we sent it SIGKILL
	exited   bool
	cancel   context.CancelFunc // stops its health checker
	// maxRequests is this process's MAX_REQUESTS with jitter; 0 is off.
	maxRequests uint64
	// stdout and stderr hold the last line the process wrote to each.
	stdout, stderr lastLine
	db             dbShare // its share of DB_MAX_CONNS (dbshare.go)
}

// lastOutput returns the last line the process wrote to stderr, where
// programs say why they fail, else to stdout. The two streams are relayed
// apart, so which of them was written last is not known.
func (p *proc) lastOutput() string {
	if s := p.stderr.String(); s != "" {
		return s
	}
	return p.stdout.String()
}

// replaceCause is the restart cause of a swap that replaces p.
func (p *proc) replaceCause() string {
	if p.recycle != "" {
		return p.recycle
	}
	return CauseReload
}

// procs lists every live process of the slot.
func (sl *slot) procs() []*proc {
	var ps []*proc
	if sl.cur != nil {
		ps = append(ps, sl.cur)
	}
	if sl.next != nil {
		ps = append(ps, sl.next)
	}
	return append(ps, sl.old...)
}

// forget removes p from the slot.
func (sl *slot) forget(p *proc) {
	switch p {
	case sl.cur:
		sl.cur = nil
	case sl.next:
		sl.next = nil
	}
	for i, o := range sl.old {
		if o == p {
			sl.old = append(sl.old[:i], sl.old[i+1:]...)
			break
		}
	}
}

// retire moves p from cur or next into the old list.
func (sl *slot) retire(p *proc) {
	sl.forget(p)
	sl.old = append(sl.old, p)
}

// promote makes a starting replacement the serving process once cur is
// gone: it serves as soon as it is healthy, and no respawn is needed.
func (sl *slot) promote() {
	if sl.cur == nil && sl.next != nil {
		sl.cur, sl.next = sl.next, nil
	}
}

// crashLoopAt is the number of short-lived crashes in a row that make a
// crash loop: the respawns back off from the second one (as Kubernetes'
// CrashLoopBackOff does).
const crashLoopAt = 2

// crashLooping reports whether the slot's processes keep failing and none
// serves.
func (sl *slot) crashLooping() bool {
	return sl.crashes >= crashLoopAt && (sl.cur == nil || !sl.cur.ready)
}

// backoff returns the wait before respawning after n crashes in a row, or
// before the next recycle after n recycles that back off: none for the
// first, then 100ms doubling up to 30s.
func backoff(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	const base, ceiling = 100 * time.Millisecond, 30 * time.Second
	if n > 20 {
		return ceiling
	}
	return min(base<<(n-2), ceiling)
}
