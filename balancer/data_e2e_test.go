package main

// Issue 10 end to end: the reference worker on real PostgreSQL and Redis
// (storetest's throwaway servers), through the real balancer. The
// balancer passes DATABASE_URL and REDIS_URL on to its workers.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/procbal/procbal/worker/store/storetest"
)

// call sends a request to the client listener, with the session cookie
// when not empty, and returns the status, body, session cookie set (if
// any) and how long the answer took.
func (b *bal) call(method, path, body, session string) (int, string, string, time.Duration) {
	b.t.Helper()
	req, err := http.NewRequest(method, "http://"+b.addr+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	if session != "" {
		req.AddCookie(&http.Cookie{Name: "session", Value: session})
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	took := time.Since(start)
	var set string
	for _, c := range resp.Cookies() {
		if c.Name == "session" {
			set = c.Value
		}
	}
	return resp.StatusCode, string(data), set, took
}

// mustCall is call, failing the test on another status than want.
func (b *bal) mustCall(method, path, body, session string, want int) string {
	b.t.Helper()
	code, got, _, _ := b.call(method, path, body, session)
	if code != want {
		b.t.Fatalf("%s %s %s: %d %s, want %d", method, path, body, code, got, want)
	}
	return got
}

type e2eItem struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"`
}

func (b *bal) createItem(name string) e2eItem {
	b.t.Helper()
	var it e2eItem
	if err := json.Unmarshal([]byte(b.mustCall("POST", "/api/items", `{"name": "`+name+`"}`, "", 201)), &it); err != nil {
		b.t.Fatal(err)
	}
	return it
}

// checkItems reads every item back, each through the next worker.
func (b *bal) checkItems(items []e2eItem, what string) {
	b.t.Helper()
	for _, it := range items {
		var got e2eItem
		code, body, _, _ := b.call("GET", fmt.Sprintf("/api/items/%d", it.ID), "", "")
		if code != 200 || json.Unmarshal([]byte(body), &got) != nil || got != it {
			b.t.Fatalf("%s: item %d answered %d %s, want %+v", what, it.ID, code, body, it)
		}
	}
}

// slots is each worker's pid, restarts and ejections by slot id; it fails
// the test unless every worker is healthy.
func (b *bal) slots() map[int][3]int {
	b.t.Helper()
	m := map[int][3]int{}
	for _, w := range b.workers().Workers {
		if w.State != "healthy" {
			b.t.Fatalf("worker %d is %s", w.ID, w.State)
		}
		m[w.ID] = [3]int{w.PID, w.Restarts, w.Ejections}
	}
	return m
}

// Issue 10: a session created through the balancer is read back 3 x N
// times through it, and every one of the N workers served it.
func TestSessionServedByEveryWorker(t *testing.T) {
	t.Parallel()
	const n = 3
	b := startBalancer(t, n, "MAX_WORKERS=3", "REDIS_URL="+storetest.SharedRedis(t).URL(0))
	code, body, session, _ := b.call("POST", "/api/sessions", `{"user": "alice"}`, "")
	if code != 201 || session == "" {
		t.Fatalf("POST /api/sessions: %d %s, cookie %q", code, body, session)
	}
	served := map[int]int{}
	for range 3 * n {
		var me struct {
			User     string `json:"user"`
			WorkerID int    `json:"worker_id"`
		}
		if err := json.Unmarshal([]byte(b.mustCall("GET", "/api/sessions/me", "", session, 200)), &me); err != nil || me.User != "alice" {
			t.Fatalf("session read back as %+v, %v", me, err)
		}
		served[me.WorkerID]++
	}
	if len(served) != n {
		t.Fatalf("the session was served by workers %v, want all %d", served, n)
	}
	b.mustCall("DELETE", "/api/sessions/me", "", session, 204)
	for range n {
		b.mustCall("GET", "/api/sessions/me", "", session, 401)
	}
}

// Issue 10: items live in PostgreSQL, so they survive a rolling reload and
// a kill -9 of every worker.
func TestItemsSurviveReloadAndKill9(t *testing.T) {
	t.Parallel()
	b := startBalancer(t, 2, "DATABASE_URL="+storetest.Database(t), "DB_POOL_MAX=2")
	var items []e2eItem
	for i := range 4 {
		items = append(items, b.createItem(fmt.Sprintf("item %d", i)))
	}
	before := b.slots()
	if code := b.adminReq("POST", "/admin/reload", "", nil); code != 200 {
		t.Fatalf("reload: %d", code)
	}
	b.waitHealthy(2, 15*time.Second)
	for id, s := range b.slots() {
		if s[0] == before[id][0] {
			t.Fatalf("worker %d kept pid %d through the reload", id, s[0])
		}
	}
	b.checkItems(items, "after a rolling reload")
	items = append(items, b.createItem("after reload"))
	killed := b.slots()
	for _, s := range killed {
		syscall.Kill(s[0], syscall.SIGKILL)
	}
	waitFor(t, 15*time.Second, "every worker replaced and healthy", func() bool {
		r := b.workers()
		if r.Totals.Healthy != 2 {
			return false
		}
		for _, w := range r.Workers {
			if w.PID == killed[w.ID][0] {
				return false
			}
		}
		return true
	})
	b.checkItems(items, "after kill -9 of every worker")
}

// Issue 10: with PostgreSQL stopped, /api/health and the item routes answer
// 503 within 1 s, /healthz stays 200 and no worker is ejected or
// restarted; once it is back everything works again, without a restart.
func TestDataPostgresOutage(t *testing.T) {
	t.Parallel()
	pg := storetest.PrivatePostgres(t)
	b := startBalancer(t, 2, "DATABASE_URL="+pg.URL("postgres"), "DB_POOL_MAX=2")
	it := b.createItem("kept")
	before := b.slots()
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	// Longer than UNHEALTHY_THRESHOLD (3) health checks of 200 ms.
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); {
		for _, r := range [][3]string{
			{"GET", "/api/health", ""},
			{"GET", fmt.Sprintf("/api/items/%d", it.ID), ""},
			{"GET", "/api/items", ""},
			{"POST", "/api/items", `{"name": "x"}`},
			{"DELETE", fmt.Sprintf("/api/items/%d", it.ID), ""},
		} {
			code, body, _, took := b.call(r[0], r[1], r[2], "")
			if code != 503 || took > time.Second || !strings.Contains(body, "postgres") {
				t.Fatalf("%s %s with PostgreSQL down: %d %s after %s, want 503 within 1s", r[0], r[1], code, body, took)
			}
		}
		b.mustCall("GET", "/healthz", "", "", 200)
	}
	if after := b.slots(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("workers (pid, restarts, ejections) changed during the outage: %v, then %v", before, after)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "every worker healthy again on /api/health", func() bool {
		for range 2 {
			if code, _, _, _ := b.call("GET", "/api/health", "", ""); code != 200 {
				return false
			}
		}
		return true
	})
	for range 2 { // each worker: reads and writes again
		b.checkItems([]e2eItem{it}, "after PostgreSQL came back")
		b.createItem("after")
	}
	if after := b.slots(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("workers changed after the outage: %v, then %v", before, after)
	}
}

// Issue 10: the same for Redis and the session routes.
func TestDataRedisOutage(t *testing.T) {
	t.Parallel()
	rd := storetest.PrivateRedis(t)
	b := startBalancer(t, 2, "REDIS_URL="+rd.URL(0))
	_, _, session, _ := b.call("POST", "/api/sessions", `{"user": "bob"}`, "")
	b.mustCall("GET", "/api/sessions/me", "", session, 200)
	before := b.slots()
	if err := rd.Stop(); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); {
		for _, r := range [][4]string{
			{"GET", "/api/health", "", ""},
			{"POST", "/api/sessions", `{"user": "carol"}`, ""},
			{"GET", "/api/sessions/me", "", session},
			{"DELETE", "/api/sessions/me", "", session},
		} {
			code, body, _, took := b.call(r[0], r[1], r[2], r[3])
			if code != 503 || took > time.Second || !strings.Contains(body, "redis") {
				t.Fatalf("%s %s with Redis down: %d %s after %s, want 503 within 1s", r[0], r[1], code, body, took)
			}
		}
		b.mustCall("GET", "/healthz", "", "", 200)
	}
	if after := b.slots(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("workers changed during the outage: %v, then %v", before, after)
	}
	if err := rd.Start(); err != nil { // empty: the old session is gone
		t.Fatal(err)
	}
	// go-redis fails fast after repeated dial errors and dials again in
	// the background once a second, so each worker is back within ~1 s.
	waitFor(t, 10*time.Second, "every worker healthy again on /api/health", func() bool {
		for range 2 {
			if code, _, _, _ := b.call("GET", "/api/health", "", ""); code != 200 {
				return false
			}
		}
		return true
	})
	_, _, session, _ = b.call("POST", "/api/sessions", `{"user": "dave"}`, "")
	for range 2 {
		b.mustCall("GET", "/api/sessions/me", "", session, 200)
		b.mustCall("GET", "/api/health", "", "", 200)
	}
	if after := b.slots(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("workers changed after the outage: %v, then %v", before, after)
	}
}

// Issue 10: 16 workers starting together against an empty database create
// the schema once, and every one becomes healthy with PostgreSQL ok.
func TestDataMigrationsOnceWith16Workers(t *testing.T) {
	t.Parallel()
	url := storetest.Database(t)
	b := launch(t, "MAX_WORKERS=16", "DATABASE_URL="+url, "DB_POOL_MAX=1")
	b.waitHealthy(16, 60*time.Second)
	seen := map[int]bool{}
	for range 16 {
		code, body, _, _ := b.call("GET", "/api/health", "", "")
		var h struct {
			WorkerID int    `json:"worker_id"`
			Postgres string `json:"postgres"`
		}
		if code != 200 || json.Unmarshal([]byte(body), &h) != nil || h.Postgres != "ok" {
			t.Fatalf("/api/health: %d %s", code, body)
		}
		seen[h.WorkerID] = true
	}
	if len(seen) != 16 {
		t.Fatalf("health answered by %d workers, want 16", len(seen))
	}
	if n := strings.Count(b.out.String(), "applied migration"); n != 1 {
		t.Fatalf("%d \"applied migration\" lines from 16 workers, want 1", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var rows, versions int
	if err := c.QueryRow(ctx, "SELECT count(*), count(DISTINCT version) FROM schema_migrations").Scan(&rows, &versions); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || versions != 1 {
		t.Fatalf("schema_migrations has %d rows for %d versions, want one row for the one version", rows, versions)
	}
}

// Issue 10: every input case of the item and session routes answers its
// code through the balancer (the worker's own tests go through each in
// detail).
func TestItemsAndSessionsInputs(t *testing.T) {
	t.Parallel()
	b := startBalancer(t, 2, "DATABASE_URL="+storetest.Database(t), "REDIS_URL="+storetest.SharedRedis(t).URL(0))
	it := b.createItem("x")
	long := strings.Repeat("n", 201)
	for _, c := range []struct {
		method, path, body string
		code               int
	}{
		{"POST", "/api/items", `{"name": "ok"}`, 201},
		{"POST", "/api/items", `{"name": "ok"`, 400},
		{"POST", "/api/items", `not json`, 400},
		{"POST", "/api/items", `{"name": ""}`, 422},
		{"POST", "/api/items", `{"name": "` + long + `"}`, 422},
		{"POST", "/api/items", "{\"name\": \"\xff\xfe\"}", 422},
		{"GET", "/api/items/abc", "", 400},
		{"DELETE", "/api/items/abc", "", 400},
		{"GET", "/api/items/999999999", "", 404},
		{"DELETE", "/api/items/999999999", "", 404},
		{"GET", fmt.Sprintf("/api/items/%d", it.ID), "", 200},
		{"GET", "/api/items?limit=2", "", 200},
		{"GET", "/api/items?limit=101", "", 400},
		{"DELETE", fmt.Sprintf("/api/items/%d", it.ID), "", 204},
		{"GET", fmt.Sprintf("/api/items/%d", it.ID), "", 404},
		{"POST", "/api/sessions", `{"user": "u"}`, 201},
		{"POST", "/api/sessions", `{"user"`, 400},
		{"POST", "/api/sessions", `{"user": ""}`, 422},
		{"GET", "/api/sessions/me", "", 401},
		{"DELETE", "/api/sessions/me", "", 401},
	} {
		reps := 2 // on each worker
		if c.code == 204 {
			reps = 1 // a second time is the 404 of the next case
		}
		for range reps {
			code, body, _, _ := b.call(c.method, c.path, c.body, "")
			if code != c.code || (code >= 400 && !strings.Contains(body, `"error":`)) {
				t.Errorf("%s %s %q: %d %s, want %d", c.method, c.path, c.body, code, body, c.code)
			}
		}
	}
	unknown := strings.Repeat("ab", 32)
	b.mustCall("GET", "/api/sessions/me", "", unknown, 401)
	b.mustCall("GET", "/api/sessions/me", "", "garbage", 401)
}
