package admin

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/procbal/procbal/balancer/pool"
)

// The dashboard: one page at GET /admin/ and its assets, embedded in the
// binary (no CDN: the machines it runs on may be offline), drawing
// /admin/stats every second: a live table of every upstream, pool totals,
// charts of the last 15 minutes from Stats' ring buffer (uPlot, vendored
// in web/), and buttons that POST /admin/scale, /admin/reload and
// /admin/recycle. Log in with ADMIN_TOKEN (session.go).

//go:embed web
var webFS embed.FS

// asset is one embedded file, with its ETag (a digest of its bytes).
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// assets are the files under /admin/assets/, by name; index is the page,
// whose asset URLs carry each asset's digest (?v=), so the assets may be
// cached for good while the page is revalidated every time.
var assets, index = loadAssets()

func loadAssets() (map[string]*asset, *asset) {
	entries, err := webFS.ReadDir("web")
	if err != nil {
		panic(err)
	}
	m := map[string]*asset{}
	for _, e := range entries {
		b, err := webFS.ReadFile("web/" + e.Name())
		if err != nil {
			panic(err)
		}
		m[e.Name()] = newAsset(b, e.Name())
	}
	page := m["index.html"]
	delete(m, "index.html")
	body := page.body
	for name, a := range m {
		body = bytes.ReplaceAll(body, []byte("{{v:"+name+"}}"), []byte(a.etag[1:9]))
	}
	return m, newAsset(body, "index.html")
}

func newAsset(b []byte, name string) *asset {
	sum := sha256.Sum256(b)
	ctype := "application/octet-stream"
	switch path.Ext(name) {
	case ".html":
		ctype = "text/html; charset=utf-8"
	case ".js":
		ctype = "text/javascript; charset=utf-8"
	case ".css":
		ctype = "text/css; charset=utf-8"
	case ".txt", ".LICENSE":
		ctype = "text/plain; charset=utf-8"
	}
	return &asset{body: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
}

// contentSecurity keeps the page to its own scripts, styles and API.
const contentSecurity = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func (a *api) dashboardRoutes(mux *http.ServeMux) {
	mux.HandleFunc("/admin/", a.dashboard)
	mux.HandleFunc("/admin/assets/", a.only(http.MethodGet, a.asset))
	mux.HandleFunc("/admin/login", a.only(http.MethodPost, a.login))
	mux.HandleFunc("/admin/logout", a.only(http.MethodPost, a.logout))
	mux.HandleFunc("/admin/session", a.only(http.MethodGet, a.sessionInfo))
	mux.HandleFunc("/admin/stats", a.only(http.MethodGet, a.stats))
}

// dashboard serves the page at /admin/ exactly; any other path under
// /admin/ that no route names is 404, as before the dashboard.
func (a *api) dashboard(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/admin/" {
		writeError(w, http.StatusNotFound, "no such admin path")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, http.StatusMethodNotAllowed, "use "+http.MethodGet)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurity)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	serveAsset(w, r, index, "no-cache")
}

func (a *api) asset(w http.ResponseWriter, r *http.Request) {
	as := assets[strings.TrimPrefix(r.URL.Path, "/admin/assets/")]
	if as == nil {
		writeError(w, http.StatusNotFound, "no such asset")
		return
	}
	cache := "no-cache"
	if v := r.URL.Query().Get("v"); v != "" && v == as.etag[1:9] {
		cache = "public, max-age=31536000, immutable"
	}
	serveAsset(w, r, as, cache)
}

// serveAsset answers with as, or 304 when If-None-Match names its ETag.
func serveAsset(w http.ResponseWriter, r *http.Request, as *asset, cache string) {
	h := w.Header()
	h.Set("Content-Type", as.ctype)
	h.Set("Cache-Control", cache)
	h.Set("ETag", as.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(as.body))
}

// StatsRow is one upstream of GET /admin/stats: its /admin/workers entry
// and what the dashboard adds.
type StatsRow struct {
	Worker
	UptimeSeconds float64 `json:"uptime_seconds"`
	// ReqPerSec and ErrPerSec are over the latest sample interval; errors
	// are transport failures and 5xx answers.
	ReqPerSec float64 `json:"req_per_sec"`
	ErrPerSec float64 `json:"errors_per_sec"`
	// P50Ms and P99Ms are over the last minute; absent before an attempt.
	P50Ms *float64 `json:"p50_ms,omitempty"`
	P99Ms *float64 `json:"p99_ms,omitempty"`
}

// StatsTotals are the pool's totals.
type StatsTotals struct {
	Totals
	Inflight  int64    `json:"inflight"`
	Tunnels   int64    `json:"tunnels"`
	Failures  uint64   `json:"failures"`
	ReqPerSec float64  `json:"req_per_sec"`
	ErrPerSec float64  `json:"errors_per_sec"`
	P50Ms     *float64 `json:"p50_ms,omitempty"`
	P99Ms     *float64 `json:"p99_ms,omitempty"`
}

// StatsReport is the body of GET /admin/stats.
type StatsReport struct {
	Strategy        string            `json:"strategy"`
	Balancer        Balancer          `json:"balancer"`
	WorkerLimit     int               `json:"worker_limit"`
	MinWorkers      int               `json:"min_workers"`
	LocalWorkers    int               `json:"local_workers"`
	IntervalSeconds float64           `json:"interval_seconds"`
	Restarts        map[string]uint64 `json:"restarts"`
	Totals          StatsTotals       `json:"totals"`
	Workers         []StatsRow        `json:"workers"`
	History         *History          `json:"history,omitempty"`
}

// stats serves GET /admin/stats; ?history=1 adds the ring buffer.
func (a *api) stats(w http.ResponseWriter, r *http.Request) {
	rep := a.report()
	now := time.Now()
	out := StatsReport{
		Strategy: rep.Strategy, Balancer: rep.Balancer, WorkerLimit: a.WorkerLimit,
		MinWorkers: 1, LocalWorkers: a.Supervisor.Active(), Restarts: a.Supervisor.Restarts(),
		Totals: StatsTotals{Totals: rep.Totals}, Workers: make([]StatsRow, 0, len(rep.Workers)),
	}
	if a.AllowZero {
		out.MinWorkers = 0
	}
	ups := map[int]*pool.Upstream{}
	for _, v := range a.Supervisor.Workers() {
		ups[v.ID] = v.Upstream
	}
	for _, wk := range rep.Workers {
		row := StatsRow{Worker: wk}
		if u := ups[wk.ID]; u != nil {
			row.UptimeSeconds = now.Sub(u.StartedAt).Seconds()
		}
		if a.Stats != nil {
			if pt, ok := a.Stats.latest(wk.ID); ok {
				row.ReqPerSec, row.ErrPerSec = round3(pt.ReqPerSec), round3(pt.ErrPerSec)
				if pt.hasLat {
					row.P50Ms, row.P99Ms = ptr(pt.P50Ms), ptr(pt.P99Ms)
				}
			}
		}
		out.Totals.Inflight += wk.Inflight
		out.Totals.Tunnels += wk.Tunnels
		out.Totals.Failures += wk.Failures
		out.Workers = append(out.Workers, row)
	}
	if a.Stats != nil {
		out.IntervalSeconds = a.Stats.Interval().Seconds()
		if pt, ok := a.Stats.latestTotal(); ok {
			out.Totals.ReqPerSec, out.Totals.ErrPerSec = round3(pt.ReqPerSec), round3(pt.ErrPerSec)
			if pt.hasLat {
				out.Totals.P50Ms, out.Totals.P99Ms = ptr(pt.P50Ms), ptr(pt.P99Ms)
			}
		}
		if r.URL.Query().Get("history") == "1" {
			h := a.Stats.history()
			out.History = &h
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}

func ptr[T any](v T) *T { return &v }
