package main

// Issue 13 through the real balancer binary: WebSocket tunnels under load,
// through a kill -9 and a rolling reload, Server-Sent Events as they are
// written, and the Upgrades the balancer must refuse. The workers are the
// "realtime" helper (rthelper_test.go); the clients use gorilla/websocket.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// realtimeEnv is the environment of a balancer whose workers are the
// realtime helper, with extra settings after it.
func realtimeEnv(t *testing.T, extra ...string) []string {
	return append([]string{"WORKER_CMD=" + selfPath(t), "E2E_HELPER=" + realtimeMode}, extra...)
}

// wsTunnel is one client WebSocket through the balancer, with the worker
// process its 101 named.
type wsTunnel struct {
	c           *websocket.Conn
	worker, pid int
}

var wsDialer = &websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}

// dialWS opens a WebSocket to the balancer's /ws.
func dialWS(addr string) (*wsTunnel, error) {
	c, resp, err := wsDialer.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	w := &wsTunnel{c: c}
	w.worker, _ = strconv.Atoi(resp.Header.Get("X-Worker-Id"))
	w.pid, _ = strconv.Atoi(resp.Header.Get("X-Worker-Pid"))
	if w.pid == 0 {
		c.Close()
		return nil, fmt.Errorf("101 without X-Worker-Pid: %v", resp.Header)
	}
	return w, nil
}

// echo sends msg and waits up to d for it to come back unchanged.
func (w *wsTunnel) echo(msg string, d time.Duration) error {
	w.c.SetWriteDeadline(time.Now().Add(d))
	if err := w.c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	w.c.SetReadDeadline(time.Now().Add(d))
	mt, got, err := w.c.ReadMessage()
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if mt != websocket.TextMessage || string(got) != msg {
		return fmt.Errorf("echo of %q came back as %q (type %d)", msg, got, mt)
	}
	return nil
}

// close ends the WebSocket with a close frame, as a polite client does.
func (w *wsTunnel) close() {
	w.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
		time.Now().Add(time.Second))
	w.c.Close()
}

// dialMany opens n WebSockets, 50 handshakes at a time, and closes them
// at the end of the test.
func dialMany(t *testing.T, addr string, n int) []*wsTunnel {
	t.Helper()
	out := make([]*wsTunnel, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 50)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			w, err := dialWS(addr)
			if err != nil {
				errs <- err
				return
			}
			out[i] = w
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, w := range out {
			if w != nil {
				w.c.Close()
			}
		}
	})
	close(errs)
	if err := <-errs; err != nil {
		t.Fatalf("opening %d WebSockets: %d failed, the first: %v", n, len(errs)+1, err)
	}
	return out
}

// openTunnels is the sum of the tunnels /admin/workers shows.
func (b *bal) openTunnels() int64 {
	var n int64
	for _, w := range b.workers().Workers {
		n += w.Tunnels
	}
	return n
}

// metricTunnels sums balancer_open_tunnels over its upstreams in /metrics.
func metricTunnels(t *testing.T, b *bal) int64 {
	t.Helper()
	var n int64
	for _, line := range strings.Split(metricsText(t, b), "\n") {
		if rest, ok := strings.CutPrefix(line, "balancer_open_tunnels{"); ok {
			_, v, _ := strings.Cut(rest, "} ")
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("bad metric line %q", line)
			}
			n += int64(f)
		}
	}
	return n
}

// ensureFiles raises this process's RLIMIT_NOFILE soft limit to at least
// n (the children it starts inherit it), or fails saying why it cannot.
func ensureFiles(t *testing.T, n uint64) {
	t.Helper()
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		t.Fatal(err)
	}
	if r.Cur >= n {
		return
	}
	if r.Max < n {
		t.Fatalf("this test needs %d open files; the hard limit (ulimit -Hn) is %d", n, r.Max)
	}
	r.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		t.Fatalf("raising RLIMIT_NOFILE to %d: %v", n, err)
	}
}

// vmRSS reads VmRSS of pid from /proc, in bytes.
func vmRSS(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// plainBalancer is the balancer built as it ships, without the race
// detector, whose shadow memory would swamp a measure of its RSS. It is
// built once, on first use.
var plainBalancer = sync.OnceValues(func() (string, error) {
	path := filepath.Join(bins.dir, "balancer-plain")
	return path, gobuild("-o", path, ".")
})

// launchPlain is launch (harness_test.go) with the plain balancer binary.
func launchPlain(t *testing.T, env ...string) *bal {
	t.Helper()
	bin, err := plainBalancer()
	if err != nil {
		t.Fatalf("building the plain balancer: %v", err)
	}
	sockets, err := os.MkdirTemp("", "e2e") // short: unix socket paths are bounded
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockets) })
	b := &bal{t: t, out: &syncBuffer{}, addr: freePort(t), admin: freePort(t),
		sockets: filepath.Join(sockets, "s"), exited: make(chan struct{})}
	b.cmd = exec.Command(bin)
	b.cmd.Env = append(os.Environ(),
		"LISTEN_ADDR="+b.addr, "ADMIN_ADDR="+b.admin, "WORKER_CMD="+bins.worker,
		"MAX_WORKERS=2", "SOCKET_DIR="+b.sockets, "LOG_LEVEL=info",
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

// Issue 13: 1,000 concurrent WebSocket tunnels echo messages for 10 s with
// none lost, and the balancer's RSS meanwhile stays under 64 MiB. Each
// tunnel sends a message every 200 ms and waits for its echo (about 5,000
// messages a second in all); the RSS is that of the balancer as it ships
// (built without the race detector), read from /proc/<pid>/status.
func TestTunnelThousandEcho(t *testing.T) {
	t.Parallel()
	const (
		tunnels  = 1000
		run      = 10 * time.Second
		every    = 200 * time.Millisecond
		rssLimit = 64 << 20
	)
	quiet.Lock()
	defer quiet.Unlock()
	ensureFiles(t, 8192) // 1,000 client sockets here; the balancer and workers raise their own
	b := launchPlain(t, realtimeEnv(t, "MAX_WORKERS=4")...)
	b.waitHealthy(4, 30*time.Second)
	idle, _ := vmRSS(b.cmd.Process.Pid)
	opened := time.Now()
	ws := dialMany(t, b.addr, tunnels)
	t.Logf("%d tunnels open in %s; balancer RSS %.1f MiB before them", tunnels, time.Since(opened).Round(time.Millisecond), float64(idle)/(1<<20))
	perWorker := map[int]int{}
	for _, w := range ws {
		perWorker[w.worker]++
	}
	if len(perWorker) != 4 {
		t.Fatalf("tunnels per worker %v, want all 4 workers", perWorker)
	}

	var sent, echoed, failed atomic.Int64
	var errMu sync.Mutex
	var errs []string
	stop := time.Now().Add(run)
	var wg sync.WaitGroup
	for k, w := range ws {
		wg.Go(func() {
			time.Sleep(rand.N(every)) // spread the tunnels over the period
			for i := 0; time.Now().Before(stop); i++ {
				sent.Add(1)
				if err := w.echo(fmt.Sprintf("tunnel %d message %d", k, i), 5*time.Second); err != nil {
					failed.Add(1)
					errMu.Lock()
					if len(errs) < 10 {
						errs = append(errs, fmt.Sprintf("tunnel %d (worker %d): %v", k, w.worker, err))
					}
					errMu.Unlock()
					return
				}
				echoed.Add(1)
				time.Sleep(every)
			}
		})
	}
	// The RSS, sampled 4 times a second, printed once a second; the open
	// tunnels as the admin API and the metrics count them, once mid-run.
	var peak uint64
	var samples []string
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var adminTunnels, metricsTunnels int64 = -1, -1
sampling:
	for n := 1; ; n++ {
		select {
		case <-done:
			break sampling
		case <-tick.C:
		}
		rss, err := vmRSS(b.cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		peak = max(peak, rss)
		if n%4 == 0 {
			samples = append(samples, fmt.Sprintf("%.1f", float64(rss)/(1<<20)))
		}
		if n == 20 {
			adminTunnels, metricsTunnels = b.openTunnels(), metricTunnels(t, b)
		}
	}
	t.Logf("balancer RSS during the run, MiB, once a second: %s; peak %.1f MiB (limit %d MiB)",
		strings.Join(samples, " "), float64(peak)/(1<<20), rssLimit>>20)
	t.Logf("%d messages sent, %d echoed, %d failed, over %d tunnels (%v per worker); mid-run: %d tunnels in /admin/workers, %d in balancer_open_tunnels",
		sent.Load(), echoed.Load(), failed.Load(), tunnels, perWorker, adminTunnels, metricsTunnels)
	if failed.Load() > 0 || sent.Load() != echoed.Load() {
		t.Fatalf("%d of %d messages not echoed: %v", sent.Load()-echoed.Load(), sent.Load(), errs)
	}
	if floor := int64(tunnels) * int64(run/every) / 2; echoed.Load() < floor {
		t.Fatalf("only %d messages echoed, want at least %d (each tunnel kept busy)", echoed.Load(), floor)
	}
	if adminTunnels != tunnels || metricsTunnels != tunnels {
		t.Fatalf("mid-run /admin/workers showed %d tunnels and /metrics %d, want %d", adminTunnels, metricsTunnels, tunnels)
	}
	if peak >= rssLimit {
		t.Fatalf("balancer peak RSS %.1f MiB with %d tunnels, want under %d MiB", float64(peak)/(1<<20), tunnels, rssLimit>>20)
	}
	for _, w := range ws {
		w.close()
	}
	waitFor(t, 10*time.Second, "every tunnel closed in /admin/workers", func() bool { return b.openTunnels() == 0 })
}

// Issue 13: kill -9 of one of 4 workers with 200 tunnels open closes that
// worker's tunnels and no other: every other tunnel echoes on, and the
// clients whose tunnel closed reconnect to live workers.
func TestTunnelKill9ClosesOnlyItsTunnels(t *testing.T) {
	t.Parallel()
	b := startBalancer(t, 4, realtimeEnv(t, "MAX_WORKERS=4")...)
	ws := dialMany(t, b.addr, 200)
	byPID := map[int]int{}
	for _, w := range ws {
		byPID[w.pid]++
	}
	if len(byPID) != 4 {
		t.Fatalf("tunnels per worker process %v, want 4 processes", byPID)
	}
	victim := ws[0].pid
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Every tunnel of the victim ends (EOF: the worker's sockets closed
	// with it); every other one echoes, twice, over the next second.
	var wg sync.WaitGroup
	errs := make([]error, len(ws))
	for i, w := range ws {
		wg.Go(func() {
			if w.pid == victim {
				w.c.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, _, err := w.c.ReadMessage()
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					errs[i] = fmt.Errorf("tunnel to the killed worker still open after 5s")
				}
				w.c.Close()
				return
			}
			for j := range 2 {
				if err := w.echo(fmt.Sprintf("after kill %d", j), 5*time.Second); err != nil {
					errs[i] = fmt.Errorf("tunnel to live worker %d (pid %d): %w", w.worker, w.pid, err)
					return
				}
				time.Sleep(500 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	survivors := int64(len(ws) - byPID[victim])
	waitFor(t, 5*time.Second, fmt.Sprintf("%d tunnels open", survivors), func() bool { return b.openTunnels() == survivors })
	// The clients that lost their tunnel reconnect: they land on live
	// workers (the replacement included, once it is healthy).
	for i, w := range ws {
		if w.pid != victim {
			continue
		}
		nw, err := dialWS(b.addr)
		if err != nil {
			t.Fatalf("reconnecting: %v", err)
		}
		if nw.pid == victim || !alive(nw.pid) {
			t.Fatalf("reconnected to pid %d, not a live worker (killed %d)", nw.pid, victim)
		}
		if err := nw.echo("reconnected", 5*time.Second); err != nil {
			t.Fatal(err)
		}
		ws[i] = nw
	}
	waitFor(t, 5*time.Second, "200 tunnels open again", func() bool { return b.openTunnels() == 200 })
	t.Logf("tunnels per pid before %v; killed %d (%d tunnels), the other %d kept echoing", byPID, victim, byPID[victim], survivors)
}

// Issue 13: a rolling reload with tunnels open: new tunnels go to the new
// workers, never a draining one; the old tunnels live on until
// DRAIN_TIMEOUT, then close (the worker closes them with 1001 on SIGTERM).
func TestTunnelRollingReload(t *testing.T) {
	t.Parallel()
	const drain = 3 * time.Second
	b := startBalancer(t, 2, realtimeEnv(t, "MAX_WORKERS=2", "DRAIN_TIMEOUT="+drain.String())...)
	old := dialMany(t, b.addr, 20)
	oldPIDs := map[int]bool{}
	for _, w := range old {
		oldPIDs[w.pid] = true
	}
	// Each old tunnel echoes every 100 ms until it fails; when and how
	// it ended is kept.
	type end struct {
		lastOK, at time.Time
		err        error
	}
	ends := make([]end, len(old))
	var wg sync.WaitGroup
	for i, w := range old {
		wg.Go(func() {
			for n := 0; ; n++ {
				if err := w.echo("old "+strconv.Itoa(n), 10*time.Second); err != nil {
					ends[i].at, ends[i].err = time.Now(), err
					return
				}
				ends[i].lastOK = time.Now()
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
	reload := time.Now()
	if code := b.adminReq("POST", "/admin/reload", "", nil); code != 200 {
		t.Fatalf("reload: %d", code)
	}
	reloaded := time.Now()
	if reloaded.Sub(reload) >= drain {
		t.Fatalf("the reload took %s, not less than DRAIN_TIMEOUT: the test proves nothing", reloaded.Sub(reload))
	}
	var after []string
	for _, w := range b.workers().Workers {
		after = append(after, fmt.Sprintf("worker %d pid %d %s, %d tunnels", w.ID, w.PID, w.State, w.Tunnels))
	}
	// The old tunnels are still open, on the draining processes, which
	// /metrics counts (/admin/workers shows each slot's serving process).
	if n := metricTunnels(t, b); n != int64(len(old)) {
		t.Errorf("right after the reload balancer_open_tunnels is %d, want the %d old tunnels", n, len(old))
	}
	fresh := dialMany(t, b.addr, 10)
	for _, w := range fresh {
		if oldPIDs[w.pid] {
			t.Fatalf("a tunnel opened after the reload went to old (draining) pid %d", w.pid)
		}
	}
	wg.Wait()
	for i, e := range ends {
		lived := e.lastOK.Sub(reload)
		closed := e.at.Sub(reload)
		var ce *websocket.CloseError
		if !errors.As(e.err, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Errorf("old tunnel %d ended with %v, want its worker's close 1001 (going away)", i, e.err)
		}
		// It served until about DRAIN_TIMEOUT after its worker drained
		// (which was after the reload began) and closed soon after.
		if lived < drain-300*time.Millisecond || closed > reloaded.Sub(reload)+drain+2*time.Second {
			t.Errorf("old tunnel %d last echoed %s after the reload began and closed at %s; want until about %s (DRAIN_TIMEOUT), then closed",
				i, lived.Round(time.Millisecond), closed.Round(time.Millisecond), drain)
		}
	}
	for _, w := range fresh {
		if err := w.echo("new", 5*time.Second); err != nil {
			t.Fatalf("new tunnel after the old ones closed: %v", err)
		}
	}
	waitFor(t, 5*time.Second, "only the 10 new tunnels open", func() bool { return b.openTunnels() == 10 })
	t.Logf("reload took %s; right after it /admin/workers showed %v; old tunnels closed %s..%s after it began", reloaded.Sub(reload).Round(time.Millisecond),
		after, slices.MinFunc(ends, func(a, b end) int { return a.at.Compare(b.at) }).at.Sub(reload).Round(time.Millisecond),
		slices.MaxFunc(ends, func(a, b end) int { return a.at.Compare(b.at) }).at.Sub(reload).Round(time.Millisecond))
}

// quiet keeps TestSSEEventsArriveAsWritten, which measures latency, apart
// from TestTunnelThousandEcho, which loads the machine on purpose.
var quiet sync.Mutex

// Issue 13: Server-Sent Events reach the client as the worker writes them:
// one event a second, each within 50 ms of the worker writing it (its
// timestamp in the event against the receive time, one machine clock),
// over a 30 s stream, six times UPSTREAM_TIMEOUT=5s, that is not cut. A
// balancer that held the stream back would make
// every event late by a second or more; one event late on a machine shared
// with the other tests is noise, so a stream with a late event is run once
// more, and the test fails when the second is late too.
func TestSSEEventsArriveAsWritten(t *testing.T) {
	t.Parallel()
	const events = 30 // the 30 s stream, one event a second
	b := startBalancer(t, 1, realtimeEnv(t, "MAX_WORKERS=1", "UPSTREAM_TIMEOUT=5s")...)
	quiet.Lock()
	defer quiet.Unlock()
	for try := 1; ; try++ {
		delays := sseStream(t, b, events)
		var ms []string
		var worst time.Duration
		for _, d := range delays {
			ms = append(ms, fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)))
			worst = max(worst, d)
		}
		t.Logf("stream %d: %d events; written-to-received delay, ms: %s", try, len(delays), strings.Join(ms, " "))
		if len(delays) != events {
			t.Fatalf("%d of %d events arrived: the stream was cut", len(delays), events)
		}
		if worst <= 50*time.Millisecond {
			return
		}
		if try == 2 {
			t.Fatalf("an event took %s from the worker to the client, want within 50ms (a late event in each of two streams)", worst)
		}
	}
}

// sseStream reads one stream of n events from the realtime helper's /sse
// through b and returns, for each event, how long after the worker wrote
// it it arrived.
func sseStream(t *testing.T, b *bal, n int) []time.Duration {
	t.Helper()
	sse := &http.Client{Timeout: time.Duration(n+15) * time.Second}
	resp, err := sse.Get(fmt.Sprintf("http://%s/sse?n=%d&every=1s", b.addr, n))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("answer %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	var delays []time.Duration
	for {
		line, err := br.ReadString('\n')
		got := time.Now()
		if err != nil {
			return delays
		}
		data, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "data: ")
		if !ok {
			continue
		}
		var ev struct {
			Seq    int   `json:"seq"`
			SentNS int64 `json:"sent_ns"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		if ev.Seq != len(delays)+1 {
			t.Fatalf("event %d arrived after %d events", ev.Seq, len(delays))
		}
		delays = append(delays, got.Sub(time.Unix(0, ev.SentNS)))
	}
}

// Issue 13: what is not a tunnel stays out of one, through the real
// binary: a 101 the client did not ask for is a 502; an Upgrade with a body
// (Content-Length or chunked) and an Upgrade in HTTP/1.0 are refused with
// 400 before any worker sees them. None leaves a tunnel open.
func TestTunnelRefusals(t *testing.T) {
	t.Parallel()
	record := filepath.Join(t.TempDir(), "requests")
	b := startBalancer(t, 1, realtimeEnv(t, "MAX_WORKERS=1", "RECORD_FILE="+record)...)
	upgrade := "Connection: upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	cases := []struct {
		name, req string
		status    int
		reaches   bool // the worker sees it
	}{
		{"unasked 101", "GET /raw101 HTTP/1.1\r\nHost: x\r\n\r\n", 502, true},
		{"Upgrade with Content-Length", "GET /ws?cl HTTP/1.1\r\nHost: x\r\n" + upgrade + "Content-Length: 5\r\n\r\nhello", 400, false},
		{"Upgrade with chunked body", "GET /ws?chunked HTTP/1.1\r\nHost: x\r\n" + upgrade + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400, false},
		{"Upgrade in HTTP/1.0", "GET /ws?http10 HTTP/1.0\r\nHost: x\r\n" + upgrade + "\r\n", 400, false},
	}
	status := regexp.MustCompile(`^HTTP/1\.[01] (\d{3}) `)
	for _, c := range cases {
		line := rawRequest(t, b.addr, c.req)
		m := status.FindStringSubmatch(line)
		if m == nil || m[1] != strconv.Itoa(c.status) {
			t.Errorf("%s: answer %q, want %d", c.name, line, c.status)
		}
		if n := b.openTunnels(); n != 0 {
			t.Errorf("%s: %d tunnels open after it", c.name, n)
		}
	}
	// A real WebSocket handshake then still works, and the record shows
	// exactly what reached the worker: the unasked 101's request and it.
	w, err := dialWS(b.addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.echo("still fine", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := b.openTunnels(); n != 1 {
		t.Errorf("%d tunnels open with one WebSocket, want 1", n)
	}
	w.close()
	if n := metricTunnels(t, b); n > 1 {
		t.Errorf("balancer_open_tunnels %d", n)
	}
	seen, _ := os.ReadFile(record)
	lines := strings.Split(strings.TrimSpace(string(seen)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "GET /raw101 HTTP/1.1") || !strings.HasPrefix(lines[1], `GET /ws HTTP/1.1 upgrade="websocket"`) {
		t.Fatalf("the worker saw %q; want the unasked 101's request and the WebSocket handshake, nothing of the refused upgrades", lines)
	}
}
