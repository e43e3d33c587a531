package main

// The end-to-end harness: builds the real binaries once, starts the real
// balancer with real workers on unix sockets, and talks to it over
// loopback. Every test stops what it started.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/procbal/procbal/balancer/admin"
	"github.com/procbal/procbal/worker/store/storetest"
)

var bins struct {
	dir      string
	balancer string
	worker   string
}

func TestMain(m *testing.M) {
	if mode := os.Getenv("E2E_HELPER"); mode != "" {
		os.Exit(helperMain(mode))
	}
	dir, err := os.MkdirTemp("", "e2e-bin")
	if err != nil {
		panic(err)
	}
	bins.dir = dir
	bins.balancer = filepath.Join(dir, "balancer")
	bins.worker = filepath.Join(dir, "worker")
	// The balancer under test is built with the race detector, so the
	// supervisor's real runs are checked too.
	if err := gobuild("-race", "-o", bins.balancer, "."); err != nil {
		panic(err)
	}
	if err := gobuild("-o", bins.worker, "../worker"); err != nil {
		panic(err)
	}
	code := m.Run()
	storetest.CloseShared() // the PostgreSQL and Redis of data_e2e_test.go, if started
	os.RemoveAll(dir)
	os.Exit(code)
}

func gobuild(args ...string) error {
	cmd := exec.Command("go", append([]string{"build"}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// syncBuffer collects a process's output for assertions.
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

// bal is a running balancer under test.
type bal struct {
	t       *testing.T
	cmd     *exec.Cmd
	out     *syncBuffer
	addr    string
	admin   string
	sockets string
	exited  chan struct{}
	err     error
}

// freePort returns a loopback address whose port is free now. Ports come
// from below the kernel's ephemeral range (32768 and up here), each handed
// out once per test binary from a base its pid picks: a port the kernel
// gives to some connection, or to another test's listener on port 0,
// between this check and the balancer's bind can then never be ours, which
// "bind: address already in use" flakes under t.Parallel showed.
func freePort(t *testing.T) string {
	t.Helper()
	for range 200 {
		port := 10000 + (portBase+int(nextPort.Add(1)))%20000
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue // taken: try the next
		}
		ln.Close()
		return ln.Addr().String()
	}
	t.Fatal("no free loopback port")
	return ""
}

var (
	portBase = os.Getpid() % 100 * 200
	nextPort atomic.Int64
)

// startBalancer runs the balancer with env on top of test defaults and
// waits until `healthy` workers answer.
func startBalancer(t *testing.T, healthy int, env ...string) *bal {
	t.Helper()
	b := launch(t, env...)
	b.waitHealthy(healthy, 15*time.Second)
	return b
}

// launch starts the balancer without waiting for it.
func launch(t *testing.T, env ...string) *bal {
	t.Helper()
	sockets, err := os.MkdirTemp("", "e2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockets) })
	b := &bal{t: t, out: &syncBuffer{}, addr: freePort(t), admin: freePort(t),
		sockets: filepath.Join(sockets, "s"), exited: make(chan struct{})}
	b.cmd = exec.Command(bins.balancer)
	b.cmd.Env = append(os.Environ(),
		"LISTEN_ADDR="+b.addr, "ADMIN_ADDR="+b.admin, "WORKER_CMD="+bins.worker,
		"MAX_WORKERS=2", "SOCKET_DIR="+b.sockets, "LOG_LEVEL=debug",
		"HEALTH_INTERVAL=200ms", "HEALTH_TIMEOUT=100ms")
	b.cmd.Env = append(b.cmd.Env, env...)
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.err = b.cmd.Wait(); close(b.exited) }()
	t.Cleanup(func() {
		b.cmd.Process.Kill()
		<-b.exited
		if t.Failed() {
			t.Logf("balancer output:\n%s", b.out.String())
		}
	})
	return b
}

// waitExit waits for the balancer to exit and returns its exit code.
func (b *bal) waitExit(d time.Duration) int {
	b.t.Helper()
	select {
	case <-b.exited:
	case <-time.After(d):
		b.t.Fatalf("balancer still running after %s", d)
	}
	return b.cmd.ProcessState.ExitCode()
}

var client = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// get sends GET path to the client listener.
func (b *bal) get(path string) (int, []byte, error) {
	resp, err := client.Get("http://" + b.addr + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// health is the reference worker's /api/health answer.
type health struct {
	Status   string `json:"status"`
	WorkerID int    `json:"worker_id"`
	PID      int    `json:"pid"`
}

func (b *bal) health() (health, error) {
	code, body, err := b.get("/api/health")
	var h health
	if err != nil {
		return h, err
	}
	if code != 200 {
		return h, fmt.Errorf("status %d: %s", code, body)
	}
	return h, json.Unmarshal(body, &h)
}

// adminReq sends an admin request and decodes a JSON answer into v.
func (b *bal) adminReq(method, path, body string, v any) int {
	b.t.Helper()
	req, _ := http.NewRequest(method, "http://"+b.admin+path, strings.NewReader(body))
	resp, err := client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			b.t.Fatalf("%s %s: decoding: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

func (b *bal) workers() admin.Report {
	var r admin.Report
	if code := b.adminReq("GET", "/admin/workers", "", &r); code != 200 {
		b.t.Fatalf("/admin/workers: %d", code)
	}
	return r
}

// waitHealthy waits until n workers are healthy and none is draining or
// starting.
func (b *bal) waitHealthy(n int, d time.Duration) admin.Report {
	b.t.Helper()
	var r admin.Report
	waitFor(b.t, d, fmt.Sprintf("%d healthy workers", n), func() bool {
		select {
		case <-b.exited:
			b.t.Fatalf("balancer exited: %v\n%s", b.err, b.out.String())
		default:
		}
		if _, err := net.DialTimeout("tcp", b.admin, time.Second); err != nil {
			return false
		}
		r = b.workers()
		return r.Totals.Healthy == n && r.Totals.Workers == n
	})
	return r
}

// pidOf returns the pid serving slot id, or 0.
func (b *bal) pidOf(id int) int {
	for _, w := range b.workers().Workers {
		if w.ID == id && w.State == "healthy" {
			return w.PID
		}
	}
	return 0
}

// waitFor polls cond every 10ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
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

// load runs n clients sending GETs to path until stop is called, and
// counts the failures.
type load struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	ok, fail int
	errs     []string
}

func startLoad(b *bal, n int, path string) *load {
	l := &load{stop: make(chan struct{})}
	for range n {
		l.wg.Add(1)
		go l.run(b, path)
	}
	return l
}

func (l *load) run(b *bal, path string) {
	defer l.wg.Done()
	deadline := time.Now().Add(60 * time.Second) // bounded even if never stopped
	for time.Now().Before(deadline) {
		select {
		case <-l.stop:
			return
		default:
		}
		code, body, err := b.get(path)
		l.mu.Lock()
		if err != nil || code != 200 {
			l.fail++
			if len(l.errs) < 10 {
				l.errs = append(l.errs, fmt.Sprintf("%d %v %s", code, err, body))
			}
		} else {
			l.ok++
		}
		l.mu.Unlock()
	}
}

// finish stops the clients and fails the test on any failed request.
func (l *load) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	t.Logf("load: %d ok, %d failed", l.ok, l.fail)
	if l.fail > 0 || l.ok == 0 {
		t.Fatalf("%d failed requests (of %d): %v", l.fail, l.ok+l.fail, l.errs)
	}
}
