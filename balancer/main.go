//go:build linux

// Command balancer spawns and supervises worker processes and proxies client
// traffic across them. Settings come from the environment; see the README.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procbal/procbal/balancer/admin"
	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/balancer/proxy"
	"github.com/procbal/procbal/balancer/supervisor"
	"github.com/procbal/procbal/shared/logging"
)

func main() {
	if code, ok := subcommand(os.Args[1:]); ok {
		os.Exit(code)
	}
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "balancer: bad setting:", err)
		os.Exit(2)
	}
	out, logFile, err := logOutput(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "balancer: bad setting: LOG_FILE:", err)
		os.Exit(2)
	}
	defer logFile.Close()
	log, err := logging.New(logging.Options{Name: "balancer", Level: cfg.LogLevel, Format: cfg.LogFormat, Output: out})
	if err != nil {
		fmt.Fprintln(os.Stderr, "balancer: bad setting:", err)
		os.Exit(2)
	}
	accessOut, accessFile, err := accessLogOutput(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "balancer: bad setting: ACCESS_LOG_FILE:", err)
		os.Exit(2)
	}
	defer accessFile.Close()
	cfg.accessOut = accessOut
	rotateOnSIGUSR1(log, rotatable{logFile, cfg.LogFile, "LOG_FILE"}, rotatable{accessFile, cfg.AccessLogFile, "ACCESS_LOG_FILE"})
	if err := run(cfg, log); err != nil {
		log.Error("balancer failed", "error", err)
		os.Exit(1) //nolint:gocritic // the log file is flushed on every write
	}
}

// app is the wired balancer.
type app struct {
	cfg    *Config
	log    hclog.Logger
	pool   *pool.Pool
	sup    *supervisor.Supervisor
	server *proxy.Engine
	admin  *http.Server
	stats  *admin.Stats // the dashboard's samples (sampled from serve to shutdown)
}

func run(cfg *Config, log hclog.Logger) error {
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR: %w", err)
	}
	adminLn, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		ln.Close()
		return fmt.Errorf("ADMIN_ADDR: %w", err)
	}
	a, err := build(cfg, log)
	if err != nil {
		ln.Close()
		adminLn.Close()
		return err
	}
	return a.serve(ln, adminLn)
}

// build wires the pool, the supervisor, the proxy and the admin API.
func build(cfg *Config, log hclog.Logger) (*app, error) {
	dir, err := socketDir(cfg.SocketDir)
	if err != nil {
		return nil, fmt.Errorf("SOCKET_DIR: %w", err)
	}
	sel, _ := pool.NewSelector(cfg.Strategy)
	p := pool.New(sel, pool.OutlierOptions{Consecutive: cfg.Unhealthy}, log.Named("pool"))
	p.SetStickySecret(stickySecret(cfg, log))
	sup := supervisor.New(supervisorConfig(cfg, dir), p, checkOptions(cfg), log.Named("supervisor"))
	metrics := admin.NewMetrics(p, sup)
	metrics.Stats = admin.NewStats(p, sup, admin.StatsOptions{})
	a := &app{cfg: cfg, log: log, pool: p, sup: sup, stats: metrics.Stats}
	a.server = newEngine(cfg, p, metrics, log.Named("proxy"), dir)
	metrics.ClientConns = a.server.Open
	a.admin = &http.Server{
		Handler: admin.New(admin.Options{
			Token:       cfg.AdminToken,
			Addr:        cfg.AdminAddr,
			Strategy:    cfg.Strategy,
			Pool:        p,
			Supervisor:  sup,
			Log:         log.Named("admin"),
			WorkerLimit: cfg.scaleLimit(),
			AllowZero:   cfg.remotes(),
			OpTimeout:   cfg.WorkerStartTime + 5*time.Second,
			Metrics:     metrics.Handler(),
			Stats:       metrics.Stats,
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.Named("admin").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	return a, nil
}

// maxSocketDir leaves room in a unix socket path (at most 107 bytes) for a
// worker's socket name, "/w<id>-<generation>.sock".
const maxSocketDir = 87

// socketDir makes the balancer's own private (0700) directory for the
// worker sockets: a new procbal-* directory under SOCKET_DIR, or under
// $TMPDIR (else /tmp) when SOCKET_DIR is unset. SOCKET_DIR itself is
// created 0700 when missing and otherwise never changed or removed; the
// supervisor removes the procbal-* directory, and only it, at exit.
func socketDir(dir string) (string, error) {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", err
		}
	}
	sub, err := os.MkdirTemp(dir, "procbal-")
	if err != nil {
		return "", err
	}
	if len(sub) > maxSocketDir {
		os.Remove(sub)
		return "", fmt.Errorf("%s is too long for unix socket paths (at most %d bytes with its procbal-* directory)", sub, maxSocketDir)
	}
	return sub, nil
}

func supervisorConfig(cfg *Config, dir string) supervisor.Config {
	return supervisor.Config{
		Command:       cfg.WorkerCmd,
		Args:          cfg.WorkerArgs,
		Workers:       cfg.Workers(),
		SocketDir:     dir,
		HealthPath:    cfg.HealthPath,
		StartTimeout:  cfg.WorkerStartTime,
		DrainTimeout:  cfg.DrainTimeout,
		StopGrace:     max(time.Second, cfg.HealthInterval),
		MemoryLimitMB: cfg.MemoryLimitMB,

		Upstreams:         cfg.Upstreams,
		DNSRefresh:        cfg.DNSRefresh,
		DNSServers:        cfg.DNSServer,
		UpstreamsFile:     cfg.UpstreamsFile,
		MemoryLog:         cfg.MemoryMonitor,
		MemoryThresholdMB: cfg.MemoryThreshold,
		MaxMemoryMB:       cfg.MaxMemoryMB,
		MaxRequests:       cfg.MaxRequests,
		EnvDeny:           cfg.WorkerEnvDeny,
		DBMaxConns:        cfg.DBMaxConns,
		DBShares:          cfg.dbShares(),
	}
}

func checkOptions(cfg *Config) pool.CheckOptions {
	return pool.CheckOptions{
		Path:               cfg.HealthPath,
		Interval:           cfg.HealthInterval,
		Timeout:            cfg.HealthTimeout,
		UnhealthyThreshold: cfg.Unhealthy,
		HealthyThreshold:   cfg.Healthy,
		MemoryInterval:     cfg.MemoryInterval,
		RemoteStartTimeout: cfg.WorkerStartTime,
	}
}

// serve runs until SIGTERM or SIGINT, then shuts down in order: stop
// accepting and finish in-flight requests, then stop the workers.
func (a *app) serve(ln, adminLn net.Listener) error {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	supErr := make(chan error, 1)
	go func() { supErr <- a.sup.Run() }()
	go a.serveAdmin(adminLn)
	a.stats.Start()
	a.log.Info("balancer starting", "pid", os.Getpid(), "address", ln.Addr().String(), "admin", adminLn.Addr().String(),
		"workers", a.cfg.Workers(), "access_log", a.cfg.accessLogFormat())
	a.handleSignals() // TTIN, TTOU and the ignored ones (signals.go)
	if sig := a.waitReady(sigs); sig != nil {
		a.log.Info("signal received before any worker was ready, shutting down", "signal", sig.String())
		ln.Close()
		return a.shutdown(supErr)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- a.server.Serve(ln) }()
	a.log.Info("balancer listening", "pid", os.Getpid(), "address", ln.Addr().String(), "admin", adminLn.Addr().String(),
		"workers", a.cfg.Workers(), "strategy", a.cfg.Strategy)
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				a.reload()
				continue
			}
			a.log.Info("signal received, shutting down", "signal", sig.String())
			return a.shutdown(supErr)
		case err := <-serveErr:
			// Without its client listener the balancer is useless: stop
			// (exit 1) rather than run on, looking alive to a supervisor.
			a.log.Error("client listener failed, shutting down", "error", err)
			if serr := a.shutdown(supErr); serr != nil {
				return serr
			}
			return fmt.Errorf("client listener: %w", err)
		}
	}
}

func (a *app) serveAdmin(ln net.Listener) {
	if err := a.admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.log.Error("admin listener failed", "error", err)
	}
}

// waitReady holds the client listener back until a worker is healthy, so
// the first clients get answers rather than 503s, up to the start timeout,
// and no longer once every worker has failed: connections held in the
// backlog would hang until then, where a 503 now tells the client to retry.
// It returns a stopping signal that arrived meanwhile.
func (a *app) waitReady(sigs <-chan os.Signal) os.Signal {
	if a.cfg.Workers() == 0 {
		return nil
	}
	timeout := time.After(a.cfg.WorkerStartTime)
	for {
		select {
		case <-a.sup.Ready():
			return nil
		case <-a.sup.StartFailed():
			a.log.Warn("every worker failed to start, serving anyway: clients get 503 until one is healthy")
			return nil
		case <-timeout:
			a.log.Warn("no worker healthy yet, serving anyway", "waited", a.cfg.WorkerStartTime)
			return nil
		case sig := <-sigs:
			if sig != syscall.SIGHUP {
				return sig
			}
		}
	}
}

func (a *app) reload() {
	a.log.Info("SIGHUP received, rolling reload")
	go func() {
		if err := a.sup.Reload(context.Background()); err != nil {
			a.log.Error("reload failed", "error", err)
		}
	}()
}

func (a *app) shutdown(supErr chan error) error {
	a.stats.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	if err := a.server.ShutdownWithContext(ctx); err != nil {
		a.log.Warn("in-flight requests did not finish in time", "error", err)
	}
	_ = a.admin.Shutdown(ctx)
	// Workers get what is left of SHUTDOWN_TIMEOUT, and at least a second.
	wctx, wcancel := context.WithTimeout(context.Background(), max(time.Until(deadlineOf(ctx)), time.Second))
	defer wcancel()
	if err := a.sup.Shutdown(wctx); err != nil {
		return err
	}
	if err := <-supErr; err != nil {
		return fmt.Errorf("removing socket directory: %w", err)
	}
	a.log.Info("balancer stopped")
	return nil
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}
