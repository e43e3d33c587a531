package main

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/valyala/fasthttp"

	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/balancer/proxy"
)

// front is the client-facing server: proxy.Engine or a fasthttp.Server
// running proxy.Handler.
type front interface {
	Serve(ln net.Listener) error
	ShutdownWithContext(ctx context.Context) error
}

// newFront returns the front end PROXY_ENGINE names over p, and a count
// of its open client connections.
func newFront(cfg *Config, p *pool.Pool, obs proxy.Observer, log hclog.Logger) (front, func() int64) {
	if cfg.ProxyEngine == engineFasthttp {
		s := newServer(cfg, proxy.New(p, obs, log).ServeHTTP, log.Named("server"))
		return s, func() int64 { return int64(s.GetOpenConnectionsCount()) }
	}
	e := proxy.NewEngine(p, obs, log, proxy.EngineOptions{
		Loops:             cfg.loops(),
		MaxHeaderBytes:    int(cfg.MaxHeaderBytes),
		MaxBodyBytes:      int64(cfg.MaxBodyBytes),
		ReadHeaderTimeout: cfg.ReadTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		UpstreamTimeout:   cfg.UpstreamTimeout,
	})
	return e, e.Open
}

// newServer returns the client-facing fasthttp server with the request
// bounds of the settings.
func newServer(cfg *Config, h fasthttp.RequestHandler, log hclog.Logger) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:                      h,
		ErrorHandler:                 errorHandler,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		// A request's header must fit the read buffer: bigger ones get 431.
		ReadBufferSize:     int(cfg.MaxHeaderBytes),
		MaxRequestBodySize: int(cfg.MaxBodyBytes),
		ReadTimeout:        cfg.ReadTimeout,
		WriteTimeout:       cfg.UpstreamTimeout,
		IdleTimeout:        cfg.IdleTimeout,
		CloseOnShutdown:    true,
		Logger:             log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
}

// errorHandler answers requests fasthttp refused to parse, in JSON, and
// closes the connection: after a framing error nothing more on it can be
// trusted (RFC 9112 6.1).
func errorHandler(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	status, msg := fasthttp.StatusBadRequest, "malformed request"
	switch {
	case errors.As(err, &small):
		status, msg = fasthttp.StatusRequestHeaderFieldsTooLarge, "request header too large"
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status, msg = fasthttp.StatusRequestEntityTooLarge, "request body too large"
	case isTimeout(err):
		status, msg = fasthttp.StatusRequestTimeout, "request read timed out"
	}
	proxy.WriteJSONError(ctx, status, msg)
	ctx.SetConnectionClose()
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout() || strings.Contains(err.Error(), "timeout")
}
