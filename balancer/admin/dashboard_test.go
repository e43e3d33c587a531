package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procbal/procbal/balancer/admin"
	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/balancer/supervisor"
)

const testToken = "s3cret-token"

// tokenAPI returns the admin handler with ADMIN_TOKEN set, over sup.
func tokenAPI(sup admin.Supervisor, stats *admin.Stats) http.Handler {
	sel, _ := pool.NewSelector("round_robin")
	p := pool.New(sel, pool.OutlierOptions{}, hclog.NewNullLogger())
	return admin.New(admin.Options{
		Token: testToken, Addr: "127.0.0.1:3002", Strategy: "round_robin", Pool: p, Supervisor: sup,
		Log: hclog.NewNullLogger(), WorkerLimit: 8, OpTimeout: opTimeout, Stats: stats,
	})
}

// login posts the token and returns the session cookie and CSRF token.
func login(t *testing.T, h http.Handler, token string) (*httptest.ResponseRecorder, *http.Cookie, string) {
	t.Helper()
	w := req{method: "POST", path: "/admin/login", host: "127.0.0.1:3002", body: `{"token": "` + token + `"}`,
		header: map[string]string{"Content-Type": "application/json", "Origin": "http://127.0.0.1:3002"}}.do(h)
	var body struct {
		CSRF string `json:"csrf"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	cookies := w.Result().Cookies()
	if len(cookies) == 0 {
		return w, nil, body.CSRF
	}
	return w, cookies[0], body.CSRF
}

// The page is public (it is the login form), served with a strict CSP and
// revalidated every time; assets named with their digest are cached for
// good, and a matching If-None-Match gets 304. Nothing refers to a CDN.
func TestDashboardPageAndAssets(t *testing.T) {
	t.Parallel()
	h := tokenAPI(&fakeSupervisor{}, nil)
	w := req{method: "GET", path: "/admin/", host: "127.0.0.1:3002"}.do(h)
	page := w.Body.String()
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") ||
		w.Header().Get("Cache-Control") != "no-cache" || w.Header().Get("ETag") == "" ||
		!strings.Contains(w.Header().Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("GET /admin/: %d %v", w.Code, w.Header())
	}
	if strings.Contains(page, "http://") || strings.Contains(page, "https://") || strings.Contains(page, "{{") {
		t.Fatalf("the page refers to another origin or has an unfilled placeholder:\n%s", page)
	}
	refs := regexp.MustCompile(`(?:src|href)="assets/([^"?]+)\?v=([0-9a-f]{8})"`).FindAllStringSubmatch(page, -1)
	if len(refs) != 4 {
		t.Fatalf("the page names %d assets, want 4 (uPlot's script and style, app.js, app.css): %v", len(refs), refs)
	}
	for _, ref := range refs {
		w := req{method: "GET", path: "/admin/assets/" + ref[1] + "?v=" + ref[2], host: "127.0.0.1:3002"}.do(h)
		if w.Code != 200 || w.Header().Get("Cache-Control") != "public, max-age=31536000, immutable" || w.Body.Len() < 100 {
			t.Fatalf("asset %s: %d %v (%d bytes)", ref[1], w.Code, w.Header(), w.Body.Len())
		}
		again := req{method: "GET", path: "/admin/assets/" + ref[1], host: "127.0.0.1:3002",
			header: map[string]string{"If-None-Match": w.Header().Get("ETag")}}.do(h)
		if again.Code != http.StatusNotModified || again.Header().Get("Cache-Control") != "no-cache" {
			t.Fatalf("asset %s revalidated: %d %v, want 304 no-cache", ref[1], again.Code, again.Header())
		}
	}
	if w := (req{method: "GET", path: "/admin/assets/nope.js", host: "127.0.0.1:3002"}.do(h)); w.Code != 404 {
		t.Fatalf("unknown asset: %d", w.Code)
	}
	// The guard applies to the page too (DNS rebinding).
	if w := (req{method: "GET", path: "/admin/", host: "evil.example"}.do(h)); w.Code != 403 {
		t.Fatalf("page with a foreign Host: %d, want 403", w.Code)
	}
}

// The login takes ADMIN_TOKEN and sets an HttpOnly, SameSite=Strict
// cookie; the cookie counts only with its CSRF token: without it every
// request is 403, a state-changing one included, and with it the API
// answers. A wrong token is 401; no session is 401; logout ends it.
func TestDashboardLoginAndCSRF(t *testing.T) {
	t.Parallel()
	sup := &fakeSupervisor{active: 2}
	h := tokenAPI(sup, nil)

	if w, c, _ := login(t, h, "wrong"); w.Code != 401 || c != nil {
		t.Fatalf("login with a wrong token: %d, cookie %v; want 401 and none", w.Code, c)
	}
	if w := (req{method: "GET", path: "/admin/workers", host: "localhost"}.do(h)); w.Code != 401 {
		t.Fatalf("/admin/workers without login: %d, want 401", w.Code)
	}
	var info map[string]bool
	w := req{method: "GET", path: "/admin/session", host: "localhost"}.do(h)
	if json.Unmarshal(w.Body.Bytes(), &info); w.Code != 200 || info["authenticated"] || !info["token_required"] {
		t.Fatalf("/admin/session without login: %d %v", w.Code, info)
	}

	w, cookie, csrf := login(t, h, testToken)
	if w.Code != 200 || cookie == nil || csrf == "" {
		t.Fatalf("login: %d %s, cookie %v", w.Code, w.Body.String(), cookie)
	}
	set := w.Header().Get("Set-Cookie")
	for _, attr := range []string{"HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="} {
		if !strings.Contains(set, attr) {
			t.Fatalf("Set-Cookie %q lacks %s", set, attr)
		}
	}
	if strings.Contains(set, csrf) || strings.Contains(w.Body.String(), cookie.Value) {
		t.Fatal("the cookie and the CSRF token must differ, each in its own place")
	}
	withCookie := func(method, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
		hr := httptest.NewRequest(method, path, strings.NewReader(body))
		hr.Host = "127.0.0.1:3002"
		hr.AddCookie(cookie)
		for k, v := range hdr {
			hr.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, hr)
		return rec
	}
	origin := map[string]string{"Origin": "http://127.0.0.1:3002"}
	if w := withCookie("POST", "/admin/scale", `{"workers": 3}`, origin); w.Code != 403 || len(sup.scaled) != 0 ||
		!strings.Contains(w.Body.String(), "CSRF") {
		t.Fatalf("scale with the cookie, without the CSRF token: %d %s, scaled %v; want 403", w.Code, w.Body.String(), sup.scaled)
	}
	if w := withCookie("POST", "/admin/reload", "", map[string]string{"X-CSRF-Token": csrf + "x"}); w.Code != 403 {
		t.Fatalf("reload with a wrong CSRF token: %d, want 403", w.Code)
	}
	if w := withCookie("GET", "/admin/workers", "", nil); w.Code != 403 {
		t.Fatalf("GET with the cookie alone: %d, want 403 (a replayed cookie opens nothing)", w.Code)
	}
	good := map[string]string{"X-CSRF-Token": csrf, "Origin": "http://127.0.0.1:3002"}
	if w := withCookie("POST", "/admin/scale", `{"workers": 3}`, good); w.Code != 200 || len(sup.scaled) != 1 {
		t.Fatalf("scale with cookie and CSRF token: %d %s", w.Code, w.Body.String())
	}
	for _, path := range []string{"/admin/workers", "/admin/stats", "/admin/session"} {
		if w := withCookie("GET", path, "", good); w.Code != 200 {
			t.Fatalf("GET %s with the session: %d %s", path, w.Code, w.Body.String())
		}
	}
	if w := withCookie("GET", "/admin/session", "", good); !strings.Contains(w.Body.String(), `"authenticated": true`) {
		t.Fatalf("/admin/session with the session: %s", w.Body.String())
	}
	// The Origin guard still holds for a session.
	if w := withCookie("POST", "/admin/reload", "", map[string]string{"X-CSRF-Token": csrf, "Origin": "http://evil.example"}); w.Code != 403 {
		t.Fatalf("reload from another origin with the session: %d, want 403", w.Code)
	}
	if w := withCookie("POST", "/admin/logout", "", good); w.Code != 200 || !strings.Contains(w.Header().Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("logout: %d %v", w.Code, w.Header())
	}
	if w := withCookie("GET", "/admin/workers", "", good); w.Code != 401 {
		t.Fatalf("after logout: %d, want 401", w.Code)
	}
	// The bearer token needs no CSRF token.
	if w := (req{method: "POST", path: "/admin/reload", host: "localhost",
		header: map[string]string{"Authorization": "Bearer " + testToken}}.do(h)); w.Code != 200 {
		t.Fatalf("reload with the bearer token: %d", w.Code)
	}
}

// Without ADMIN_TOKEN (loopback only) the dashboard needs no login, as
// the API needs no token.
func TestDashboardNoToken(t *testing.T) {
	t.Parallel()
	h := fakeAPI(&fakeSupervisor{}, false)
	var info map[string]bool
	w := req{method: "GET", path: "/admin/session", host: "localhost"}.do(h)
	if json.Unmarshal(w.Body.Bytes(), &info); w.Code != 200 || !info["authenticated"] || info["token_required"] {
		t.Fatalf("/admin/session without a token configured: %d %v", w.Code, info)
	}
	if w := (req{method: "GET", path: "/admin/stats", host: "localhost"}.do(h)); w.Code != 200 {
		t.Fatalf("/admin/stats: %d", w.Code)
	}
}

// Observe, on every proxied attempt, neither locks nor allocates once an
// upstream has its histogram.
func TestDashboardObserveAllocs(t *testing.T) {
	sel, _ := pool.NewSelector("round_robin")
	p := pool.New(sel, pool.OutlierOptions{}, hclog.NewNullLogger())
	u := pool.NewUpstream(1, pool.Local, "unix:/w1.sock")
	p.Publish([]*pool.Upstream{u})
	s := admin.NewStats(p, &fakeSupervisor{}, admin.StatsOptions{})
	m := admin.NewMetrics(p, &fakeSupervisor{})
	m.Stats = s
	m.Observe(u, 200, time.Millisecond)
	if n := testing.AllocsPerRun(1000, func() { m.Observe(u, 200, 3*time.Millisecond) }); n != 0 {
		t.Fatalf("Observe allocates %.1f times per call, want 0", n)
	}
}

// Samples turn the upstreams' counters into rates per id (a worker and its
// replacement summed), latency percentiles of the last minute, and a
// history with the memory of each worker.
func TestDashboardStatsSamples(t *testing.T) {
	t.Parallel()
	sel, _ := pool.NewSelector("round_robin")
	p := pool.New(sel, pool.OutlierOptions{}, hclog.NewNullLogger())
	u1, u2 := upstream(1, pool.Local, pool.Healthy, 0, nil), upstream(2, pool.Local, pool.Healthy, 0, nil)
	p.Publish([]*pool.Upstream{u1, u2})
	sup := &fakeSupervisor{active: 2, views: []supervisor.WorkerView{{ID: 1, Upstream: u1}, {ID: 2, Upstream: u2}}}
	s := admin.NewStats(p, sup, admin.StatsOptions{Interval: time.Second, Window: 10 * time.Second})
	t0 := time.Now()
	s.Sample(t0)
	for i := range 100 {
		u1.Acquire()
		u1.Release(200)
		s.Observe(u1, 200, time.Duration(i+1)*time.Millisecond) // 1..100 ms
	}
	for range 10 {
		u2.Acquire()
		u2.Release(502)
		s.Observe(u2, 502, 40*time.Millisecond)
	}
	s.Sample(t0.Add(2 * time.Second))

	h := tokenAPI(sup, s)
	w := req{method: "GET", path: "/admin/stats?history=1", host: "localhost",
		header: map[string]string{"Authorization": "Bearer " + testToken}}.do(h)
	var r admin.StatsReport
	if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil || w.Code != 200 {
		t.Fatalf("/admin/stats: %d %v\n%s", w.Code, err, w.Body.String())
	}
	if len(r.Workers) != 2 || r.Workers[0].ReqPerSec != 50 || r.Workers[1].ErrPerSec != 5 || r.Workers[0].ErrPerSec != 0 {
		t.Fatalf("rates: %+v", r.Workers)
	}
	p50, p99 := r.Workers[0].P50Ms, r.Workers[0].P99Ms
	if p50 == nil || p99 == nil || *p50 < 40 || *p50 > 60 || *p99 < 85 || *p99 > 120 {
		t.Fatalf("worker 1 latency p50 %v p99 %v, want about 50 and 99 ms", fmtp(p50), fmtp(p99))
	}
	if r.Totals.ReqPerSec != 55 || r.Totals.P50Ms == nil {
		t.Fatalf("totals: %+v", r.Totals)
	}
	if r.History == nil || len(r.History.Times) != 2 || len(r.History.Workers) != 2 ||
		*r.History.Workers[0].ReqPerSec[1] != 50 || *r.History.Total.ReqPerSec[1] != 55 {
		t.Fatalf("history: %s", w.Body.String())
	}

	// A replacement in slot 1: the new process's requests count for id 1.
	u1b := upstream(1, pool.Local, pool.Healthy, 0, nil)
	p.Publish([]*pool.Upstream{u1b, u2})
	for range 30 {
		u1b.Acquire()
		u1b.Release(200)
	}
	s.Sample(t0.Add(3 * time.Second))
	for i := 4; i < 70; i++ {
		s.Sample(t0.Add(time.Duration(i) * time.Second))
	}
	w = req{method: "GET", path: "/admin/stats?history=1", host: "localhost",
		header: map[string]string{"Authorization": "Bearer " + testToken}}.do(h)
	r = admin.StatsReport{}
	if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.History.Times) != 10 {
		t.Fatalf("history keeps %d samples, want the window's 10", len(r.History.Times))
	}
	if r.Workers[0].P50Ms != nil {
		t.Fatalf("latency older than a minute is still reported: %v", *r.Workers[0].P50Ms)
	}
}

func fmtp(p *float64) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}

// recyclingSupervisor is a fakeSupervisor that recycles.
type recyclingSupervisor struct {
	*fakeSupervisor
	mu       sync.Mutex
	recycled []int
	err      error
}

func (r *recyclingSupervisor) Recycle(_ context.Context, id int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recycled = append(r.recycled, id)
	return r.err
}

// POST /admin/recycle {"worker": id} asks the supervisor to recycle that
// worker; its errors map to 404 (no such worker), 409 (not serving, or an
// operation runs), 503 (shutting down); a bad body is 400 and asks
// nothing.
func TestDashboardRecycleAnswers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body   string
		err    error
		status int
	}{
		{`{"worker": 2}`, nil, 200},
		{`{"worker": 9}`, fmt.Errorf("worker 9: %w", supervisor.ErrNoWorker), 404},
		{`{"worker": 2}`, fmt.Errorf("worker 2: %w: starting", supervisor.ErrNotServing), 409},
		{`{"worker": 2}`, supervisor.ErrBusy, 409},
		{`{"worker": 2}`, supervisor.ErrStopping, 503},
		{`{"worker": 2}`, errors.New("replacement not healthy"), 500},
		{`{}`, nil, 400}, {`{"worker": "2"}`, nil, 400}, {`{"worker": 2, "x": 1}`, nil, 400}, {`nope`, nil, 400},
	} {
		sup := &recyclingSupervisor{fakeSupervisor: &fakeSupervisor{}, err: tc.err}
		w := req{method: "POST", path: "/admin/recycle", host: "localhost", body: tc.body}.do(fakeAPI(sup, false))
		body := jsonBody(t, tc.body, w.Code, w.Body.Bytes())
		if w.Code != tc.status {
			t.Fatalf("recycle %s with %v: %d %v, want %d", tc.body, tc.err, w.Code, body, tc.status)
		}
		if asked := len(sup.recycled) > 0; asked != (tc.status != 400) {
			t.Fatalf("recycle %s: supervisor asked %v", tc.body, sup.recycled)
		}
	}
	// A supervisor that cannot recycle: 501.
	if w := (req{method: "POST", path: "/admin/recycle", host: "localhost", body: `{"worker": 1}`}.do(fakeAPI(&fakeSupervisor{}, false))); w.Code != 501 {
		t.Fatalf("recycle without a Recycler: %d, want 501", w.Code)
	}
}
