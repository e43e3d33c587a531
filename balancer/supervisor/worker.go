package supervisor

import (
	"context"
	"os/exec"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procbal/procbal/balancer/pool"
)

// slot is one stable worker id. It holds the serving process, a
// replacement waiting to become healthy, and older processes still draining
// or stopping.
type slot struct {
	id       int
	cur      *proc
	next     *proc
	old      []*proc
	last     *pool.Upstream // the most recent process's upstream, for reports
	restarts int
	crashes  int    // consecutive crashes of short-lived processes
	cause    string // why the last restart happened
	retiring bool   // scaled away: removed once its processes are gone
	respawn  *time.Timer
	// onSwap is called when next replaces cur (nil error) or fails.
	onSwap func(error)
}

// proc is one worker process.
type proc struct {
	slot      *slot
	cmd       *exec.Cmd
	pid       int
	up        *pool.Upstream
	log       hclog.Logger
	socket    string
	report    string
	started   time.Time
	ready     bool
	stopping  bool // we asked it to stop; its exit is no crash
	exited    bool
	cancel    context.CancelFunc // stops its health checker
	killTimer *time.Timer
	// maxRequests is this process's MAX_REQUESTS with jitter; 0 is off.
	maxRequests uint64
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

// backoff returns the wait before respawning after n crashes in a row:
// none for the first, then 100ms doubling up to 30s.
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
