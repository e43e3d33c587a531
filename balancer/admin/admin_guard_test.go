package admin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procbal/procbal/balancer/admin"
	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/balancer/supervisor"
)

// newAPI returns the package's real handler over an empty pool and a
// supervisor that is never run: a command that got past the guard and the
// token would wait for it and time out, so none changes anything here.
func newAPI(t *testing.T, addr, token string) (http.Handler, *supervisor.Supervisor) {
	t.Helper()
	log := hclog.NewNullLogger()
	sel, err := pool.NewSelector("round_robin")
	if err != nil {
		t.Fatal(err)
	}
	p := pool.New(sel, pool.OutlierOptions{}, log)
	sup := supervisor.New(supervisor.Config{SocketDir: t.TempDir()}, p, pool.CheckOptions{}, log)
	return admin.New(admin.Options{
		Token: token, Addr: addr, Strategy: "round_robin", Pool: p, Supervisor: sup,
		Log: log, WorkerLimit: 8, OpTimeout: 50 * time.Millisecond,
	}), sup
}

type req struct {
	method, path, host, body string
	header                   map[string]string
}

func (r req) do(h http.Handler) *httptest.ResponseRecorder {
	hr := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
	hr.Host = r.host
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, hr)
	return w
}

// wantRefused checks a 403 with a JSON error body.
func wantRefused(t *testing.T, what string, w *httptest.ResponseRecorder) {
	t.Helper()
	var body map[string]string
	if w.Code != http.StatusForbidden || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("%s: %d %q, want 403 with JSON", what, w.Code, w.Body.String())
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body["error"] == "" {
		t.Fatalf("%s: body %q, want {\"error\": ...}", what, w.Body.String())
	}
}

// A loopback admin API answers only requests whose Host names loopback: a
// DNS-rebinding page sends its own name and is refused.
func TestGuardHostOnLoopback(t *testing.T) {
	t.Parallel()
	for _, token := range []string{"", "s3cret"} {
		h, _ := newAPI(t, "127.0.0.1:3002", token)
		auth := map[string]string{}
		if token != "" {
			auth["Authorization"] = "Bearer " + token
		}
		for _, host := range []string{"127.0.0.1:3002", "127.0.0.1", "127.9.8.7:1234", "localhost:3002",
			"localhost", "LocalHost:3002", "localhost.:3002", "[::1]:3002", "[::1]"} {
			w := req{"GET", "/admin/health", host, "", auth}.do(h)
			if w.Code == http.StatusForbidden || !strings.Contains(w.Body.String(), "healthy_upstreams") {
				t.Fatalf("token %q, Host %q: %d %s, want the health answer", token, host, w.Code, w.Body)
			}
		}
		for _, host := range []string{"evil.example", "evil.example:3002", "127.0.0.1.evil.example:3002",
			"localhost.evil.example", "10.0.0.5:3002", "0.0.0.0:3002", "[::2]:3002", "::1", "", "127.1:3002"} {
			for _, path := range []string{"/admin/workers", "/admin/health", "/metrics", "/debug/pprof/", "/nothing"} {
				wantRefused(t, "token "+token+" GET "+path+" Host "+host, req{"GET", path, host, "", auth}.do(h))
			}
			w := req{"POST", "/admin/scale", host, `{"workers": 1}`, auth}.do(h)
			wantRefused(t, "POST /admin/scale Host "+host, w)
		}
	}
}

// A state-changing request from a web page (a cross-site or same-site
// Sec-Fetch-Site, or a foreign Origin) is refused and changes nothing;
// curl's requests, and the admin API's own origin, pass.
func TestGuardRefusesPages(t *testing.T) {
	t.Parallel()
	h, sup := newAPI(t, "127.0.0.1:3002", "")
	const host = "127.0.0.1:3002"
	for _, hdr := range []map[string]string{
		{"Origin": "http://evil.example"},
		{"Origin": "https://evil.example", "Content-Type": "text/plain"},
		{"Origin": "null"},
		{"Origin": ""},
		{"Origin": "http://localhost:8080"},
		{"Origin": "http://127.0.0.1:8080"},
		{"Origin": "http://127.0.0.1:3002/path"},
		{"Origin": "file://"},
		{"Sec-Fetch-Site": "cross-site"},
		{"Sec-Fetch-Site": "same-site"},
		{"Sec-Fetch-Site": "same-site", "Origin": "http://localhost:3002"},
	} {
		for _, path := range []string{"/admin/scale", "/admin/reload"} {
			for _, method := range []string{"POST", "PUT", "DELETE", "PATCH"} {
				wantRefused(t, method+" "+path+" with "+strings.Join(flat(hdr), " "),
					req{method, path, host, `{"workers": 4}`, hdr}.do(h))
			}
		}
	}
	if n := sup.Active(); n != 0 {
		t.Fatalf("refused requests changed the worker count to %d", n)
	}
	// Past the guard, {"workers": 0} is the handler's own 422.
	for _, hdr := range []map[string]string{
		nil,
		{"Origin": "http://127.0.0.1:3002"},
		{"Origin": "http://localhost:3002"},
		{"Origin": "http://[::1]:3002"},
		{"Sec-Fetch-Site": "same-origin"},
		{"Sec-Fetch-Site": "none"},
	} {
		w := req{"POST", "/admin/scale", host, `{"workers": 0}`, hdr}.do(h)
		if w.Code != http.StatusUnprocessableEntity {
			t.Fatalf("POST with %v: %d %s, want the handler's 422", hdr, w.Code, w.Body)
		}
	}
	// Reads are not state-changing: CORS keeps their answers from a page.
	w := req{"GET", "/admin/health", host, "", map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}}.do(h)
	if w.Code == http.StatusForbidden {
		t.Fatalf("cross-site GET: %d, want it answered", w.Code)
	}
}

func flat(m map[string]string) []string {
	var s []string
	for k, v := range m {
		s = append(s, k+": "+v)
	}
	return s
}

// The README's curl commands still work over a real listener.
func TestGuardLetsCurlThrough(t *testing.T) {
	t.Parallel()
	h, _ := newAPI(t, "127.0.0.1:3002", "")
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/admin/scale", "application/x-www-form-urlencoded", strings.NewReader(`{"workers": 0}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("curl-like POST: %d, want the handler's 422", resp.StatusCode)
	}
	resp, err = http.Get(srv.URL + "/admin/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusForbidden {
		t.Fatalf("curl-like GET: %d", resp.StatusCode)
	}
}

// With a wildcard or non-loopback ADMIN_ADDR a token is required, and it
// is the guard: any Host passes with it, none without it; a foreign Origin
// still cannot change anything.
func TestGuardNonLoopbackTokenGuards(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"0.0.0.0:3002", ":3002", "10.0.0.5:3002"} {
		h, _ := newAPI(t, addr, "s3cret")
		good := map[string]string{"Authorization": "Bearer s3cret"}
		for _, host := range []string{"admin.internal:3002", "10.0.0.5:3002", "127.0.0.1:3002"} {
			if w := (req{"GET", "/admin/health", host, "", good}).do(h); w.Code == http.StatusForbidden || w.Code == http.StatusUnauthorized {
				t.Fatalf("%s: Host %s with the token: %d", addr, host, w.Code)
			}
			if w := (req{"GET", "/admin/health", host, "", nil}).do(h); w.Code != http.StatusUnauthorized {
				t.Fatalf("%s: Host %s without the token: %d, want 401", addr, host, w.Code)
			}
		}
		evil := map[string]string{"Authorization": "Bearer s3cret", "Origin": "http://evil.example"}
		wantRefused(t, addr+" POST with a foreign Origin", req{"POST", "/admin/scale", "admin.internal:3002", `{"workers": 1}`, evil}.do(h))
		own := map[string]string{"Authorization": "Bearer s3cret", "Origin": "http://admin.internal:3002"}
		if w := (req{"POST", "/admin/scale", "admin.internal:3002", `{"workers": 0}`, own}).do(h); w.Code != http.StatusUnprocessableEntity {
			t.Fatalf("%s: POST from the API's own origin: %d %s, want 422", addr, w.Code, w.Body)
		}
	}
}

// The token is compared whole, the Bearer scheme in any case; anything
// else is 401 with WWW-Authenticate.
func TestGuardToken(t *testing.T) {
	t.Parallel()
	h, _ := newAPI(t, "127.0.0.1:3002", "s3cret")
	for _, a := range []string{"Bearer s3cret", "bearer s3cret", "BEARER s3cret", "bEaReR s3cret"} {
		w := req{"GET", "/admin/health", "127.0.0.1:3002", "", map[string]string{"Authorization": a}}.do(h)
		if w.Code == http.StatusUnauthorized || w.Code == http.StatusForbidden {
			t.Fatalf("Authorization %q: %d, want accepted", a, w.Code)
		}
	}
	for _, a := range []string{"", "s3cret", "Bearer", "Bearer ", "Bearer wrong", "Bearer s3cre", "Bearer s3cretX",
		"Bearer S3CRET", "Basic s3cret", "Bearers3cret", "Token s3cret"} {
		w := req{"GET", "/admin/health", "127.0.0.1:3002", "", map[string]string{"Authorization": a}}.do(h)
		if w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") == "" {
			t.Fatalf("Authorization %q: %d, want 401 with WWW-Authenticate", a, w.Code)
		}
	}
}
