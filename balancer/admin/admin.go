// Package admin serves the admin API on its own listener: worker reports,
// runtime scaling, rolling reloads, health and metrics, behind an optional
// bearer token and a guard that keeps web pages out (see guard).
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/balancer/supervisor"
)

// Supervisor is what the admin API and the metrics need of the local
// workers' supervisor; *supervisor.Supervisor implements it. Its methods
// must be safe for concurrent use.
type Supervisor interface {
	// Workers returns every worker slot and remote upstream, by id.
	Workers() []supervisor.WorkerView
	// Active returns the number of local worker slots not being scaled away.
	Active() int
	// Scale and Reload wait until the work is done; see the supervisor.
	Scale(ctx context.Context, n int) error
	Reload(ctx context.Context) error
	// Restarts returns the worker restarts by cause.
	Restarts() map[string]uint64
}

var _ Supervisor = (*supervisor.Supervisor)(nil)

// Options configures the admin API.
type Options struct {
	// Token, when not empty, is required as "Authorization: Bearer <token>"
	// (the scheme in any case).
	Token string
	// Addr is the admin listener's address (ADMIN_ADDR). When it binds
	// loopback, or no token is set, the Host header must name loopback
	// (see guard). Empty counts as loopback.
	Addr string
	// Strategy is reported by /admin/workers.
	Strategy string
	// Pool holds every upstream.
	Pool *pool.Pool
	// Supervisor runs the local workers.
	Supervisor Supervisor
	// Log receives the API's own lines.
	Log hclog.Logger
	// WorkerLimit is the most /admin/scale accepts (WORKER_LIMIT).
	WorkerLimit int
	// AllowZero lets /admin/scale go to 0 local workers (UPSTREAMS set).
	AllowZero bool
	// OpTimeout bounds the wait for a scale, or for each worker of a
	// reload, to get healthy.
	OpTimeout time.Duration
	// Metrics is served at /metrics; nil serves none.
	Metrics http.Handler
	// Stats feeds the dashboard's charts and latency columns
	// (/admin/stats); nil: the live columns only.
	Stats *Stats
}

type api struct {
	Options
	started     time.Time
	pid         int
	tokenDigest [sha256.Size]byte
	sessions    *sessions
}

// New returns the admin API's handler.
func New(o Options) http.Handler {
	a := &api{Options: o, started: time.Now(), pid: os.Getpid(),
		tokenDigest: sha256.Sum256([]byte(o.Token)), sessions: newSessions()}
	mux := http.NewServeMux()
	mux.HandleFunc("/admin/workers", a.only(http.MethodGet, a.workers))
	mux.HandleFunc("/admin/health", a.only(http.MethodGet, a.health))
	mux.HandleFunc("/admin/scale", a.only(http.MethodPost, a.scale))
	mux.HandleFunc("/admin/reload", a.only(http.MethodPost, a.reload))
	a.upstreamRoutes(mux) // /admin/upstreams (upstreams.go)
	mux.HandleFunc("/admin/recycle", a.only(http.MethodPost, a.recycle))
	a.dashboardRoutes(mux)
	if o.Metrics != nil {
		mux.Handle("/metrics", o.Metrics)
	}
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { writeError(w, http.StatusNotFound, "no such admin path") })
	return a.guard(a.auth(mux))
}

// auth checks the bearer token, or the dashboard's session (session.go).
// It compares SHA-256 digests in constant time, so neither the token's
// bytes nor its length leak through timing. A token anywhere else, the
// query string included, does not count. The dashboard's page, assets and
// login calls are public (publicPath).
func (a *api) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.Token == "" || publicPath(r.URL.Path) || tokenMatches(r.Header.Get("Authorization"), a.tokenDigest) {
			next.ServeHTTP(w, r)
			return
		}
		switch a.authSession(r) {
		case sessionValid:
			next.ServeHTTP(w, r)
			return
		case sessionNoCSRF:
			writeError(w, http.StatusForbidden, "missing or wrong CSRF token: a session needs its "+csrfHeader+" header")
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="balancer admin"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
	})
}

// tokenMatches reports whether an Authorization value is "Bearer <token>"
// (the scheme in any case) for the token whose digest is want.
func tokenMatches(authorization string, want [sha256.Size]byte) bool {
	scheme, token, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimLeft(token, " ")))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// only answers 405 to methods other than method.
func (a *api) only(method string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			w.Header().Set("Allow", method)
			writeError(w, http.StatusMethodNotAllowed, "use "+method)
			return
		}
		h(w, r)
	}
}

func (a *api) health(w http.ResponseWriter, _ *http.Request) {
	n := a.Pool.Healthy()
	status := http.StatusOK
	if n == 0 {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{"healthy": n > 0, "healthy_upstreams": n})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
