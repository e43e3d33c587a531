package main

// Issue 10 item 1 end to end: the database connection budget. The real
// balancer gives each reference worker a share of DB_MAX_CONNS and moves
// the shares as workers come and go; PostgreSQL's own count of
// connections (pg_stat_activity) never goes over the budget, under load,
// through a scale up and a rolling reload.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/procbal/procbal/worker/store/storetest"
)

// connSampler counts the connections to one database every 50ms, its own
// left out, and keeps the most it saw in each phase of a test.
type connSampler struct {
	stop, done chan struct{}
	mu         sync.Mutex
	phase      string
	phases     []string
	peak       map[string]int
	samples    int
	failed     int
	lastErr    error
}

func sampleConns(t *testing.T, url string) *connSampler {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connecting the sampler: %v", err)
	}
	s := &connSampler{stop: make(chan struct{}), done: make(chan struct{}), peak: map[string]int{}}
	s.mark("start")
	go s.run(conn)
	t.Cleanup(s.finish)
	return s
}

func (s *connSampler) run(conn *pgx.Conn) {
	defer close(s.done)
	defer conn.Close(context.Background())
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&n)
		cancel()
		s.mu.Lock()
		if err != nil {
			s.failed++
			s.lastErr = err
		} else {
			s.samples++
			s.peak[s.phase] = max(s.peak[s.phase], n)
		}
		s.mu.Unlock()
	}
}

// mark starts a new phase.
func (s *connSampler) mark(phase string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phase = phase
	s.phases = append(s.phases, phase)
}

// finish stops the sampler; it may be called more than once.
func (s *connSampler) finish() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// itemLoad runs clients that each create an item through the balancer,
// read it back, and now and then list a page, until finished.
type itemLoad struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	ok, fail int
	errs     []string
}

func startItemLoad(b *bal, clients int) *itemLoad {
	l := &itemLoad{stop: make(chan struct{})}
	for i := range clients {
		l.wg.Add(1)
		go l.run(b, i)
	}
	return l
}

func (l *itemLoad) run(b *bal, client int) {
	defer l.wg.Done()
	deadline := time.Now().Add(2 * time.Minute) // bounded even if never stopped
	for n := 0; time.Now().Before(deadline); n++ {
		select {
		case <-l.stop:
			return
		default:
		}
		code, body, err := send(b, "POST", "/api/items", fmt.Sprintf(`{"name": "load %d-%d"}`, client, n))
		var it e2eItem
		if err == nil && code == 201 {
			if err = json.Unmarshal(body, &it); err == nil {
				code, body, err = send(b, "GET", fmt.Sprintf("/api/items/%d", it.ID), "")
			}
		}
		if err == nil && code == 200 && n%4 == 0 {
			code, body, err = send(b, "GET", "/api/items?limit=20", "")
		}
		l.record(code, body, err)
	}
}

func (l *itemLoad) record(code int, body []byte, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil && code/100 == 2 {
		l.ok++
		return
	}
	l.fail++
	if len(l.errs) < 10 {
		l.errs = append(l.errs, fmt.Sprintf("%d %v %s", code, err, body))
	}
}

// finish stops the clients and fails the test on any failed request.
func (l *itemLoad) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	t.Logf("item load: %d rounds ok, %d failed", l.ok, l.fail)
	if l.fail > 0 || l.ok == 0 {
		t.Fatalf("%d failed rounds (of %d): %v", l.fail, l.ok+l.fail, l.errs)
	}
}

// send sends one request to the client listener.
func send(b *bal, method, path, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, "http://"+b.addr+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// Issue 10 item 1, must show: with 8 workers under load, and through a
// scale 2 -> 8 and a rolling reload under load, the connections counted
// in pg_stat_activity (sampled every 50 ms) never exceed DB_MAX_CONNS.
// Each of 2 workers starts with DB_POOL_MAX 10/3 = 3; the scale lowers
// both to 10/9 = 1 before the last new workers start; the reload's one
// replacement at a time fits the one share kept spare.
func TestDBBudgetUnderScaleAndReload(t *testing.T) {
	t.Parallel()
	const budget = 10
	url := storetest.Database(t)
	b := startBalancer(t, 2, "MAX_WORKERS=2", "DATABASE_URL="+url, fmt.Sprintf("DB_MAX_CONNS=%d", budget))
	s := sampleConns(t, url)
	load := startItemLoad(b, 12)
	s.mark("2 workers under load")
	time.Sleep(2 * time.Second)

	s.mark("scale 2 -> 8 under load")
	start := time.Now()
	var scaled map[string]any
	if code := b.adminReq("POST", "/admin/scale", `{"workers": 8}`, &scaled); code != 200 {
		t.Fatalf("scale to 8: %d %v", code, scaled)
	}
	t.Logf("scale 2 -> 8 under load: %s", time.Since(start).Round(time.Millisecond))
	s.mark("8 workers under load")
	time.Sleep(3 * time.Second)

	s.mark("rolling reload of 8 under load")
	start = time.Now()
	var reloaded map[string]any
	if code := b.adminReq("POST", "/admin/reload", "", &reloaded); code != 200 {
		t.Fatalf("reload: %d %v", code, reloaded)
	}
	t.Logf("rolling reload of 8 under load: %s", time.Since(start).Round(time.Millisecond))
	s.mark("8 reloaded workers under load")
	time.Sleep(time.Second)
	load.finish(t)
	s.finish()

	peak := 0
	for _, ph := range s.phases {
		if n, ok := s.peak[ph]; ok {
			t.Logf("most connections in %s: %d", ph, n)
			peak = max(peak, n)
		}
	}
	t.Logf("%d samples every 50ms, %d failed (%v); most connections %d of DB_MAX_CONNS=%d", s.samples, s.failed, s.lastErr, peak, budget)
	if peak > budget {
		t.Fatalf("pg_stat_activity counted %d connections, over DB_MAX_CONNS=%d", peak, budget)
	}
	if s.samples < 100 || peak < 2 {
		t.Fatalf("%d samples, at most %d connections: the load did not exercise the database", s.samples, peak)
	}
	// Both workers of the first generation were lowered to 1 before the
	// last new ones started.
	if n := strings.Count(b.out.String(), "database share set"); n < 2 {
		t.Fatalf("%d shares confirmed, want both first workers lowered:\n%s", n, b.out.String())
	}
	b.waitHealthy(8, 15*time.Second)

	// 10 workers and a replacement cannot share 10 connections.
	var refused map[string]any
	if code := b.adminReq("POST", "/admin/scale", `{"workers": 10}`, &refused); code != 422 ||
		!strings.Contains(fmt.Sprint(refused["error"]), "DB_MAX_CONNS") {
		t.Fatalf("scale to 10 with DB_MAX_CONNS=10: %d %v, want 422 naming DB_MAX_CONNS", code, refused)
	}
}

// With DATABASE_URL set, a DB_MAX_CONNS that cannot give every worker a
// connection and keep one for a replacement stops the start, with one line
// naming it.
func TestDBBudgetTooSmallRefusesStart(t *testing.T) {
	t.Parallel()
	b := launch(t, "MAX_WORKERS=4", "DATABASE_URL=postgres://nobody@127.0.0.1:1/none", "DB_MAX_CONNS=4")
	if code := b.waitExit(10 * time.Second); code != 2 {
		t.Fatalf("exit code %d, want 2:\n%s", code, b.out.String())
	}
	out := strings.TrimSpace(b.out.String())
	if strings.Count(out, "\n") != 0 || !strings.Contains(out, "DB_MAX_CONNS") {
		t.Fatalf("want one line naming DB_MAX_CONNS, got:\n%s", out)
	}
}
