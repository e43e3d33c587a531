package storetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a throwaway PostgreSQL server on 127.0.0.1:Port, user
// "postgres" with trust authentication. Not safe for concurrent Start and
// Stop.
type Postgres struct {
	server
}

// NewPostgres initializes a cluster in a temporary directory and starts it.
func NewPostgres() (*Postgres, error) {
	c, err := serverUser()
	if err != nil {
		return nil, err
	}
	bin, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	dir, err := tempDir("pgtest", c)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := run(c, dir, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p := &Postgres{server{name: "postgres", dir: dir, cred: c, sig: syscall.SIGINT,
		death: syscall.SIGQUIT, logf: filepath.Join(dir, "postgres.log")}}
	p.argv = func() []string {
		return []string{filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(p.Port),
			"-k", dir, "-h", "127.0.0.1",
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "max_connections=400", "-c", "shared_buffers=32MB", "-c", "log_min_messages=warning"}
	}
	p.ready = func(ctx context.Context) error { return p.ping(ctx) }
	for try := 0; ; try++ { // a free port may be taken before postgres binds it
		if p.Port, err = freePort(); err == nil {
			if err = p.start(); err == nil {
				return p, nil
			}
		}
		if try == 2 {
			os.RemoveAll(dir)
			return nil, err
		}
	}
}

func (p *Postgres) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, p.URL("postgres"))
	if err != nil {
		return err
	}
	return c.Close(ctx)
}

// URL returns the connection URL of database db.
func (p *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, db)
}

// Start starts the server again after Stop, on the same port and data.
func (p *Postgres) Start() error { return p.start() }

// Stop stops the server (fast shutdown: sessions are ended) and waits.
func (p *Postgres) Stop() error { return p.stop() }

// Close stops the server and removes its files.
func (p *Postgres) Close() {
	p.stop()
	os.RemoveAll(p.dir)
}

var dbSeq atomic.Int64

// CreateDatabase creates an empty database and returns its URL.
func (p *Postgres) CreateDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	c, err := pgx.Connect(ctx, p.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	return p.URL(name), nil
}
