// Package workerkit turns any fasthttp handler into a worker the balancer can
// spawn: it listens on WORKER_SOCKET (or a TCP address when started on its
// own), answers the health path, serves a memory report on the private
// report socket, exits with its parent, and on SIGTERM stops accepting,
// finishes in-flight requests and returns.
package workerkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/valyala/fasthttp"

	"github.com/procbal/procbal/shared/protocol"
)

// Options configures Serve.
type Options struct {
	// Handler serves every path but the health path.
	Handler fasthttp.RequestHandler
	// Addr is the TCP address used when WORKER_SOCKET is unset.
	Addr string
	// Logger receives the kit's own lines. If nil, hclog's default.
	Logger hclog.Logger
	// ShutdownTimeout bounds how long in-flight requests may run after
	// SIGTERM. If zero, 30s.
	ShutdownTimeout time.Duration
	// WebSockets, when set, are sent a close frame with 1001 "going away"
	// as the worker stops, before in-flight requests are waited for.
	WebSockets *WebSockets
	// Internal serves the report socket's paths other than the memory
	// report, such as protocol.DBSharePath: requests only the balancer can
	// send. It runs concurrently with Handler. If nil, those paths get 404.
	Internal fasthttp.RequestHandler
}

// Spawned reports whether this process was started by the balancer.
func Spawned() bool { return os.Getenv(protocol.EnvSocket) != "" }

// Serve runs the worker until SIGTERM or SIGINT, or until ctx ends, and then
// shuts down gracefully. It returns nil after a clean shutdown.
func Serve(ctx context.Context, o Options) error {
	if o.Logger == nil {
		o.Logger = hclog.Default()
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 30 * time.Second
	}
	ln, err := listen(o.Addr)
	if err != nil {
		return err
	}
	srv := newServer(withHealth(o.Handler), "worker", o.Logger)
	report, err := serveReport(o.Internal, o.Logger)
	if err != nil {
		ln.Close()
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if Spawned() {
		go watchParent(ctx, stop, o.Logger)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	o.Logger.Info("listening", "address", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	return shutdown(srv, report, o)
}

func shutdown(srv, report *fasthttp.Server, o Options) error {
	o.Logger.Info("shutting down", "timeout", o.ShutdownTimeout.String())
	if o.WebSockets != nil {
		o.WebSockets.CloseAll()
	}
	sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
	defer cancel()
	if report != nil {
		_ = report.ShutdownWithContext(sctx)
	}
	if err := srv.ShutdownWithContext(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutting down: %w", err)
	}
	if p := os.Getenv(protocol.EnvSocket); p != "" {
		os.Remove(p)
	}
	return nil
}

// listen opens WORKER_SOCKET after removing a stale file, or addr over TCP.
func listen(addr string) (net.Listener, error) {
	p := os.Getenv(protocol.EnvSocket)
	if p == "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listening on %s: %w", addr, err)
		}
		return ln, nil
	}
	return listenUnix(p)
}

func listenUnix(p string) (net.Listener, error) {
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing stale socket %s: %w", p, err)
	}
	ln, err := net.Listen("unix", p)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", p, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	return ln, nil
}

func newServer(h fasthttp.RequestHandler, name string, log hclog.Logger) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:               h,
		Name:                  name,
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
		// Longer than the balancer's idle pool time, so the balancer closes
		// idle keep-alive connections first and never writes to one the
		// worker is closing.
		IdleTimeout: 5 * time.Minute,
		ReadTimeout: 5 * time.Minute,
		Logger:      log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
}

// withHealth answers HEALTH_PATH itself and passes everything else on.
func withHealth(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	path := os.Getenv(protocol.EnvHealthPath)
	if path == "" {
		path = protocol.DefaultHealthPath
	}
	return func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == path {
			ctx.SetContentType("text/plain")
			ctx.SetBodyString("ok\n")
			return
		}
		next(ctx)
	}
}

// serveReport serves the memory report, and internal the rest, on
// WORKER_REPORT_SOCKET, when set.
func serveReport(internal fasthttp.RequestHandler, log hclog.Logger) (*fasthttp.Server, error) {
	p := os.Getenv(protocol.EnvReportSocket)
	if p == "" {
		return nil, nil
	}
	ln, err := listenUnix(p)
	if err != nil {
		return nil, err
	}
	srv := newServer(reportHandler(internal), "worker-report", log)
	go srv.Serve(ln)
	return srv, nil
}

func reportHandler(internal fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		switch {
		case string(ctx.Path()) == protocol.ReportPath:
			ctx.SetContentType("application/json")
			_ = json.NewEncoder(ctx).Encode(protocol.ReadMemory())
		case internal != nil:
			internal(ctx)
		default:
			ctx.SetStatusCode(fasthttp.StatusNotFound)
		}
	}
}

// watchParent stops the worker when the balancer that spawned it is gone.
// The balancer also sets a parent-death signal; this covers the cases that
// signal misses (fasthttp prefork's watchMaster does the same).
func watchParent(ctx context.Context, stop func(), log hclog.Logger) {
	ppid := os.Getppid()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if os.Getppid() != ppid {
				log.Warn("balancer is gone, stopping", "ppid", ppid)
				stop()
				return
			}
		}
	}
}
