package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath returns Debian's chromium (make test-deps installs it), or
// another Chromium or Chrome on PATH. Never skipped: without one the
// dashboard is untested, so the test fails and says how to get one.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("Chromium is needed to test the dashboard and was not found " +
		"(run `make test` as root, which installs Debian's chromium, or apt-get install chromium)")
	return ""
}

// browser starts headless Chromium and returns a context for new tabs.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // root in CI: Chromium's sandbox refuses to run as root
		chromedp.DisableGPU,
		chromedp.WindowSize(1400, 1100),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", chromiumPath(t), err)
	}
	return ctx
}

// consoleErrors collects a tab's console errors, uncaught exceptions and
// error entries of the browser log (failed loads, CSP violations).
type consoleErrors struct {
	mu   sync.Mutex
	errs []string
}

// listen subscribes to the console of the tab of ctx; call it before the
// actions whose messages count.
func (c *consoleErrors) listen(ctx context.Context) {
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				c.mu.Lock()
				c.errs = append(c.errs, m.String()+" "+m.URL)
				c.mu.Unlock()
			}
		}
	}()
}

func (c *consoleErrors) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errs...)
}

// dashRow is what the page shows of one upstream.
type dashRow struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	PID      string `json:"pid"`
	Restarts string `json:"restarts"`
}

const rowsJS = `Array.from(document.querySelectorAll('#workers tbody tr')).map(tr => ({
	id: tr.dataset.id, state: tr.dataset.state, pid: tr.dataset.pid, restarts: tr.dataset.restarts}))`

// rows reads the table.
func rows(t *testing.T, ctx context.Context) []dashRow {
	t.Helper()
	rs, err := chromedp.Run(ctx, chromedp.Evaluate[[]dashRow](rowsJS))
	if err != nil {
		t.Fatalf("reading the table: %v", err)
	}
	return rs
}

// waitRows polls the table until ok holds or d passes, and returns the
// time it took.
func waitRows(t *testing.T, ctx context.Context, d time.Duration, what string, ok func([]dashRow) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		rs := rows(t, ctx)
		if ok(rs) {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("the dashboard did not show %s within %s; it shows %+v", what, d, rs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func allHealthy(n int) func([]dashRow) bool {
	return func(rs []dashRow) bool {
		if len(rs) != n {
			return false
		}
		for _, r := range rs {
			if r.State != "healthy" {
				return false
			}
		}
		return true
	}
}

// Issue 14: headless Chromium opens /admin/: without login it shows the
// login form and the API answers its calls 401; it logs in with the token
// and sees one row per worker; the scale button to 4 shows 4 healthy rows
// within 3 s; the reload button changes every restart count; no console
// error on the way. The screenshot's path is printed.
func TestDashboardBrowser(t *testing.T) {
	t.Parallel()
	const token = "dash-s3cret"
	b := launch(t, "ADMIN_TOKEN="+token, "MAX_WORKERS=2", "LOG_LEVEL=info")
	waitFor(t, 15*time.Second, "2 healthy workers", func() bool {
		return b.tokenGet("/admin/health", token) == 200 && healthyWithToken(t, b, token) == 2
	})
	l := startLoad(b, 2, "/api/health") // something to chart
	defer l.finish(t)
	url := "http://" + b.admin + "/admin/"
	bctx := browser(t)

	// Without login: the login form, and 401 for the API.
	anon, cancel := chromedp.NewContext(bctx)
	defer cancel()
	if err := chromedp.Do(anon, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#login-form"))); err != nil {
		t.Fatalf("the page without login: %v", err)
	}
	dashHidden, err := chromedp.Run(anon, chromedp.Evaluate[bool](`document.querySelector('#dash').hidden`))
	if err != nil {
		t.Fatal(err)
	}
	statuses, err := chromedp.Run(anon, chromedp.Evaluate[[]int](`Promise.all(['/admin/workers', '/admin/stats', '/admin/scale', '/metrics'].map(
		(p, i) => fetch(p, {method: i === 2 ? 'POST' : 'GET', body: i === 2 ? '{"workers": 3}' : undefined}).then(r => r.status)))`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("the API calls without login: %v", err)
	}
	if !dashHidden || fmt.Sprint(statuses) != "[401 401 401 401]" {
		t.Fatalf("without login: dashboard hidden %v, API answers %v; want hidden and 401s", dashHidden, statuses)
	}

	// Log in, in a tab of its own, whose console must stay clean.
	tab, cancel := chromedp.NewContext(bctx)
	defer cancel()
	var console consoleErrors
	console.listen(tab)
	err = chromedp.Do(tab,
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#login-btn")),
		chromedp.WaitVisible(chromedp.CSS("#workers")),
	)
	if err != nil {
		t.Fatalf("logging in: %v", err)
	}
	waitRows(t, tab, 5*time.Second, "one healthy row per worker", allHealthy(2))

	// Scale to 4: four healthy rows within 3 s of the press.
	err = chromedp.Do(tab,
		chromedp.Evaluate[chromedp.Void](`(() => { const i = document.querySelector('#scale-n'); i.value = '4';
			i.dispatchEvent(new Event('input', {bubbles: true})); })()`),
		chromedp.Click(chromedp.CSS("#scale-btn")),
	)
	if err != nil {
		t.Fatalf("pressing scale: %v", err)
	}
	took := waitRows(t, tab, 3*time.Second, "4 healthy rows", allHealthy(4))
	t.Logf("scale to 4: 4 healthy rows %s after the press", took.Round(time.Millisecond))

	// Reload: every row's restart count goes up.
	before := map[string]string{}
	for _, r := range rows(t, tab) {
		before[r.ID] = r.Restarts
	}
	if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS("#reload-btn"))); err != nil {
		t.Fatalf("pressing reload: %v", err)
	}
	waitRows(t, tab, 30*time.Second, "every restart count changed by the reload", func(rs []dashRow) bool {
		if !allHealthy(4)(rs) {
			return false
		}
		for _, r := range rs {
			if r.Restarts == before[r.ID] {
				return false
			}
		}
		return true
	})
	err = chromedp.Do(tab,
		chromedp.WaitVisible(chromedp.CSS("#chart-rps canvas")),
		chromedp.Poll[chromedp.Void](`document.querySelector('#op-status').textContent.startsWith('Reload: done')`,
			chromedp.WithPollingTimeout(10*time.Second)),
	)
	if err != nil {
		status, _ := chromedp.Run(tab, chromedp.Text(chromedp.CSS("#op-status")))
		t.Fatalf("after the reload: %v (status %q)", err, status)
	}

	// Let the charts get a few samples, then the screenshot.
	time.Sleep(6 * time.Second)
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	shot := filepath.Join(t.TempDir(), "dashboard.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("dashboard screenshot: %s", shot)
	if dir := os.Getenv("DASHBOARD_SCREENSHOT_DIR"); dir != "" { // to keep it past the test
		os.WriteFile(filepath.Join(dir, "dashboard.png"), png, 0o644)
	}
	if errs := console.list(); len(errs) > 0 {
		t.Fatalf("console errors:\n%s", strings.Join(errs, "\n"))
	}
}

// healthyWithToken counts the healthy workers of /admin/workers.
func healthyWithToken(t *testing.T, b *bal, token string) int {
	req, _ := http.NewRequest("GET", "http://"+b.admin+"/admin/workers", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var r struct {
		Totals struct{ Healthy int } `json:"totals"`
	}
	json.NewDecoder(resp.Body).Decode(&r)
	return r.Totals.Healthy
}

// Issue 14: against the real balancer, a state-changing request with the
// dashboard's session cookie but without its CSRF token is 403 and changes
// nothing; with the token it is done.
func TestDashboardCSRFRefused(t *testing.T) {
	t.Parallel()
	const token = "csrf-s3cret"
	b := launch(t, "ADMIN_TOKEN="+token, "MAX_WORKERS=1")
	waitFor(t, 15*time.Second, "a healthy worker", func() bool { return healthyWithToken(t, b, token) == 1 })
	resp, err := client.Post("http://"+b.admin+"/admin/login", "application/json", strings.NewReader(`{"token": "`+token+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	var login struct {
		CSRF string `json:"csrf"`
	}
	json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	cookies := resp.Cookies()
	if resp.StatusCode != 200 || len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode || login.CSRF == "" {
		t.Fatalf("login: %d, cookies %+v", resp.StatusCode, cookies)
	}
	post := func(csrf string) (int, string) {
		req, _ := http.NewRequest("POST", "http://"+b.admin+"/admin/scale", strings.NewReader(`{"workers": 2}`))
		req.AddCookie(cookies[0])
		if csrf != "" {
			req.Header.Set("X-CSRF-Token", csrf)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Error
	}
	if code, msg := post(""); code != 403 || !strings.Contains(msg, "CSRF") {
		t.Fatalf("scale with the session cookie, without the CSRF token: %d %q, want 403", code, msg)
	}
	if n := healthyWithToken(t, b, token); n != 1 {
		t.Fatalf("%d workers after a refused scale, want 1", n)
	}
	if code, msg := post(login.CSRF); code != 200 {
		t.Fatalf("scale with the session and its CSRF token: %d %q", code, msg)
	}
}
