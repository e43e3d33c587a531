package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Defaults of PostgresOptions.
const (
	DefaultPoolMax      = 4
	DefaultQueryTimeout = 800 * time.Millisecond
	// connectTimeout bounds a connection attempt that pgxpool finishes in
	// the background after the query that asked for it gave up, so that an
	// unreachable server cannot hold a pool slot for pgx's default 2 min.
	connectTimeout = 5 * time.Second
)

// PostgresOptions configures OpenPostgres.
type PostgresOptions struct {
	// URL is DATABASE_URL, a libpq URL or keyword/value string.
	URL string
	// MaxConns is the most connections the pool ever holds (DB_POOL_MAX,
	// the worker's share of DB_MAX_CONNS), migrations included. If zero,
	// DefaultPoolMax.
	MaxConns int
	// Timeout is the deadline of every query, waiting for a connection
	// included. If zero, DefaultQueryTimeout.
	Timeout time.Duration
	// Logger receives migration and share lines. If nil, none.
	Logger hclog.Logger
}

// Postgres is the worker's PostgreSQL: a pgx pool that never holds more
// connections than MaxConns, behind a gate that lets at most the current
// share of them be in use at once (SetShare). Safe for concurrent use.
type Postgres struct {
	cfg     *pgxpool.Config
	timeout time.Duration
	log     hclog.Logger

	pool atomic.Pointer[pgPool]
	gate gate

	shareMu  sync.Mutex // serializes SetShare and Close
	retMu    sync.Mutex
	retiring []*pgxpool.Pool // replaced by a larger pool, closing

	migrated atomic.Bool
}

// pgPool is a pgx pool and its MaxConns.
type pgPool struct {
	*pgxpool.Pool
	max int
}

// OpenPostgres parses o.URL and makes the pool. It opens no connection:
// the first query (Migrate, at worker start) does.
func OpenPostgres(o PostgresOptions) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(o.URL)
	if err != nil {
		return nil, err // pgx leaves the password out of the message
	}
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultPoolMax
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultQueryTimeout
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if cfg.ConnConfig.ConnectTimeout <= 0 {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	cfg.MinConns, cfg.MinIdleConns = 0, 0
	db := &Postgres{cfg: cfg, timeout: o.Timeout, log: o.Logger}
	p, err := db.newPool(o.MaxConns)
	if err != nil {
		return nil, err
	}
	db.pool.Store(p)
	db.gate.resize(o.MaxConns)
	return db, nil
}

func (db *Postgres) newPool(maxConns int) (*pgPool, error) {
	cfg := db.cfg.Copy()
	cfg.MaxConns = int32(maxConns)
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	return &pgPool{Pool: p, max: maxConns}, nil
}

// Close closes every connection, waiting for those in use.
func (db *Postgres) Close() {
	db.shareMu.Lock()
	defer db.shareMu.Unlock()
	db.pool.Load().Close()
}

// lease is a connection taken through the gate, and the pool it came from.
type lease struct {
	c *pgxpool.Conn
	p *pgPool
}

// acquire takes a place at the gate, then a connection.
func (db *Postgres) acquire(ctx context.Context) (lease, error) {
	if err := db.gate.acquire(ctx); err != nil {
		return lease{}, err
	}
	for {
		p := db.pool.Load()
		c, err := p.Acquire(ctx)
		if err == nil {
			return lease{c: c, p: p}, nil
		}
		if db.pool.Load() != p && ctx.Err() == nil {
			continue // the pool was replaced by a larger one: take from that
		}
		db.gate.release()
		return lease{}, err
	}
}

// release gives the connection back, or closes it while the worker holds
// more connections than its share (SetShare lowered it).
func (db *Postgres) release(l lease) {
	if lim := db.gate.size(); lim < l.p.max && l.p == db.pool.Load() && db.OpenConns() > lim {
		closeConn(l.c)
	} else {
		l.c.Release()
	}
	db.gate.release()
}

// closeConn takes c out of its pool and closes it at once.
func closeConn(c *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.Hijack().Close(ctx)
}

// run calls fn with a connection, under the query deadline, once the
// schema is migrated; op names the work in errors.
func (db *Postgres) run(ctx context.Context, op string, fn func(context.Context, *pgxpool.Conn) error) error {
	if !db.migrated.Load() {
		return unavailable(op, ErrNotMigrated)
	}
	return db.runTimeout(ctx, db.timeout, op, fn)
}

func (db *Postgres) runTimeout(ctx context.Context, d time.Duration, op string, fn func(context.Context, *pgxpool.Conn) error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	l, err := db.acquire(ctx)
	if err != nil {
		return unavailable(op, fmt.Errorf("getting a connection: %w", err))
	}
	defer db.release(l)
	if err := fn(ctx, l.c); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		return pgFailure(op, err)
	}
	return nil
}

// Ping checks that PostgreSQL answers within d (at most the query
// deadline) and that the schema is migrated.
func (db *Postgres) Ping(ctx context.Context, d time.Duration) error {
	if !db.migrated.Load() {
		return unavailable("pinging", ErrNotMigrated)
	}
	return db.runTimeout(ctx, min(d, db.timeout), "pinging", func(ctx context.Context, c *pgxpool.Conn) error {
		return c.Ping(ctx)
	})
}
