package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/procbal/procbal/worker/store/storetest"
)

// Every test here runs against real servers: storetest's throwaway
// PostgreSQL and Redis, stopped after m.Run even when a test fails.
func TestMain(m *testing.M) {
	code := m.Run()
	storetest.CloseShared()
	os.Exit(code)
}

// openDB opens a migrated Postgres on a fresh database.
func openDB(t *testing.T, url string, maxConns int) *Postgres {
	t.Helper()
	db, err := OpenPostgres(PostgresOptions{URL: url, MaxConns: maxConns, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

// backends counts the server's connections to url's database, from a
// connection of its own to another database.
type backends struct {
	t  *testing.T
	c  *pgx.Conn
	db string
}

func newBackends(t *testing.T, url string) *backends {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	db := cfg.Database
	cfg.Database = "postgres"
	c, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return &backends{t: t, c: c, db: db}
}

func (b *backends) count() int {
	b.t.Helper()
	var n int
	if err := b.c.QueryRow(context.Background(),
		"SELECT count(*) FROM pg_stat_activity WHERE datname = $1", b.db).Scan(&n); err != nil {
		b.t.Fatal(err)
	}
	return n
}

// sample counts backends every 5 ms until stop is closed, and returns the
// most seen.
func (b *backends) sample(stop <-chan struct{}) <-chan int {
	out := make(chan int, 1)
	go func() {
		most := 0
		for {
			var n int
			err := b.c.QueryRow(context.Background(),
				"SELECT count(*) FROM pg_stat_activity WHERE datname = $1", b.db).Scan(&n)
			if err == nil {
				most = max(most, n)
			}
			select {
			case <-stop:
				out <- most
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return out
}

// sleepQuery holds a connection for d, as a slow query would.
func (db *Postgres) sleepQuery(ctx context.Context, d time.Duration) error {
	return db.runTimeout(ctx, d+5*time.Second, "sleeping", func(ctx context.Context, c *pgxpool.Conn) error {
		_, err := c.Exec(ctx, "SELECT pg_sleep($1)", d.Seconds())
		return err
	})
}

// Issue 10: 16 workers migrating the same empty database at once apply
// each migration once, and all of them end up migrated.
func TestMigrateOnceUnderConcurrency(t *testing.T) {
	t.Parallel()
	url := storetest.Database(t)
	const workers = 16
	var applied atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			db, err := OpenPostgres(PostgresOptions{URL: url, MaxConns: 1})
			if err != nil {
				errs <- err
				return
			}
			defer db.Close()
			v, err := db.Migrate(context.Background())
			if err != nil {
				errs <- err
				return
			}
			if !db.Migrated() {
				errs <- errors.New("Migrated() false after Migrate")
			}
			applied.Add(int64(len(v)))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := applied.Load(); got != int64(len(migrations)) {
		t.Fatalf("%d migrations applied in all, want %d (each once)", got, len(migrations))
	}
	db := openDB(t, url, 1) // migrating an up-to-date schema applies nothing
	var rows, distinct int
	err := db.runTimeout(context.Background(), time.Second, "counting", func(ctx context.Context, c *pgxpool.Conn) error {
		return c.QueryRow(ctx, "SELECT count(*), count(DISTINCT version) FROM schema_migrations").Scan(&rows, &distinct)
	})
	if err != nil || rows != len(migrations) || distinct != rows {
		t.Fatalf("schema_migrations: %d rows, %d versions, %v; want %d", rows, distinct, err, len(migrations))
	}
}

// Issue 10: create, read, page through and delete items.
func TestItemsRoundTrip(t *testing.T) {
	t.Parallel()
	db := openDB(t, storetest.Database(t), 2)
	ctx := context.Background()
	var ids []int64
	for i := range 5 {
		it, err := db.CreateItem(ctx, fmt.Sprintf("item %d", i))
		if err != nil {
			t.Fatal(err)
		}
		if it.ID <= 0 || it.CreatedAt.IsZero() || it.CreatedAt.Location() != time.UTC {
			t.Fatalf("created %+v", it)
		}
		ids = append(ids, it.ID)
	}
	got, err := db.Item(ctx, ids[2])
	if err != nil || got.Name != "item 2" {
		t.Fatalf("Item(%d) = %+v, %v", ids[2], got, err)
	}
	var seen []int64
	after, more := int64(0), true
	for more {
		var page []Item
		page, more, err = db.Items(ctx, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page {
			seen = append(seen, it.ID)
		}
		if len(page) > 0 {
			after = page[len(page)-1].ID
		}
	}
	if fmt.Sprint(seen) != fmt.Sprint(ids) {
		t.Fatalf("pages gave %v, want %v", seen, ids)
	}
	if err := db.DeleteItem(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteItem(ctx, ids[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting twice: %v, want ErrNotFound", err)
	}
	if _, err := db.Item(ctx, ids[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("reading a deleted item: %v, want ErrNotFound", err)
	}
}

// Issue 10: the pool never holds more than MaxConns (DB_POOL_MAX)
// connections, however many queries want one.
func TestPoolNeverExceedsMaxConns(t *testing.T) {
	t.Parallel()
	url := storetest.Database(t)
	db := openDB(t, url, 3)
	b := newBackends(t, url)
	stop := make(chan struct{})
	most := b.sample(stop)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if err := db.sleepQuery(context.Background(), 50*time.Millisecond); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	close(stop)
	if n := <-most; n > 3 || n == 0 {
		t.Fatalf("%d connections seen at once, want 1 to 3", n)
	}
	if n := db.OpenConns(); n > 3 {
		t.Fatalf("pool holds %d connections, want at most 3", n)
	}
}

// Issue 10: lowering the share closes idle connections beyond it at once,
// closes busy ones as they are released, and from then on no more than
// the share are in use, though the pool could hold more.
func TestSetShareShrinks(t *testing.T) {
	t.Parallel()
	url := storetest.Database(t)
	db := openDB(t, url, 4)
	b := newBackends(t, url)
	ctx := context.Background()
	// Four connections, two of them busy for 300 ms.
	hold(t, db, 4, 200*time.Millisecond)
	if n := db.OpenConns(); n != 4 {
		t.Fatalf("%d open, want 4 idle", n)
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { db.sleepQuery(ctx, 300*time.Millisecond) })
	}
	waitFor(t, "2 busy connections", func() bool { return db.pool.Load().Stat().AcquiredConns() == 2 })
	start := time.Now()
	open, err := db.SetShare(1, 2*time.Second)
	if err != nil || open > 1 {
		t.Fatalf("SetShare(1) = %d, %v", open, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("SetShare took %s, want about the 300 ms the busy queries had left", d)
	}
	wg.Wait()
	// The server ends a backend a moment after its client closed it.
	waitFor(t, "at most 1 connection on the server", func() bool { return b.count() <= 1 })
	stop := make(chan struct{})
	most := b.sample(stop)
	for range 10 {
		wg.Go(func() {
			if err := db.sleepQuery(ctx, 20*time.Millisecond); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	close(stop)
	if n := <-most; n > 1 {
		t.Fatalf("%d connections in use at once with a share of 1", n)
	}
	if db.Share() != 1 || db.OpenConns() > 1 {
		t.Fatalf("share %d, open %d", db.Share(), db.OpenConns())
	}
}

// Issue 10: when busy connections outlast the wait, SetShare says so
// (ErrShareBusy: the worker's 503), and they are closed when released.
func TestSetShareBusyThenConverges(t *testing.T) {
	t.Parallel()
	db := openDB(t, storetest.Database(t), 3)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { db.sleepQuery(context.Background(), 700*time.Millisecond) })
	}
	waitFor(t, "3 busy connections", func() bool { return db.pool.Load().Stat().AcquiredConns() == 3 })
	open, err := db.SetShare(1, 100*time.Millisecond)
	if !errors.Is(err, ErrShareBusy) || open != 3 {
		t.Fatalf("SetShare(1) while 3 are busy = %d, %v; want 3, ErrShareBusy", open, err)
	}
	wg.Wait()
	waitFor(t, "at most 1 open", func() bool { return db.OpenConns() <= 1 })
}

// Issue 10: raising the share beyond the pool's size grows the pool.
func TestSetShareGrows(t *testing.T) {
	t.Parallel()
	url := storetest.Database(t)
	db := openDB(t, url, 1)
	if _, err := db.SetShare(3, time.Second); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { db.sleepQuery(context.Background(), 500*time.Millisecond) })
	}
	wg.Wait()
	if d := time.Since(start); d > 1200*time.Millisecond {
		t.Fatalf("3 queries of 500 ms took %s with a share of 3: not concurrent", d)
	}
	waitFor(t, "the old pool closed", func() bool { return db.OpenConns() <= 3 })
	if _, err := db.SetShare(2, time.Second); err != nil || db.OpenConns() > 2 {
		t.Fatalf("SetShare(2) after growing: %v, %d open", err, db.OpenConns())
	}
	if _, err := db.SetShare(0, time.Second); err == nil {
		t.Fatal("SetShare(0) accepted")
	}
}

// hold makes n connections open by using them at once for d.
func hold(t *testing.T, db *Postgres, n int, d time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if err := db.sleepQuery(context.Background(), d); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Issue 10: with PostgreSQL stopped, queries and pings fail fast with
// ErrUnavailable (no hang), and work again once it is back, on the same
// pool.
func TestPostgresOutageFailsFastAndRecovers(t *testing.T) {
	t.Parallel()
	pg := storetest.PrivatePostgres(t)
	db, err := OpenPostgres(PostgresOptions{URL: pg.URL("postgres"), MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	it, err := db.CreateItem(ctx, "before")
	if err != nil {
		t.Fatal(err)
	}
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		start := time.Now()
		_, err := db.Item(ctx, it.ID)
		if !errors.Is(err, ErrUnavailable) || time.Since(start) > time.Second {
			t.Fatalf("Item while down: %v after %s, want ErrUnavailable within 1s", err, time.Since(start))
		}
		start = time.Now()
		if err := db.Ping(ctx, time.Second); !errors.Is(err, ErrUnavailable) || time.Since(start) > time.Second {
			t.Fatalf("Ping while down: %v after %s", err, time.Since(start))
		}
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reads to work again", func() bool {
		got, err := db.Item(ctx, it.ID)
		return err == nil && got.Name == "before"
	})
}

// Issue 10: a worker that started while PostgreSQL was down answers
// ErrNotMigrated until RetryMigrate gets through.
func TestRetryMigrateAfterOutage(t *testing.T) {
	t.Parallel()
	pg := storetest.PrivatePostgres(t)
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	db, err := OpenPostgres(PostgresOptions{URL: pg.URL("postgres"), MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := db.Migrate(ctx); err == nil {
		t.Fatal("Migrate succeeded with PostgreSQL down")
	}
	if _, err := db.CreateItem(ctx, "x"); !errors.Is(err, ErrNotMigrated) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("CreateItem before migration: %v", err)
	}
	go db.RetryMigrate(ctx)
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the retried migration", db.Migrated)
	if _, err := db.CreateItem(ctx, "x"); err != nil {
		t.Fatal(err)
	}
}
