// Package proxy is the fasthttp request handler: it picks an upstream,
// rewrites headers, forwards through that upstream's HostClient, retries on
// another upstream when that is safe, and maps failures to 502/503/504.
package proxy

import (
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/valyala/fasthttp"

	"github.com/procbal/procbal/balancer/pool"
)

// Observer is told of every finished attempt; the metrics implement it. It
// must be safe for concurrent use and should not allocate.
type Observer interface {
	// Observe records one attempt on u: its status (0 when it failed before
	// an answer) and its duration.
	Observe(u *pool.Upstream, status int, d time.Duration)
}

// Handler proxies client requests to the pool.
type Handler struct {
	pool *pool.Pool
	log  hclog.Logger
	ids  *idSource
	obs  Observer
}

// New returns a Handler over p. obs may be nil.
func New(p *pool.Pool, obs Observer, log hclog.Logger) *Handler {
	return &Handler{pool: p, log: log, ids: newIDSource(), obs: obs}
}

// ServeHTTP proxies one request. It is a fasthttp.RequestHandler.
func (h *Handler) ServeHTTP(ctx *fasthttp.RequestCtx) {
	if ambiguousFraming(&ctx.Request.Header) {
		WriteJSONError(ctx, fasthttp.StatusBadRequest, "both Content-Length and Transfer-Encoding")
		ctx.SetConnectionClose()
		return
	}
	h.prepareRequest(ctx)
	var tried pool.Tried
	var err error
	for tried.Len() < pool.MaxTries {
		u := h.pool.Pick(tried)
		if u == nil {
			break
		}
		tried.Add(u)
		if err = h.try(ctx, u); err == nil {
			prepareResponse(&ctx.Response)
			return
		}
		if !retryable(ctx, err) {
			break
		}
		ctx.Response.Reset()
	}
	if err == nil {
		err = pool.ErrNoUpstream
	}
	h.writeError(ctx, err)
}

// try forwards the request to u once. It is its own method so the in-flight
// count is released per attempt.
func (h *Handler) try(ctx *fasthttp.RequestCtx, u *pool.Upstream) error {
	var start time.Time
	if h.obs != nil {
		start = time.Now()
	}
	err := u.Client.Do(&ctx.Request, &ctx.Response)
	status := 0
	if err == nil {
		status = ctx.Response.StatusCode()
		h.pool.ReportSuccess(u)
	} else {
		h.pool.ReportFailure(u)
	}
	u.Release(status)
	if h.obs != nil {
		h.obs.Observe(u, status, time.Since(start))
	}
	return err
}

// retryable reports whether a failed attempt may go to another upstream: a
// failed dial sent nothing, so always; after any other error only a safe
// method (GET, HEAD, OPTIONS, TRACE) is sent again, never after a timeout,
// since the upstream may still be working on it.
func retryable(ctx *fasthttp.RequestCtx, err error) bool {
	var de *pool.DialError
	if errors.As(err, &de) {
		return true
	}
	if isTimeout(err) {
		return false
	}
	m := &ctx.Request.Header
	return m.IsGet() || m.IsHead() || m.IsOptions() || m.IsTrace()
}

func isTimeout(err error) bool {
	if errors.Is(err, fasthttp.ErrTimeout) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// writeError is the one place a failed proxy turns into an answer:
// no upstream 503, timeout 504, anything else 502.
func (h *Handler) writeError(ctx *fasthttp.RequestCtx, err error) {
	ctx.Response.Reset()
	status, msg := fasthttp.StatusBadGateway, "upstream unreachable"
	switch {
	case errors.Is(err, pool.ErrNoUpstream):
		status, msg = fasthttp.StatusServiceUnavailable, "no healthy upstream"
		ctx.Response.Header.Set("Retry-After", "1")
	case isTimeout(err):
		status, msg = fasthttp.StatusGatewayTimeout, "upstream timed out"
	}
	h.log.Warn("proxy error", "method", string(ctx.Method()), "uri", string(ctx.RequestURI()),
		"status", status, "error", err)
	WriteJSONError(ctx, status, msg)
}

// WriteJSONError answers {"error": msg} with status. msg is quoted, so any
// text is safe; only error paths call it.
func WriteJSONError(ctx *fasthttp.RequestCtx, status int, msg string) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(appendJSONError(nil, msg))
}

// appendJSONError appends the error body both front ends answer with.
func appendJSONError(b []byte, msg string) []byte {
	b = append(b, `{"error":`...)
	b = strconv.AppendQuote(b, msg)
	return append(b, "}\n"...)
}
