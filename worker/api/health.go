package api

import (
	"context"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// HealthCheckTimeout is the deadline of each dependency check of
// /api/health. The checks run concurrently, so the whole answer stays
// under 1 s even when a server does not answer at all.
const HealthCheckTimeout = 800 * time.Millisecond

// Values of /api/health's "status".
const (
	statusOK       = "ok"
	statusDegraded = "degraded"
)

// serveHealth answers /api/health: each dependency ok, disabled or down,
// and 503 when a configured one is down. The balancer probes /healthz,
// which touches no dependency, so an outage here never ejects a worker.
func (h *Handler) serveHealth(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	if h.db == nil && h.redis == nil {
		ctx.SetBody(h.health)
		return
	}
	pg, rd := h.checkDeps()
	status := statusOK
	if pg == DepDown || rd == DepDown {
		status = statusDegraded
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	}
	ctx.SetBody(h.healthBody(status, pg, rd))
}

// checkDeps pings PostgreSQL and Redis at the same time.
func (h *Handler) checkDeps() (pg, rd string) {
	pg, rd = DepDisabled, DepDisabled
	var wg sync.WaitGroup
	if h.db != nil {
		wg.Go(func() { pg = depState(h.db.Ping(context.Background(), HealthCheckTimeout)) })
	}
	if h.redis != nil {
		rd = depState(h.redis.Ping(context.Background(), HealthCheckTimeout))
	}
	wg.Wait()
	return pg, rd
}

func depState(err error) string {
	if err != nil {
		return DepDown
	}
	return DepOK
}
