// Command worker is the reference backend the balancer spawns by default.
// Spawned, it listens on $WORKER_SOCKET; started on its own, on WORKER_ADDR.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/procbal/procbal/shared/logging"
	"github.com/procbal/procbal/shared/workerkit"
	"github.com/procbal/procbal/worker/api"
)

// Config is the reference worker's environment (README's settings table).
type Config struct {
	Addr      string `env:"WORKER_ADDR" envDefault:":8080"`
	ID        int    `env:"WORKER_ID" envDefault:"0"`
	LogLevel  string `env:"LOG_LEVEL" envDefault:"info"`
	LogFormat string `env:"LOG_FORMAT" envDefault:"text"`

	DatabaseURL    string        `env:"DATABASE_URL"`
	DBPoolMax      int           `env:"DB_POOL_MAX" envDefault:"4"`
	DBQueryTimeout time.Duration `env:"DB_QUERY_TIMEOUT" envDefault:"800ms"`
	RedisURL       string        `env:"REDIS_URL"`
	RedisTimeout   time.Duration `env:"REDIS_TIMEOUT" envDefault:"800ms"`
	SessionTTL     time.Duration `env:"SESSION_TTL" envDefault:"24h"`
	CookieSecure   bool          `env:"COOKIE_SECURE" envDefault:"false"`
}

func main() {
	if code, ok := subcommand(os.Args[1:]); ok {
		os.Exit(code)
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		if errors.As(err, new(*configError)) {
			os.Exit(2) // a bad setting, as the balancer's
		}
		os.Exit(1)
	}
}

func run() error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	format := cfg.LogFormat
	if workerkit.Spawned() {
		format = "json" // the balancer re-emits JSON lines at their level
	}
	log, err := logging.New(logging.Options{Name: "worker", Level: cfg.LogLevel, Format: format})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := openDeps(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() { cancel(); d.close() }() // stop a migration retry before closing the pool
	ws := &workerkit.WebSockets{}
	h := api.New(api.Options{ID: cfg.ID, PID: os.Getpid(), DB: d.db, Redis: d.redis,
		SessionTTL: cfg.SessionTTL, CookieSecure: cfg.CookieSecure, Logger: log.Named("api"), WebSockets: ws})
	return workerkit.Serve(ctx, workerkit.Options{
		Handler:    h.Serve,
		Internal:   h.ServeInternal,
		Addr:       cfg.Addr,
		Logger:     log,
		WebSockets: ws,
	})
}
