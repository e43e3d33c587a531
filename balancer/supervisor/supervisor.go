// Package supervisor runs the local worker processes: it spawns them, admits
// each to the pool after its first healthy answer, reaps and classifies
// exits, respawns with backoff, replaces unhealthy workers, scales, rolls
// reloads and stops them all in order. One goroutine, the loop in Run, owns
// the worker table; everything else talks to it through channels, as in
// gunicorn's arbiter.
package supervisor

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procbal/procbal/balancer/pool"
)

// Config is what the supervisor needs from the balancer's settings.
type Config struct {
	// Command and Args start one worker (WORKER_CMD, WORKER_ARGS).
	Command string
	Args    []string
	// Workers is the number of local workers to run at start (MAX_WORKERS).
	Workers int
	// SocketDir holds the worker sockets; it must exist, be private and
	// belong to this supervisor alone: Run removes it, with everything in
	// it, once every worker has stopped.
	SocketDir string
	// HealthPath is handed to workers as HEALTH_PATH.
	HealthPath string
	// StartTimeout bounds the time from spawn to first healthy answer.
	StartTimeout time.Duration
	// DrainTimeout bounds how long a drained worker's requests may run.
	DrainTimeout time.Duration
	// StopGrace is the time between SIGTERM and SIGKILL for a worker that
	// is replaced because it stopped answering.
	StopGrace time.Duration
	// StablePeriod is how long a worker must run for its crash count to be
	// forgiven. If zero, 10s.
	StablePeriod time.Duration
	// MemoryLimitMB, when positive, becomes GOMEMLIMIT in workers.
	MemoryLimitMB int
	// Upstreams are remote upstreams: host:port, a DNS name with port
	// (every address it resolves to, re-resolved every DNSRefresh) or
	// unix:/path.
	Upstreams  []string
	DNSRefresh time.Duration
	// MemoryLog logs every memory sample (ENABLE_MEMORY_MONITORING).
	MemoryLog bool
	// MemoryThresholdMB flags and warns about workers above it; 0 is off.
	MemoryThresholdMB int
	// MaxMemoryMB recycles a worker whose RSS is above it; 0 is off.
	MaxMemoryMB int
	// MaxRequests recycles a worker after this many requests, plus a jitter
	// of up to 10% so workers do not all recycle at once; 0 is off.
	MaxRequests int
	// EnvDeny names variables of the balancer's environment that workers
	// do not inherit (WORKER_ENV_DENY), on top of the balancer's secrets,
	// which they never do (see workerEnv).
	EnvDeny []string
}

// ErrStopping is returned to commands that arrive during shutdown.
var ErrStopping = errors.New("balancer is shutting down")

// Supervisor owns the local workers. Create it with New and run Run.
type Supervisor struct {
	cfg     Config
	pool    *pool.Pool
	checker *pool.Checker
	log     hclog.Logger

	events chan func()
	done   chan struct{}

	// Owned by the loop goroutine.
	slots     map[int]*slot
	procs     map[*pool.Upstream]*proc
	remotes   map[string]*remote
	remoteSeq int
	gen       int
	stopping  bool
	busy      bool // a scale or reload runs
	want      int  // local workers asked for
	waiters   []waiter
	stopped   chan struct{}
	readyCh   chan struct{}
	// limits receives the upstreams whose requests reached MAX_REQUESTS.
	limits chan *pool.Upstream
	// startFailed is closed once every worker failed before any was ready.
	startFailed chan struct{}
	footprint   bool // the memory limit below footprint error was logged

	view     atomic.Pointer[[]WorkerView]
	restarts restartCounts
}

// New returns a Supervisor that publishes its workers into p. checkOpts
// configures the health checker it runs for each worker.
func New(cfg Config, p *pool.Pool, checkOpts pool.CheckOptions, log hclog.Logger) *Supervisor {
	if cfg.StablePeriod <= 0 {
		cfg.StablePeriod = 10 * time.Second
	}
	s := &Supervisor{
		cfg:     cfg,
		pool:    p,
		log:     log,
		events:  make(chan func(), 64),
		done:    make(chan struct{}),
		slots:   map[int]*slot{},
		procs:   map[*pool.Upstream]*proc{},
		remotes: map[string]*remote{},
		readyCh: make(chan struct{}),

		limits:      make(chan *pool.Upstream, 64),
		startFailed: make(chan struct{}),
	}
	s.checker = pool.NewChecker(checkOpts, pool.Hooks{
		Ready:     func(u *pool.Upstream) { s.send(func() { s.onReady(u) }) },
		Unhealthy: func(u *pool.Upstream) { s.send(func() { s.onUnhealthy(u) }) },
		Memory:    s.onMemory,
	}, log.Named("health"))
	s.publish()
	return s
}

// Ready is closed once the first worker is healthy.
func (s *Supervisor) Ready() <-chan struct{} { return s.readyCh }

// Run starts the workers and supervises them until Shutdown has stopped
// them all. It returns nil after a clean shutdown.
func (s *Supervisor) Run() error {
	defer close(s.done)
	s.want = s.cfg.Workers
	for id := 1; id <= s.cfg.Workers; id++ {
		s.startSlot(id)
	}
	s.startRemotes()
	tick := time.NewTicker(recycleCheck)
	defer tick.Stop()
	for {
		select {
		case ev := <-s.events:
			ev()
		case u := <-s.limits:
			s.onRequestLimit(u)
		case <-tick.C:
			s.checkRecycle()
		case <-s.stopped:
			s.log.Info("all workers stopped")
			return os.RemoveAll(s.cfg.SocketDir)
		}
	}
}

// send hands f to the loop. It drops f once the loop has returned.
func (s *Supervisor) send(f func()) {
	select {
	case s.events <- f:
	case <-s.done:
	}
}

// call runs f on the loop and waits for its answer.
func (s *Supervisor) call(ctx context.Context, f func() error) error {
	errc := make(chan error, 1)
	s.send(func() { errc <- f() })
	select {
	case err := <-errc:
		return err
	case <-s.done:
		return ErrStopping
	case <-ctx.Done():
		return ctx.Err()
	}
}

// after runs f on the loop once d has passed.
func (s *Supervisor) after(d time.Duration, f func()) *time.Timer {
	return time.AfterFunc(d, func() { s.send(f) })
}

// Shutdown stops every worker: SIGTERM, then SIGKILL for those still running
// when ctx ends. It returns once all have exited and the socket directory
// is removed.
func (s *Supervisor) Shutdown(ctx context.Context) error {
	err := s.call(context.Background(), func() error {
		s.beginShutdown(ctx)
		return nil
	})
	if err != nil && !errors.Is(err, ErrStopping) {
		return err
	}
	<-s.done
	return nil
}

func (s *Supervisor) beginShutdown(ctx context.Context) {
	if s.stopping {
		return
	}
	s.stopping = true
	s.stopped = make(chan struct{})
	s.log.Info("stopping workers", "workers", len(s.procs))
	s.stopRemotes()
	grace := time.Until(deadline(ctx))
	for _, p := range s.procs {
		p.up.SetState(pool.Stopped)
		s.stop(p, grace)
	}
	s.publish()
	s.checkStopped()
}

func deadline(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(30 * time.Second)
}

// checkStopped ends the loop once shutdown has reaped every worker.
func (s *Supervisor) checkStopped() {
	if s.stopping && len(s.procs) == 0 {
		select {
		case <-s.stopped:
		default:
			close(s.stopped)
		}
	}
}
