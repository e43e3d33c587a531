package api

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/procbal/procbal/shared/protocol"
	"github.com/procbal/procbal/worker/store"
	"github.com/procbal/procbal/worker/store/storetest"
)

// The handler tests run against real servers (storetest), stopped after
// m.Run even when a test fails.
func TestMain(m *testing.M) {
	code := m.Run()
	storetest.CloseShared()
	os.Exit(code)
}

// answer is a response as a test sees it.
type answer struct {
	code      int
	body      string
	setCookie string
	header    *fasthttp.ResponseHeader
}

// serve runs one request through serve (h.Serve or h.ServeInternal).
func serve(serve fasthttp.RequestHandler, method, uri, body, cookie string) answer {
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	if body != "" {
		req.SetBodyString(body)
	}
	if cookie != "" {
		req.Header.SetCookie(SessionCookie, cookie)
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, nil, nil)
	serve(&ctx)
	a := answer{code: ctx.Response.StatusCode(), body: string(ctx.Response.Body()), header: &fasthttp.ResponseHeader{}}
	ctx.Response.Header.CopyTo(a.header)
	ctx.Response.Header.VisitAllCookie(func(k, v []byte) {
		if string(k) == SessionCookie {
			a.setCookie = string(v)
		}
	})
	return a
}

func (a answer) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(a.body), v); err != nil {
		t.Fatalf("answer %d %q: %v", a.code, a.body, err)
	}
}

// wantCode checks one input case.
func wantCode(t *testing.T, a answer, code int, what string) {
	t.Helper()
	if a.code != code {
		t.Errorf("%s: %d %s, want %d", what, a.code, a.body, code)
		return
	}
	if code >= 400 && !strings.Contains(a.body, `"error":`) {
		t.Errorf("%s: error body %q is not {\"error\": ...}", what, a.body)
	}
}

func dbHandler(t *testing.T) *Handler {
	t.Helper()
	db, err := store.OpenPostgres(store.PostgresOptions{URL: storetest.Database(t), MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return New(Options{ID: 7, PID: 70, DB: db})
}

// Issue 10: every input case of the item routes answers its code.
func TestItemInputs(t *testing.T) {
	t.Parallel()
	h := dbHandler(t)
	post := func(body string) answer { return serve(h.Serve, "POST", "/api/items", body, "") }
	for _, c := range []struct {
		body string
		code int
	}{
		{`{"name": "a"}`, 201},
		{`{"name": "` + strings.Repeat("é", 200) + `"}`, 201}, // 200 characters, 400 bytes
		{`{"name": "a", "other": 1}`, 201},
		{``, 400},
		{`{`, 400},
		{`{"name": "a"`, 400},
		{`[]`, 400},
		{`"name"`, 400},
		{`null`, 400},
		{`{"name": "a"} {}`, 400},
		{`{"name": ""}`, 422},
		{`{}`, 422},
		{`{"name": null}`, 422},
		{`{"name": 5}`, 422},
		{`{"name": "` + strings.Repeat("x", 201) + `"}`, 422},
		{`{"name": "` + strings.Repeat("é", 201) + `"}`, 422},
		{"{\"name\": \"a\xffb\"}", 422},
		{"{\"name\": \"\xc3\"}", 422},
		{`{"name": "\ud800"}`, 422},
		{`{"name": "a\u0000b"}`, 422},
	} {
		wantCode(t, post(c.body), c.code, fmt.Sprintf("POST %q", c.body))
	}
	// U+FFFD itself is valid text, literal or escaped.
	wantCode(t, post(`{"name": "\ufffd"}`), 201, `POST "\ufffd"`)
	wantCode(t, post("{\"name\": \"\uFFFD\"}"), 201, "POST U+FFFD")

	a := post(`{"name": "widget"}`)
	var it store.Item
	a.json(t, &it)
	if it.ID <= 0 || it.Name != "widget" || it.CreatedAt.IsZero() || !strings.Contains(a.body, `"created_at":`) {
		t.Fatalf("created %s", a.body)
	}
	if loc := string(a.header.Peek("Location")); loc != fmt.Sprintf("/api/items/%d", it.ID) {
		t.Fatalf("Location %q", loc)
	}
	path := fmt.Sprintf("/api/items/%d", it.ID)
	got := serve(h.Serve, "GET", path, "", "")
	if got.code != 200 || got.body != a.body {
		t.Fatalf("GET %s = %d %s, want %s", path, got.code, got.body, a.body)
	}
	for _, c := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/api/items/abc", 400},
		{"GET", "/api/items/1x", 400},
		{"GET", "/api/items/-1", 400},
		{"GET", "/api/items/0", 400},
		{"GET", "/api/items/+1", 400},
		{"GET", "/api/items/", 400},
		{"GET", "/api/items/99999999999999999999", 400},
		{"GET", "/api/items/999999999", 404},
		{"DELETE", "/api/items/abc", 400},
		{"DELETE", "/api/items/999999999", 404},
		{"PUT", path, 405},
		{"PUT", "/api/items", 405},
		{"GET", "/api/items?limit=0", 400},
		{"GET", "/api/items?limit=101", 400},
		{"GET", "/api/items?limit=x", 400},
		{"GET", "/api/items?cursor=x", 400},
		{"GET", "/api/items?cursor=-5", 400},
		{"GET", "/api/items?limit=100", 200},
		{"DELETE", path, 204},
		{"GET", path, 404},
		{"DELETE", path, 404},
	} {
		wantCode(t, serve(h.Serve, c.method, c.path, "", ""), c.code, c.method+" "+c.path)
	}
}

// Issue 10: GET /api/items pages by id: 20 by default, next_cursor until
// the last page, where it is null.
func TestItemPages(t *testing.T) {
	t.Parallel()
	h := dbHandler(t)
	for i := range 25 {
		if a := serve(h.Serve, "POST", "/api/items", fmt.Sprintf(`{"name": "n%d"}`, i), ""); a.code != 201 {
			t.Fatalf("POST: %d %s", a.code, a.body)
		}
	}
	var page struct {
		Items      []store.Item `json:"items"`
		NextCursor *string      `json:"next_cursor"`
	}
	serve(h.Serve, "GET", "/api/items", "", "").json(t, &page)
	if len(page.Items) != DefaultPageSize || page.NextCursor == nil {
		t.Fatalf("default page: %d items, next %v", len(page.Items), page.NextCursor)
	}
	var names []string
	uri := "/api/items?limit=10"
	for range 4 {
		a := serve(h.Serve, "GET", uri, "", "")
		page.NextCursor = nil
		a.json(t, &page)
		for _, it := range page.Items {
			names = append(names, it.Name)
		}
		if page.NextCursor == nil {
			if !strings.Contains(a.body, `"next_cursor":null`) {
				t.Fatalf("last page %s", a.body)
			}
			break
		}
		uri = "/api/items?limit=10&cursor=" + *page.NextCursor
	}
	if len(names) != 25 || names[0] != "n0" || names[24] != "n24" {
		t.Fatalf("paged through %d items: %v", len(names), names)
	}
	empty := serve(h.Serve, "GET", "/api/items?cursor=999999999", "", "")
	if empty.code != 200 || empty.body != `{"items":[],"next_cursor":null}` {
		t.Fatalf("past the end: %d %s", empty.code, empty.body)
	}
}

// Issue 10: without DATABASE_URL the item routes answer 503 naming it.
func TestItemsWithoutDatabase(t *testing.T) {
	t.Parallel()
	h := New(Options{ID: 1})
	for _, r := range [][2]string{{"POST", "/api/items"}, {"GET", "/api/items"}, {"GET", "/api/items/1"}, {"DELETE", "/api/items/1"}} {
		a := serve(h.Serve, r[0], r[1], `{"name": "a"}`, "")
		if a.code != 503 || !strings.Contains(a.body, "DATABASE_URL") {
			t.Errorf("%s %s: %d %s, want 503 naming DATABASE_URL", r[0], r[1], a.code, a.body)
		}
	}
}

func redisHandler(t *testing.T, o Options) *Handler {
	t.Helper()
	r, err := store.OpenRedis(store.RedisOptions{URL: storetest.SharedRedis(t).URL(0)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	o.Redis = r
	return New(o)
}

// Issue 10: every input case of the session routes answers its code, in
// Redis and in memory; the cookie is HttpOnly, SameSite=Lax, Secure when
// asked, and lives SESSION_TTL.
func TestSessionInputs(t *testing.T) {
	t.Parallel()
	for name, h := range map[string]*Handler{
		"redis":  redisHandler(t, Options{ID: 3, SessionTTL: time.Hour}),
		"memory": New(Options{ID: 3, SessionTTL: time.Hour}),
	} {
		t.Run(name, func(t *testing.T) { checkSessions(t, h) })
	}
	h := New(Options{CookieSecure: true})
	if a := serve(h.Serve, "POST", "/api/sessions", `{"user": "a"}`, ""); !strings.Contains(a.setCookie, "; secure") {
		t.Fatalf("COOKIE_SECURE=true: cookie %q is not Secure", a.setCookie)
	}
}

func checkSessions(t *testing.T, h *Handler) {
	for _, c := range []struct {
		body string
		code int
	}{
		{``, 400}, {`{`, 400}, {`[]`, 400}, {`{"user": "a"} x`, 400},
		{`{"user": ""}`, 422}, {`{}`, 422}, {`{"user": 1}`, 422}, {"{\"user\": \"\xff\"}", 422},
		{`{"user": "` + strings.Repeat("u", 201) + `"}`, 422},
	} {
		wantCode(t, serve(h.Serve, "POST", "/api/sessions", c.body, ""), c.code, fmt.Sprintf("POST %q", c.body))
	}
	a := serve(h.Serve, "POST", "/api/sessions", `{"user": "alice"}`, "")
	wantCode(t, a, 201, "POST alice")
	if a.body != `{"user":"alice","worker_id":3}` {
		t.Fatalf("created %s", a.body)
	}
	for _, attr := range []string{"; max-age=3600", "; path=/", "; HttpOnly", "; SameSite=Lax"} {
		if !strings.Contains(a.setCookie, attr) {
			t.Errorf("cookie %q lacks %q", a.setCookie, attr)
		}
	}
	if strings.Contains(a.setCookie, "; secure") {
		t.Errorf("cookie %q is Secure without COOKIE_SECURE", a.setCookie)
	}
	id := strings.TrimPrefix(strings.SplitN(a.setCookie, ";", 2)[0], SessionCookie+"=")
	if !store.ValidSessionID(id) {
		t.Fatalf("session id %q", id)
	}
	if h.redis != nil {
		if d, err := h.redis.TTL(context.Background(), id); err != nil || d < 59*time.Minute {
			t.Fatalf("ttl in redis %s, %v; want SESSION_TTL", d, err)
		}
	}
	me := serve(h.Serve, "GET", "/api/sessions/me", "", id)
	if me.code != 200 || me.body != `{"user":"alice","worker_id":3}` {
		t.Fatalf("GET me: %d %s", me.code, me.body)
	}
	for _, c := range []struct {
		method, cookie string
		code           int
	}{
		{"GET", "", 401},
		{"GET", "nonsense", 401},
		{"GET", store.NewSessionID(), 401},
		{"DELETE", "", 401},
		{"DELETE", store.NewSessionID(), 401},
		{"PUT", id, 405},
		{"DELETE", id, 204},
		{"GET", id, 401},
		{"DELETE", id, 401},
	} {
		wantCode(t, serve(h.Serve, c.method, "/api/sessions/me", "", c.cookie), c.code, c.method+" me with "+c.cookie)
	}
	wantCode(t, serve(h.Serve, "GET", "/api/sessions", "", ""), 405, "GET /api/sessions")
}

// Issue 10: /api/health reports each dependency, 503 when a configured
// one is down, within a second.
func TestHealthReportsDependencies(t *testing.T) {
	t.Parallel()
	a := serve(New(Options{ID: 2, PID: 20}).Serve, "GET", "/api/health", "", "")
	if a.code != 200 || a.body != `{"status":"ok","worker_id":2,"pid":20,"postgres":"disabled","redis":"disabled"}` {
		t.Fatalf("no dependencies: %d %s", a.code, a.body)
	}
	pg := storetest.PrivatePostgres(t)
	db, err := store.OpenPostgres(store.PostgresOptions{URL: pg.URL("postgres"), MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := redisHandler(t, Options{ID: 2, PID: 20, DB: db})
	a = serve(h.Serve, "GET", "/api/health", "", "")
	if a.code != 200 || a.body != `{"status":"ok","worker_id":2,"pid":20,"postgres":"ok","redis":"ok"}` {
		t.Fatalf("both up: %d %s", a.code, a.body)
	}
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	a = serve(h.Serve, "GET", "/api/health", "", "")
	if d := time.Since(start); a.code != 503 || d > time.Second ||
		a.body != `{"status":"degraded","worker_id":2,"pid":20,"postgres":"down","redis":"ok"}` {
		t.Fatalf("postgres down: %d %s after %s", a.code, a.body, d)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for serve(h.Serve, "GET", "/api/health", "", "").code != 200 {
		if time.Now().After(deadline) {
			t.Fatal("health did not recover")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Issue 10: the balancer's share endpoint on the report socket.
func TestDBShareEndpoint(t *testing.T) {
	t.Parallel()
	h := dbHandler(t)
	for range 2 { // leave a connection open
		serve(h.Serve, "POST", "/api/items", `{"name": "a"}`, "")
	}
	for _, c := range []struct {
		method, path, body string
		code               int
	}{
		{"POST", protocol.DBSharePath, `{`, 400},
		{"POST", protocol.DBSharePath, `{"max": "1"}`, 400},
		{"POST", protocol.DBSharePath, `{"max": 0}`, 422},
		{"POST", protocol.DBSharePath, `{}`, 422},
		{"GET", protocol.DBSharePath, ``, 405},
		{"POST", "/internal/other", `{"max": 1}`, 404},
	} {
		wantCode(t, serve(h.ServeInternal, c.method, c.path, c.body, ""), c.code, c.method+" "+c.path+" "+c.body)
	}
	a := serve(h.ServeInternal, "POST", protocol.DBSharePath, `{"max": 1}`, "")
	var st protocol.DBShareStatus
	a.json(t, &st)
	if a.code != 200 || st.Max != 1 || st.Open > 1 || h.db.Share() != 1 {
		t.Fatalf("share 1: %d %s", a.code, a.body)
	}
	if a := serve(h.Serve, "POST", "/api/items", `{"name": "b"}`, ""); a.code != 201 {
		t.Fatalf("POST with a share of 1: %d %s", a.code, a.body)
	}
	a = serve(New(Options{}).ServeInternal, "POST", protocol.DBSharePath, `{"max": 3}`, "")
	if a.code != 200 || a.body != `{"max":3,"open":0}` {
		t.Fatalf("without a database: %d %s", a.code, a.body)
	}
}
