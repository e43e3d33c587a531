package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/procbal/procbal/shared/protocol"
	"github.com/procbal/procbal/worker/store/storetest"
)

// The test binary is also the worker: with WORKER_TEST_MAIN set it runs
// main, so the tests see the real process, environment and sockets
// (go-plugin's helper process).
func TestMain(m *testing.M) {
	if os.Getenv("WORKER_TEST_MAIN") != "" {
		main()
		os.Exit(0)
	}
	code := m.Run()
	storetest.CloseShared()
	os.Exit(code)
}

// workerProc is a worker process spawned the way the balancer spawns one.
type workerProc struct {
	cmd            *exec.Cmd
	out            *syncBuffer
	sock, report   string
	client, intern *http.Client
	exited         chan struct{}
}

// syncBuffer collects a process's output while tests read it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func unixClient(path string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
}

// spawn starts the worker with env and waits for its health path.
func spawn(t *testing.T, env ...string) *workerProc {
	t.Helper()
	dir, err := os.MkdirTemp("", "wk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	w := &workerProc{out: &syncBuffer{}, sock: filepath.Join(dir, "w.sock"),
		report: filepath.Join(dir, "r.sock"), exited: make(chan struct{})}
	w.client, w.intern = unixClient(w.sock), unixClient(w.report)
	w.cmd = exec.Command(os.Args[0])
	w.cmd.Env = append(os.Environ(), "WORKER_TEST_MAIN=1", "WORKER_ID=1",
		"WORKER_SOCKET="+w.sock, "WORKER_REPORT_SOCKET="+w.report)
	w.cmd.Env = append(w.cmd.Env, env...)
	w.cmd.Stdout, w.cmd.Stderr = w.out, w.out
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.cmd.Wait(); close(w.exited) }()
	t.Cleanup(func() {
		w.cmd.Process.Signal(syscall.SIGTERM)
		<-w.exited
		if t.Failed() {
			t.Logf("worker output:\n%s", w.out)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if code, _ := w.do(w.client, "GET", "/healthz", ""); code == 200 {
			return w
		}
		select {
		case <-w.exited:
			t.Fatalf("worker exited at start: %v\n%s", w.cmd.ProcessState, w.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("worker never healthy")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (w *workerProc) do(c *http.Client, method, path, body string) (int, string) {
	req, _ := http.NewRequest(method, "http://localhost"+path, strings.NewReader(body))
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Issue 10: a bad setting stops the start with one line naming the
// variable, and exit code 2.
func TestBadSettingsRefused(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ env, name string }{
		{"DB_POOL_MAX=0", "DB_POOL_MAX"},
		{"DB_POOL_MAX=many", "DB_POOL_MAX"},
		{"DB_QUERY_TIMEOUT=0s", "DB_QUERY_TIMEOUT"},
		{"REDIS_TIMEOUT=soon", "REDIS_TIMEOUT"},
		{"SESSION_TTL=0", "SESSION_TTL"},
		{"SESSION_TTL=1d", "SESSION_TTL"},
		{"COOKIE_SECURE=maybe", "COOKIE_SECURE"},
		{"DATABASE_URL=postgres://u:hunter2@host:port/db", "DATABASE_URL"},
		{"REDIS_URL=redis://u:hunter2@host:port/0", "REDIS_URL"},
		{"REDIS_URL=http://host", "REDIS_URL"},
	} {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "WORKER_TEST_MAIN=1", "WORKER_ADDR=127.0.0.1:0", c.env)
		out, err := cmd.CombinedOutput()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if cmd.ProcessState.ExitCode() != 2 || len(lines) != 1 || !strings.HasPrefix(lines[0], "worker: "+c.name+": ") {
			t.Errorf("%s: exit %v, output %q; want exit 2 and one line naming %s", c.env, err, out, c.name)
		}
		if strings.Contains(string(out), "hunter2") {
			t.Errorf("%s: the password is in the output: %q", c.env, out)
		}
	}
}

// Issue 10: without REDIS_URL the worker warns at start that sessions are
// not shared, and keeps them in memory.
func TestMemorySessionsWarned(t *testing.T) {
	t.Parallel()
	w := spawn(t)
	if !strings.Contains(w.out.String(), "not shared between workers") {
		t.Fatalf("no warning about in-memory sessions:\n%s", w.out)
	}
	if code, body := w.do(w.client, "POST", "/api/sessions", `{"user": "a"}`); code != 201 {
		t.Fatalf("POST /api/sessions: %d %s", code, body)
	}
}

// Issue 10: the worker's pool holds at most DB_POOL_MAX connections, and
// POST /internal/db-share on the report socket lowers (and raises) that at
// run time, under load: PostgreSQL never sees more than the share once
// the worker answered 200.
func TestDBShareOverReportSocket(t *testing.T) {
	t.Parallel()
	url := storetest.Database(t)
	w := spawn(t, "DATABASE_URL="+url, "DB_POOL_MAX=4")
	if code, body := w.do(w.client, "POST", "/api/items", `{"name": "a"}`); code != 201 {
		t.Fatalf("POST /api/items: %d %s", code, body)
	}
	count := backendCounter(t, url)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if code, body := w.do(w.client, "GET", "/api/items?limit=100", ""); code != 200 {
					t.Errorf("GET /api/items under load: %d %s", code, body)
					return
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	if n := mostFor(count, 300*time.Millisecond); n > 4 || n == 0 {
		t.Fatalf("%d connections at once with DB_POOL_MAX=4", n)
	}
	for _, k := range []int{1, 3, 2} {
		start := time.Now()
		code, body := w.do(w.intern, "POST", protocol.DBSharePath, `{"max": `+strconv.Itoa(k)+`}`)
		t.Logf("share %d: %d %s in %s", k, code, body, time.Since(start))
		var st protocol.DBShareStatus
		if code != 200 || json.Unmarshal([]byte(body), &st) != nil || st.Max != k || st.Open > k {
			t.Fatalf("share %d: %d %s", k, code, body)
		}
		// The server ends the backends of closed connections a moment later.
		for end := time.Now().Add(2 * time.Second); count() > k && time.Now().Before(end); {
			time.Sleep(5 * time.Millisecond)
		}
		if n := mostFor(count, 300*time.Millisecond); n > k {
			t.Fatalf("%d connections at once after the share went to %d", n, k)
		}
	}
	if code, _ := w.do(w.client, "POST", protocol.DBSharePath, `{"max": 1}`); code != 404 {
		t.Fatalf("the share endpoint answers %d on the client socket, want 404", code)
	}
}

// backendCounter returns a function counting the server's connections to
// url's database.
func backendCounter(t *testing.T, url string) func() int {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	db := cfg.Database
	cfg.Database = "postgres"
	c, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return func() int {
		var n int
		if err := c.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", db).Scan(&n); err != nil {
			t.Error(err)
		}
		return n
	}
}

// mostFor samples count every 5 ms for d and returns the most it saw.
func mostFor(count func() int, d time.Duration) int {
	most := 0
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		most = max(most, count())
	}
	return most
}
