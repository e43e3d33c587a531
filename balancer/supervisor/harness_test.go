package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procbal/procbal/balancer/pool"
)

// harness runs a real Supervisor over a real pool.Pool and health checker,
// wired as balancer/main.go wires them, with workers re-executed from this
// test binary (helper_test.go). Its cleanup shuts the supervisor down and
// checks that no worker and no socket directory is left.
type harness struct {
	t      *testing.T
	sup    *Supervisor
	pool   *pool.Pool
	dir    string
	starts string // where the helpers record their starts
	log    *logBuffer

	runDone chan struct{}
	runErr  error
}

// testChecks probes often enough for short tests, with a timeout that
// holds on a loaded machine.
var testChecks = pool.CheckOptions{
	Path: "/healthz", Interval: 100 * time.Millisecond, Timeout: time.Second,
	UnhealthyThreshold: 3, HealthyThreshold: 1, MemoryInterval: 50 * time.Millisecond,
}

// newHarness starts a supervisor of workers local workers in mode (see
// helperMain); tweak adjusts the Config first.
func newHarness(t *testing.T, workers int, mode string, tweak ...func(*Config)) *harness {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "sv") // short: socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, dir: dir, starts: filepath.Join(t.TempDir(), "starts"), log: &logBuffer{}, runDone: make(chan struct{})}
	cfg := Config{
		Command: self, Args: []string{mode, h.starts}, Workers: workers, SocketDir: dir, HealthPath: "/healthz",
		StartTimeout: 10 * time.Second, DrainTimeout: 5 * time.Second, StopGrace: 2 * time.Second,
	}
	for _, f := range tweak {
		f(&cfg)
	}
	log := hclog.New(&hclog.LoggerOptions{Output: h.log, Level: hclog.Debug})
	sel, _ := pool.NewSelector("round_robin")
	h.pool = pool.New(sel, pool.OutlierOptions{Consecutive: 3}, log.Named("pool"))
	h.sup = New(cfg, h.pool, testChecks, log.Named("supervisor"))
	go func() { h.runErr = h.sup.Run(); close(h.runDone) }()
	t.Cleanup(h.close)
	return h
}

// modeFile returns a file naming mode, for a helper started as "@file".
func modeFile(t *testing.T, mode string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mode")
	setMode(t, p, mode)
	return p
}

func setMode(t *testing.T, file, mode string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(mode), 0o600); err != nil {
		t.Fatal(err)
	}
}

// shutdown stops the supervisor, giving workers grace before SIGKILL, and
// waits for Run to return.
func (h *harness) shutdown(grace time.Duration) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := h.sup.Shutdown(ctx); err != nil {
		h.t.Errorf("Shutdown: %v", err)
	}
	select {
	case <-h.runDone:
	case <-time.After(grace + 10*time.Second):
		h.t.Fatal("Run did not return after Shutdown")
	}
	if h.runErr != nil {
		h.t.Errorf("Run: %v", h.runErr)
	}
}

func (h *harness) close() {
	h.shutdown(3 * time.Second)
	for _, pid := range h.pids() {
		if alive(pid) {
			h.t.Errorf("worker %d survived the shutdown", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if _, err := os.Stat(h.dir); !os.IsNotExist(err) {
		h.t.Errorf("socket directory %s left behind (%v)", h.dir, err)
		os.RemoveAll(h.dir)
	}
	if h.t.Failed() {
		h.t.Logf("supervisor log:\n%s", h.log)
	}
}

// waitFor polls cond every 10ms until it holds, failing the test after d.
func (h *harness) waitFor(d time.Duration, what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitServing waits until n local workers are healthy and returns their
// pids by slot id.
func (h *harness) waitServing(n int) map[int]int {
	h.t.Helper()
	var m map[int]int
	h.waitFor(20*time.Second, fmt.Sprintf("%d healthy workers", n), func() bool {
		m = h.serving()
		return len(m) == n && h.pool.Healthy() == n
	})
	return m
}

// serving returns the pid of each healthy local worker by slot id.
func (h *harness) serving() map[int]int {
	m := map[int]int{}
	for _, v := range h.sup.Workers() {
		if v.Upstream.Kind == pool.Local && v.Upstream.State() == pool.Healthy {
			m[v.ID] = v.Upstream.PID
		}
	}
	return m
}

// view returns slot id's entry of /admin/workers.
func (h *harness) view(id int) WorkerView {
	h.t.Helper()
	for _, v := range h.sup.Workers() {
		if v.ID == id {
			return v
		}
	}
	h.t.Fatalf("no worker %d in %+v", id, h.sup.Workers())
	return WorkerView{}
}

// ctx bounds an operation generously.
func (h *harness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	h.t.Cleanup(cancel)
	return ctx
}

// startRecord is one helper start: its pid and when it began.
type startRecord struct {
	pid int
	at  time.Time
}

// startRecords reads the helpers' starts, in order.
func (h *harness) startRecords() []startRecord {
	b, _ := os.ReadFile(h.starts)
	var out []startRecord
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var pid int
		var ns int64
		if _, err := fmt.Sscan(sc.Text(), &pid, &ns); err == nil {
			out = append(out, startRecord{pid, time.Unix(0, ns)})
		}
	}
	return out
}

func (h *harness) pids() []int {
	var out []int
	for _, r := range h.startRecords() {
		out = append(out, r.pid)
	}
	return out
}

// logged counts the supervisor's log lines that contain s.
func (h *harness) logged(s string) int { return strings.Count(h.log.String(), s) }

// get sends GET path to u's socket, as the proxy would, and returns the
// body.
func get(u *pool.Upstream, path string) (string, error) {
	sock := strings.TrimPrefix(u.Address, "unix:")
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	resp, err := c.Get("http://localhost" + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	return string(body), err
}

// alive reports whether pid runs (a zombie counts as gone).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// logBuffer collects the supervisor's log; safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
