// Command worker is the reference backend the balancer spawns by default.
// Spawned, it listens on $WORKER_SOCKET; started on its own, on WORKER_ADDR.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/caarlos0/env/v11"

	"github.com/procbal/procbal/shared/logging"
	"github.com/procbal/procbal/shared/workerkit"
	"github.com/procbal/procbal/worker/api"
)

// Config is the reference worker's environment.
type Config struct {
	Addr      string `env:"WORKER_ADDR" envDefault:":8080"`
	ID        int    `env:"WORKER_ID" envDefault:"0"`
	LogLevel  string `env:"LOG_LEVEL" envDefault:"info"`
	LogFormat string `env:"LOG_FORMAT" envDefault:"text"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := env.ParseAs[Config]()
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
	h := api.New(cfg.ID, os.Getpid())
	return workerkit.Serve(context.Background(), workerkit.Options{
		Handler: h.Serve,
		Addr:    cfg.Addr,
		Logger:  log,
	})
}
