package storetest

import (
	"context"
	"sync"
	"testing"
	"time"
)

// The servers a test binary shares, started on first use.
var shared struct {
	mu     sync.Mutex
	pg     *Postgres
	pgErr  error
	rd     *Redis
	rdErr  error
	closed bool
}

// SharedPostgres returns the test binary's PostgreSQL, starting it on
// first use; it fails t when it cannot be started. Tests must not stop it:
// use NewPostgres for that.
func SharedPostgres(t testing.TB) *Postgres {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.pg == nil && shared.pgErr == nil && !shared.closed {
		shared.pg, shared.pgErr = NewPostgres()
	}
	if shared.pg == nil {
		t.Fatalf("starting PostgreSQL: %v", shared.pgErr)
	}
	return shared.pg
}

// SharedRedis returns the test binary's Redis, as SharedPostgres does.
func SharedRedis(t testing.TB) *Redis {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.rd == nil && shared.rdErr == nil && !shared.closed {
		shared.rd, shared.rdErr = NewRedis()
	}
	if shared.rd == nil {
		t.Fatalf("starting Redis: %v", shared.rdErr)
	}
	return shared.rd
}

// Database creates an empty database on the shared PostgreSQL and returns
// its URL.
func Database(t testing.TB) string {
	t.Helper()
	pg := SharedPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url, err := pg.CreateDatabase(ctx)
	if err != nil {
		t.Fatalf("creating a database: %v", err)
	}
	return url
}

// PrivatePostgres starts a PostgreSQL for t alone (to stop and start it),
// closed when t ends.
func PrivatePostgres(t testing.TB) *Postgres {
	t.Helper()
	pg, err := NewPostgres()
	if err != nil {
		t.Fatalf("starting PostgreSQL: %v", err)
	}
	t.Cleanup(pg.Close)
	return pg
}

// PrivateRedis starts a Redis for t alone, closed when t ends.
func PrivateRedis(t testing.TB) *Redis {
	t.Helper()
	rd, err := NewRedis()
	if err != nil {
		t.Fatalf("starting Redis: %v", err)
	}
	t.Cleanup(rd.Close)
	return rd
}

// CloseShared stops the shared servers and removes their files. TestMain
// calls it after m.Run, so they stop when tests fail too.
func CloseShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.closed = true
	if shared.pg != nil {
		shared.pg.Close()
	}
	if shared.rd != nil {
		shared.rd.Close()
	}
}
