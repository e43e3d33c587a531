// Package supervisor runs the local worker processes as gunicorn's arbiter
// does: one goroutine, the loop in Run, owns the worker table and reads
// typed messages (child exits, health events, admin requests, resolved
// addresses, a ticker) from channels. After each one a single step,
// manage, compares the table with a target {count, generation} and acts:
// it spawns missing slots, replaces workers of an old generation one at a
// time (a rolling reload), retires extras, oldest first, and recycles spent
// workers. Start, scale, reload and recycling are that one step with a
// different target or mark. The same step keeps the local workers' shares
// of the database connection budget within it (dbshare.go).
package supervisor

import (
	"context"
	"errors"
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
	// If zero, 30s.
	StartTimeout time.Duration
	// DrainTimeout bounds how long a drained worker's requests may run.
	DrainTimeout time.Duration
	// StopGrace is the time between SIGTERM and SIGKILL for a worker the
	// supervisor stops while the balancer runs (drained, or replaced
	// because it stopped answering). At shutdown the grace is what is left
	// of Shutdown's context.
	StopGrace time.Duration
	// StablePeriod is how long a worker must run for its crash count to be
	// forgiven. If zero, 10s.
	StablePeriod time.Duration
	// MemoryLimitMB, when positive, becomes GOMEMLIMIT in workers.
	MemoryLimitMB int
	// Upstreams are remote upstreams (UPSTREAMS entries, see ParseEntry):
	// host:port, [IPv6]:port, a DNS name with port (every address it
	// resolves to, re-resolved every DNSRefresh, or its TTL when shorter)
	// or unix:/path, each optionally =weight.
	Upstreams []string
	// DNSRefresh is the time between resolutions. If zero, 10s.
	DNSRefresh time.Duration
	// DNSServers ("ip:port") replace the nameservers of /etc/resolv.conf
	// for the names of Upstreams (DNS_SERVER); empty: resolv.conf's.
	DNSServers []string
	// UpstreamsFile, when set, holds the remote set across restarts
	// (UPSTREAMS_FILE): read at start when it exists (Upstreams is then
	// ignored), written from Upstreams when it does not, and rewritten
	// atomically before every change through the upstream API.
	UpstreamsFile string
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
	// DBMaxConns is the PostgreSQL connection budget of all local workers
	// (DB_MAX_CONNS): each is spawned with DB_POOL_MAX set to its share,
	// DBMaxConns / (workers + 1), at least 1; the one left over is room
	// for the replacement a reload or recycle starts. 0: no DB_POOL_MAX.
	// Remote upstreams are outside the budget.
	DBMaxConns int
	// DBShares keeps the shares of every live local process, serving,
	// starting, draining or stopping, within DBMaxConns: shares are
	// lowered through protocol.DBSharePath before workers are added, and
	// raised again once workers are gone (see dbshare.go). Set when the
	// workers have a database (DATABASE_URL); else shares are only
	// handed out.
	DBShares bool
}

// ErrStopping is returned to commands that arrive during shutdown.
var ErrStopping = errors.New("balancer is shutting down")

// Supervisor owns the local workers. Create it with New and run Run; its
// exported methods are safe for concurrent use.
type Supervisor struct {
	cfg     Config
	pool    *pool.Pool
	checker *pool.Checker
	log     hclog.Logger

	// The loop's inputs (see Run), and done, closed when it returns.
	exits    chan exit
	health   chan healthEvent
	limits   chan *pool.Upstream // upstreams whose requests reached MAX_REQUESTS
	resolved chan resolution
	ops      chan opRequest
	stops    chan stopRequest
	shares   chan shareAnswer
	recycleQ chan recycleRequest // operators' recycles (recycleop.go)
	done     chan struct{}

	// Owned by the loop goroutine.
	target    target
	slots     map[int]*slot
	procs     map[int]*proc // by pid
	remotes   []*remote     // by id
	remoteSeq int
	rs        remoteState                  // entries, DNS, the upstream API (remote.go)
	draining  map[*pool.Upstream]time.Time // drain deadlines
	op        *opRequest                   // the scale or reload running
	recycling []pendingRecycle             // operators' recycles not answered yet
	answers   []answer                     // outcomes to send once published
	stopping  bool
	spawned   int  // processes spawned, for unique socket names
	dirty     bool // the table changed since the last publish
	footprint bool // the memory limit below footprint error was logged
	dbWait    dbWait

	readyCh     chan struct{} // closed once the first worker is healthy
	startFailed chan struct{} // closed once every worker failed before any was ready
	view        atomic.Pointer[[]WorkerView]
	restarts    restartCounts
	dbPeak      atomic.Int64 // the most DB_MAX_CONNS held at a publish (DBShares)
}

// New returns a Supervisor that publishes its workers into p. checkOpts
// configures the health checker it runs for each worker.
func New(cfg Config, p *pool.Pool, checkOpts pool.CheckOptions, log hclog.Logger) *Supervisor {
	cfg.defaults()
	s := &Supervisor{
		cfg: cfg, pool: p, log: log,

		exits:    make(chan exit, 16),
		health:   make(chan healthEvent, 64),
		limits:   make(chan *pool.Upstream, 64),
		resolved: make(chan resolution, 1),
		ops:      make(chan opRequest),
		stops:    make(chan stopRequest),
		shares:   make(chan shareAnswer, 16),
		recycleQ: make(chan recycleRequest),
		done:     make(chan struct{}),

		slots:    map[int]*slot{},
		procs:    map[int]*proc{},
		draining: map[*pool.Upstream]time.Time{},

		readyCh:     make(chan struct{}),
		startFailed: make(chan struct{}),
	}
	s.checker = pool.NewChecker(checkOpts, pool.Hooks{
		Ready:     func(u *pool.Upstream) { s.notify(healthEvent{up: u, ready: true}) },
		Unhealthy: func(u *pool.Upstream) { s.notify(healthEvent{up: u}) },
		Memory:    s.onMemory,
	}, log.Named("health"))
	s.initRemotes()
	s.publish()
	return s
}

func (c *Config) defaults() {
	if c.StablePeriod <= 0 {
		c.StablePeriod = 10 * time.Second
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 30 * time.Second
	}
	if c.DNSRefresh <= 0 {
		c.DNSRefresh = 10 * time.Second
	}
	if c.DBMaxConns <= 0 {
		c.DBShares = false
	}
}

// Ready is closed once the first worker is healthy.
func (s *Supervisor) Ready() <-chan struct{} { return s.readyCh }

// Shutdown stops every worker: SIGTERM, then SIGKILL for those still running
// when ctx ends (after 30s without a deadline). It returns once all have
// exited and Run has removed the socket directory.
func (s *Supervisor) Shutdown(ctx context.Context) error {
	select {
	case s.stops <- stopRequest{deadline: deadline(ctx)}:
	case <-s.done:
	}
	<-s.done
	return nil
}

func deadline(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(30 * time.Second)
}
