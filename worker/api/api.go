// Package api holds the reference worker's HTTP handlers: health, items
// (PostgreSQL), sessions (Redis, or memory), the load-test routes, and the
// internal endpoint the balancer calls on the report socket.
package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/valyala/fasthttp"

	"github.com/procbal/procbal/shared/workerkit"
	"github.com/procbal/procbal/worker/store"
)

// Limits on the load-test routes, from the contract.
const (
	MaxWorkRounds = 10_000_000
	MaxSleepMS    = 60_000
)

// Dependency states reported by /api/health.
const (
	DepOK       = "ok"
	DepDisabled = "disabled"
	DepDown     = "down"
)

// DefaultSessionTTL is Options.SessionTTL when zero (SESSION_TTL's default).
const DefaultSessionTTL = 24 * time.Hour

// Options configures New.
type Options struct {
	// ID is the worker's WORKER_ID, 0 when started on its own.
	ID int
	// PID is reported by /api/health.
	PID int
	// DB holds the items. If nil (no DATABASE_URL), item routes answer 503.
	DB *store.Postgres
	// Redis holds the sessions. If nil (no REDIS_URL), sessions live in
	// this worker's memory and other workers do not see them.
	Redis *store.Redis
	// SessionTTL is how long a session lives. If zero, DefaultSessionTTL.
	SessionTTL time.Duration
	// CookieSecure marks the session cookie Secure (COOKIE_SECURE).
	CookieSecure bool
	// Logger receives server errors (5xx other than 503). If nil, none.
	Logger hclog.Logger
	// WebSockets tracks /api/ws connections, closed with 1001 when the
	// worker stops. If nil, they are not tracked.
	WebSockets *workerkit.WebSockets
}

// Handler serves the reference worker's routes. Safe for concurrent use.
type Handler struct {
	// ID is the worker's WORKER_ID, 0 when started on its own.
	ID int
	// PID is reported by /api/health.
	PID int

	db       *store.Postgres
	redis    *store.Redis
	sessions store.Sessions
	ttl      time.Duration
	secure   bool
	log      hclog.Logger
	ws       *workerkit.WebSockets

	health []byte // /api/health body while no dependency is configured
}

// New returns a Handler.
func New(o Options) *Handler {
	h := &Handler{ID: o.ID, PID: o.PID, db: o.DB, redis: o.Redis, ttl: o.SessionTTL,
		secure: o.CookieSecure, log: o.Logger, ws: o.WebSockets}
	if h.ws == nil {
		h.ws = &workerkit.WebSockets{}
	}
	if h.ttl <= 0 {
		h.ttl = DefaultSessionTTL
	}
	if h.log == nil {
		h.log = hclog.NewNullLogger()
	}
	h.sessions = store.NewMemorySessions()
	if o.Redis != nil {
		h.sessions = o.Redis
	}
	h.health = h.healthBody(statusOK, DepDisabled, DepDisabled)
	return h
}

func (h *Handler) healthBody(status, pg, redis string) []byte {
	b := []byte(`{"status":"` + status + `","worker_id":`)
	b = strconv.AppendInt(b, int64(h.ID), 10)
	b = append(b, `,"pid":`...)
	b = strconv.AppendInt(b, int64(h.PID), 10)
	b = append(b, `,"postgres":"`+pg+`","redis":"`+redis+`"}`...)
	return b
}

// Serve routes one request.
func (h *Handler) Serve(ctx *fasthttp.RequestCtx) {
	switch string(ctx.Path()) {
	case "/api/health":
		h.serveHealth(ctx)
	case "/api/work":
		h.serveWork(ctx)
	case "/api/sleep":
		h.serveSleep(ctx)
	case "/api/items":
		h.serveItems(ctx)
	case "/api/sessions":
		h.serveSessions(ctx)
	case "/api/sessions/me":
		h.serveSessionMe(ctx)
	case "/api/ws":
		h.serveWebSocket(ctx)
	case "/api/events":
		h.serveEvents(ctx)
	default:
		if id, ok := bytes.CutPrefix(ctx.Path(), []byte("/api/items/")); ok {
			h.serveItem(ctx, string(id))
			return
		}
		writeError(ctx, fasthttp.StatusNotFound, "no such route")
	}
}

// serveWork runs n rounds of SHA-256 over the previous digest.
func (h *Handler) serveWork(ctx *fasthttp.RequestCtx) {
	n, ok := intArg(ctx, "n", 1, MaxWorkRounds)
	if !ok {
		return
	}
	sum := sha256.Sum256(ctx.Path())
	for i := 1; i < n; i++ {
		sum = sha256.Sum256(sum[:])
	}
	var hexbuf [64]byte
	hex.Encode(hexbuf[:], sum[:])
	b := ctx.Response.BodyWriter()
	ctx.SetContentType("application/json")
	buf := append(make([]byte, 0, 128), `{"worker_id":`...)
	buf = strconv.AppendInt(buf, int64(h.ID), 10)
	buf = append(buf, `,"n":`...)
	buf = strconv.AppendInt(buf, int64(n), 10)
	buf = append(buf, `,"sha256":"`...)
	buf = append(buf, hexbuf[:]...)
	buf = append(buf, `"}`...)
	b.Write(buf)
}

// serveSleep answers after ms milliseconds.
func (h *Handler) serveSleep(ctx *fasthttp.RequestCtx) {
	ms, ok := intArg(ctx, "ms", 0, MaxSleepMS)
	if !ok {
		return
	}
	time.Sleep(time.Duration(ms) * time.Millisecond)
	ctx.SetContentType("application/json")
	b := append([]byte(`{"worker_id":`), strconv.Itoa(h.ID)...)
	b = append(b, `,"slept_ms":`...)
	b = strconv.AppendInt(b, int64(ms), 10)
	ctx.SetBody(append(b, '}'))
}

// intArg reads query argument name within [lo, hi], or writes a 400.
func intArg(ctx *fasthttp.RequestCtx, name string, lo, hi int) (int, bool) {
	raw := ctx.QueryArgs().Peek(name)
	if len(raw) == 0 {
		return lo, true
	}
	n, err := strconv.Atoi(string(raw))
	if err != nil || n < lo || n > hi {
		writeError(ctx, fasthttp.StatusBadRequest,
			name+" must be an integer in ["+strconv.Itoa(lo)+", "+strconv.Itoa(hi)+"]")
		return 0, false
	}
	return n, true
}

func writeError(ctx *fasthttp.RequestCtx, status int, msg string) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(append([]byte(`{"error":`), strconv.Quote(msg)...), '}'))
}
