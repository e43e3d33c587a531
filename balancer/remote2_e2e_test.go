package main

// Issue 11: remote upstreams on many machines, as real processes on
// loopback addresses (127.0.0.2, 127.0.0.3, [::1] stand for hosts): the
// reference worker standalone on WORKER_ADDR, a test DNS server whose
// answers change, the runtime upstream API, weights, mixed pools.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/procbal/procbal/balancer/admin"
)

// hostWorker is the reference worker run on its own at a fixed address,
// as on another machine; it can be killed and started again there.
type hostWorker struct {
	t    *testing.T
	addr string
	id   string
	mu   sync.Mutex
	cmd  *exec.Cmd
}

func startHostWorker(t *testing.T, addr, id string) *hostWorker {
	t.Helper()
	w := &hostWorker{t: t, addr: addr, id: id}
	w.start()
	t.Cleanup(w.kill)
	return w
}

// start runs the worker and waits until it accepts connections.
func (w *hostWorker) start() {
	w.t.Helper()
	cmd := exec.Command(bins.worker)
	cmd.Env = append(os.Environ(), "WORKER_ADDR="+w.addr, "WORKER_ID="+w.id, "LOG_LEVEL=warn")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.mu.Lock()
	w.cmd = cmd
	w.mu.Unlock()
	waitFor(w.t, 15*time.Second, "worker "+w.id+" listening on "+w.addr, func() bool {
		c, err := net.DialTimeout("tcp", w.addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// kill ends the worker with SIGKILL, as a machine that dies.
func (w *hostWorker) kill() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cmd != nil {
		w.cmd.Process.Kill()
		w.cmd.Wait()
		w.cmd = nil
	}
}

// portOn returns a TCP port free on every one of ips.
func portOn(t *testing.T, ips ...string) string {
	t.Helper()
	for range 100 {
		first, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(first.Addr().String())
		ok := true
		for _, ip := range ips[1:] {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, port))
			if err != nil {
				ok = false
				break
			}
			ln.Close()
		}
		first.Close()
		if ok {
			return port
		}
	}
	t.Fatalf("no port free on all of %v", ips)
	return ""
}

// idLoad runs n clients sending GET /api/health until stopped, counting
// the answers by worker id and every failure.
type idLoad struct {
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	byID   map[int]int
	fail   int
	errs   []string
	served atomic.Int64
}

func startIDLoad(b *bal, n int) *idLoad {
	l := &idLoad{stop: make(chan struct{}), byID: map[int]int{}}
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			deadline := time.Now().Add(90 * time.Second) // bounded even if never stopped
			for time.Now().Before(deadline) {
				select {
				case <-l.stop:
					return
				default:
				}
				h, err := b.health()
				l.mu.Lock()
				if err != nil {
					l.fail++
					if len(l.errs) < 10 {
						l.errs = append(l.errs, err.Error())
					}
				} else {
					l.byID[h.WorkerID]++
					l.served.Add(1)
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *idLoad) count(id int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byID[id]
}

// waitServed waits until worker id has answered more than n more requests.
func (l *idLoad) waitServed(t *testing.T, id, n int, d time.Duration) {
	t.Helper()
	start := l.count(id)
	waitFor(t, d, fmt.Sprintf("worker %d answering %d more requests", id, n), func() bool { return l.count(id) > start+n })
}

func (l *idLoad) finish(t *testing.T) map[int]int {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	t.Logf("load: %v by worker id, %d failed", l.byID, l.fail)
	if l.fail > 0 || len(l.byID) == 0 {
		t.Fatalf("%d failed requests: %v", l.fail, l.errs)
	}
	return l.byID
}

// workerAt returns the /admin/workers entry with address, if any.
func (b *bal) workerAt(address string) (admin.Worker, bool) {
	for _, w := range b.workers().Workers {
		if w.Address == address {
			return w, true
		}
	}
	return admin.Worker{}, false
}

func (b *bal) stateAt(address string) string {
	w, _ := b.workerAt(address)
	return w.State
}

// adminCall sends an admin request and returns its status and raw body.
func (b *bal) adminCall(method, path, body string) (int, []byte) {
	b.t.Helper()
	req, _ := http.NewRequest(method, "http://"+b.admin+path, strings.NewReader(body))
	resp, err := client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}

// stop sends SIGTERM and waits for a clean exit.
func (b *bal) stop() {
	b.t.Helper()
	b.cmd.Process.Signal(syscall.SIGTERM)
	if code := b.waitExit(30 * time.Second); code != 0 {
		b.t.Fatalf("balancer exit %d after SIGTERM", code)
	}
}

func countLines(out, s string) int { return strings.Count(out, s) }

// Must show: two standalone workers on 127.0.0.2 and 127.0.0.3 both get
// traffic; one killed under load costs no GET, and is marked unhealthy
// within HEALTH_INTERVAL x UNHEALTHY_THRESHOLD; started again, it is
// healthy and gets traffic again.
func TestRemoteTwoHostsKillAndRestart(t *testing.T) {
	t.Parallel()
	port := portOn(t, "127.0.0.2", "127.0.0.3")
	a, b := "127.0.0.2:"+port, "127.0.0.3:"+port
	startHostWorker(t, a, "2")
	wb := startHostWorker(t, b, "3")
	const interval, threshold = 300 * time.Millisecond, 3
	bal := launch(t, "MAX_WORKERS=0", "UPSTREAMS="+a+","+b, "HEALTH_INTERVAL="+interval.String(),
		"UNHEALTHY_THRESHOLD="+strconv.Itoa(threshold))
	bal.waitHealthy(2, 20*time.Second)
	l := startIDLoad(bal, 4)
	l.waitServed(t, 2, 50, 20*time.Second)
	l.waitServed(t, 3, 50, 20*time.Second)

	killed := time.Now()
	wb.kill()
	var took time.Duration
	waitFor(t, 10*time.Second, b+" unhealthy", func() bool {
		took = time.Since(killed)
		return bal.stateAt(b) == "unhealthy"
	})
	bound := interval * threshold
	t.Logf("marked unhealthy %s after the kill (HEALTH_INTERVAL x UNHEALTHY_THRESHOLD = %s)", took.Round(time.Millisecond), bound)
	if took > bound+250*time.Millisecond { // for this test's own polling, on a loaded machine
		t.Errorf("marked unhealthy %s after the kill, want within %s", took, bound)
	}
	if w, _ := bal.workerAt(b); w.LastCheckError == "" || w.LastCheckAt == "" {
		t.Errorf("the dead upstream's last check: %+v", w)
	}
	l.waitServed(t, 2, 100, 20*time.Second)

	wb.start()
	waitFor(t, 20*time.Second, b+" healthy again", func() bool { return bal.stateAt(b) == "healthy" })
	l.waitServed(t, 3, 50, 20*time.Second)
	if w, _ := bal.workerAt(b); w.LastCheckError != "" {
		t.Errorf("last_check_error %q after recovering", w.LastCheckError)
	}
	l.finish(t)
}

// testDNS is a DNS server on loopback whose answers the test changes:
// records per name, every question SERVFAIL, or no answer at all.
type testDNS struct {
	addr    string
	queries atomic.Int64
	mu      sync.Mutex
	mode    string // "answer", "servfail" or "silent"
	names   map[string][]netip.Addr
	ttl     uint32
}

func startTestDNS(t *testing.T) *testDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &testDNS{addr: pc.LocalAddr().String(), mode: "answer", names: map[string][]netip.Addr{}, ttl: 1}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(d.serve)}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return d
}

func (d *testDNS) set(name string, addrs ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var list []netip.Addr
	for _, a := range addrs {
		list = append(list, netip.MustParseAddr(a))
	}
	d.names[dns.Fqdn(name)] = list
}

func (d *testDNS) setMode(mode string) {
	d.mu.Lock()
	d.mode = mode
	d.mu.Unlock()
}

func (d *testDNS) serve(w dns.ResponseWriter, r *dns.Msg) {
	d.queries.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mode == "silent" || len(r.Question) != 1 {
		return
	}
	m := new(dns.Msg)
	m.SetReply(r)
	q := r.Question[0]
	addrs, known := d.names[strings.ToLower(q.Name)]
	switch {
	case d.mode == "servfail":
		m.Rcode = dns.RcodeServerFailure
	case !known:
		m.Rcode = dns.RcodeNameError
	default:
		for _, a := range addrs {
			hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: d.ttl}
			if a.Is4() && q.Qtype == dns.TypeA {
				hdr.Rrtype = dns.TypeA
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
			} else if a.Is6() && q.Qtype == dns.TypeAAAA {
				hdr.Rrtype = dns.TypeAAAA
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
			}
		}
	}
	w.WriteMsg(m)
}

// liveAddresses lists the remote upstreams not draining, sorted.
func (b *bal) liveAddresses() []string {
	var out []string
	for _, w := range b.workers().Workers {
		if w.Kind == "remote" && w.State != "draining" && w.State != "stopped" {
			out = append(out, w.Address)
		}
	}
	slices.Sort(out)
	return out
}

// Must show: a DNS name (A and AAAA, with a 1 s TTL the balancer follows
// although DNS_REFRESH is an hour) whose answer changes: upstreams come and
// go to match, the removed one drains, no request fails. Then SERVFAIL,
// then silence: the set stays, no request fails, one warning; answers
// again: one recovery line.
func TestDNSUpstreamsFollowAnswersAndSurviveOutage(t *testing.T) {
	t.Parallel()
	d := startTestDNS(t)
	port := portOn(t, "127.0.0.2", "127.0.0.3", "::1")
	a, b, c := "127.0.0.2:"+port, "127.0.0.3:"+port, "[::1]:"+port
	startHostWorker(t, a, "2")
	startHostWorker(t, b, "3")
	startHostWorker(t, c, "6")
	d.set("workers.test", "127.0.0.2", "127.0.0.3")
	bal := launch(t, "MAX_WORKERS=0", "UPSTREAMS=workers.test:"+port, "DNS_SERVER="+d.addr, "DNS_REFRESH=1h", "DRAIN_TIMEOUT=10s")
	bal.waitHealthy(2, 20*time.Second)
	l := startIDLoad(bal, 3)
	slow := startLoad(bal, 2, "/api/sleep?ms=100") // requests in flight when an address goes
	l.waitServed(t, 2, 20, 20*time.Second)
	l.waitServed(t, 3, 20, 20*time.Second)

	d.set("workers.test", "127.0.0.3", "::1")
	want := []string{b, c}
	slices.Sort(want)
	waitFor(t, 20*time.Second, "127.0.0.2 drained and [::1] added and healthy", func() bool {
		_, stillThere := bal.workerAt(a)
		return !stillThere && slices.Equal(bal.liveAddresses(), want) && bal.stateAt(c) == "healthy"
	})
	l.waitServed(t, 6, 20, 20*time.Second)
	gone := l.count(2)
	l.waitServed(t, 3, 50, 20*time.Second)
	if n := l.count(2); n != gone {
		t.Fatalf("the removed address answered %d more requests", n-gone)
	}

	for _, mode := range []string{"servfail", "silent"} {
		d.setMode(mode)
		q := d.queries.Load()
		waitFor(t, 20*time.Second, mode+": asked twice more", func() bool { return d.queries.Load() >= q+8 })
		if got := bal.liveAddresses(); !slices.Equal(got, want) {
			t.Fatalf("%s: upstreams %v, want the last known %v", mode, got, want)
		}
		if h := bal.workers().Totals.Healthy; h != 2 {
			t.Fatalf("%s: %d healthy", mode, h)
		}
	}
	const warning, recovery = "DNS lookup failed, keeping the last known addresses", "DNS lookup recovered"
	if n := countLines(bal.out.String(), warning); n != 1 {
		t.Fatalf("%d outage warnings, want 1", n)
	}
	d.setMode("answer")
	waitFor(t, 20*time.Second, "the recovery line", func() bool { return countLines(bal.out.String(), recovery) > 0 })
	time.Sleep(2500 * time.Millisecond) // two more lookups
	if n := countLines(bal.out.String(), recovery); n != 1 || countLines(bal.out.String(), warning) != 1 {
		t.Fatalf("%d recovery lines, want 1", n)
	}
	l.waitServed(t, 6, 20, 20*time.Second)
	slow.finish(t)
	l.finish(t)
}

// hangServer accepts connections and never answers.
func hangServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

// Must show: a remote upstream that never answers is unhealthy after
// WORKER_START_TIMEOUT, with one warning, and its last_check_error in
// /admin/workers; every upstream, local or remote, has last_check_at.
func TestRemoteNeverHealthy(t *testing.T) {
	t.Parallel()
	hang := hangServer(t)
	started := time.Now()
	bal := launch(t, "MAX_WORKERS=1", "UPSTREAMS="+hang, "WORKER_START_TIMEOUT=2s")
	waitFor(t, 20*time.Second, "the local worker healthy", func() bool {
		_, err := net.DialTimeout("tcp", bal.admin, time.Second)
		return err == nil && bal.workers().Totals.Healthy == 1
	})
	if s := bal.stateAt(hang); s != "starting" && time.Since(started) < 2*time.Second {
		t.Fatalf("before the start timeout the upstream is %q, want starting", s)
	}
	waitFor(t, 10*time.Second, "the silent upstream unhealthy", func() bool { return bal.stateAt(hang) == "unhealthy" })
	if took := time.Since(started); took < 2*time.Second {
		t.Fatalf("unhealthy after %s, before WORKER_START_TIMEOUT", took)
	}
	time.Sleep(time.Second) // five more probes
	const warning = "remote upstream not healthy within the start timeout"
	out := bal.out.String()
	var lines []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, warning) {
			lines = append(lines, line)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "[WARN]") || !strings.Contains(lines[0], hang) ||
		!strings.Contains(lines[0], "last_error=") || strings.Contains(lines[0], `last_error=""`) {
		t.Fatalf("want one warning naming %s and its last error, got %q", hang, lines)
	}
	for _, w := range bal.workers().Workers {
		if w.LastCheckAt == "" {
			t.Errorf("%s (%s) has no last_check_at", w.Address, w.Kind)
		}
		if _, err := time.Parse(time.RFC3339Nano, w.LastCheckAt); err != nil {
			t.Errorf("last_check_at %q: %v", w.LastCheckAt, err)
		}
		switch {
		case w.Kind == "remote" && w.LastCheckError == "":
			t.Errorf("remote %s has no last_check_error", w.Address)
		case w.Kind == "local" && w.LastCheckError != "":
			t.Errorf("healthy local worker last_check_error %q", w.LastCheckError)
		}
	}
	t.Logf("%s", lines[0])
	for range 5 {
		if h, err := bal.health(); err != nil || h.WorkerID != 1 {
			t.Fatalf("served by %+v, %v; want the local worker", h, err)
		}
	}
}

// upstreamSet is GET /admin/upstreams, for comparisons.
func (b *bal) upstreamSet() admin.UpstreamList {
	b.t.Helper()
	var l admin.UpstreamList
	if code := b.adminReq("GET", "/admin/upstreams", "", &l); code != 200 {
		b.t.Fatalf("GET /admin/upstreams: %d", code)
	}
	return l
}

func setKey(l admin.UpstreamList) string {
	var parts []string
	for _, e := range l.Entries {
		parts = append(parts, fmt.Sprintf("%s=%d %v", e.Address, e.Weight, e.IDs))
	}
	return strings.Join(parts, ", ")
}

// Must show: POST, GET and DELETE /admin/upstreams under load, with no
// failed request; every bad input gets a 4xx JSON error and changes
// nothing, in the balancer or in UPSTREAMS_FILE; the set survives a
// restart through UPSTREAMS_FILE.
func TestUpstreamsAPIUnderLoad(t *testing.T) {
	t.Parallel()
	d := startTestDNS(t) // names the API is given are asked here, never of the machine's resolver
	d.set("named.test", "127.0.0.3")
	pa, pb := portOn(t, "127.0.0.2"), portOn(t, "127.0.0.3")
	a, b := "127.0.0.2:"+pa, "127.0.0.3:"+pb
	startHostWorker(t, a, "2")
	startHostWorker(t, b, "3")
	file := filepath.Join(t.TempDir(), "upstreams")
	env := []string{"MAX_WORKERS=1", "UPSTREAMS=" + a, "UPSTREAMS_FILE=" + file, "DNS_SERVER=" + d.addr}
	bal := launch(t, env...)
	bal.waitHealthy(2, 20*time.Second)
	l := startIDLoad(bal, 4)

	code, body := bal.adminCall("POST", "/admin/upstreams", `{"address": "`+b+`", "weight": 2}`)
	var added admin.UpstreamChange
	if err := json.Unmarshal(body, &added); code != 201 || err != nil || len(added.Upstreams) != 1 {
		t.Fatalf("POST: %d %s", code, body)
	}
	idB := added.Upstreams[0].ID
	if u := added.Upstreams[0]; u.Address != b || u.Weight != 2 || u.Source != "api" || u.State != "starting" {
		t.Fatalf("added %+v, want %s weight 2 from the api, starting", u, b)
	}
	l.waitServed(t, 3, 30, 20*time.Second)
	set := bal.upstreamSet()
	if len(set.Entries) != 2 || len(set.Upstreams) != 2 || set.Upstreams[1].ID != idB || set.Upstreams[1].State != "healthy" {
		t.Fatalf("GET /admin/upstreams: %+v", set)
	}
	fileText, _ := os.ReadFile(file)
	if !strings.Contains(string(fileText), "\n"+a+"\n"+b+"=2\n") {
		t.Fatalf("UPSTREAMS_FILE:\n%s", fileText)
	}

	before, beforeFile := setKey(bal.upstreamSet()), string(fileText)
	for _, c := range []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/admin/upstreams", `{}`, 400},
		{"POST", "/admin/upstreams", `{"weight": 1}`, 400},
		{"POST", "/admin/upstreams", `{"address": ""}`, 400},
		{"POST", "/admin/upstreams", `not json`, 400},
		{"POST", "/admin/upstreams", `{"address": "127.0.0.9:1", "extra": 1}`, 400},
		{"POST", "/admin/upstreams", `{"address": "127.0.0.9:1", "weight": 1.5}`, 400},
		{"POST", "/admin/upstreams", `{"address": "127.0.0.9:1", "weight": "3"}`, 400},
		{"POST", "/admin/upstreams", `{"address": "nonsense"}`, 422},
		{"POST", "/admin/upstreams", `{"address": "127.0.0.1:0"}`, 422},
		{"POST", "/admin/upstreams", `{"address": "300.1.1.1:80"}`, 422},
		{"POST", "/admin/upstreams", `{"address": "::1:80"}`, 422},
		{"POST", "/admin/upstreams", `{"address": "unix:relative.sock"}`, 422},
		{"POST", "/admin/upstreams", `{"address": "127.0.0.9:1=2"}`, 422},
		{"POST", "/admin/upstreams", `{"address": "no-such-name.test:80"}`, 422},
		{"POST", "/admin/upstreams", `{"address": "127.0.0.9:1", "weight": 0}`, 422},
		{"POST", "/admin/upstreams", `{"address": "127.0.0.9:1", "weight": 1e9}`, 422},
		{"POST", "/admin/upstreams", `{"address": "127.0.0.9:1", "weight": -1}`, 422},
		{"POST", "/admin/upstreams", `{"address": "` + b + `"}`, 409},
		{"DELETE", "/admin/upstreams/1999", "", 404},
		{"DELETE", "/admin/upstreams/1", "", 400}, // the local worker
		{"DELETE", "/admin/upstreams/abc", "", 400},
		{"DELETE", "/admin/upstreams/0", "", 400},
		{"DELETE", "/admin/upstreams", "", 400},
		{"DELETE", "/admin/upstreams?address=127.0.0.9:1", "", 404},
		{"PUT", "/admin/upstreams", `{"address": "127.0.0.9:1"}`, 405},
		{"GET", "/admin/upstreams/" + strconv.Itoa(idB), "", 405},
	} {
		code, body := bal.adminCall(c.method, c.path, c.body)
		var e struct{ Error string }
		if code != c.status || json.Unmarshal(body, &e) != nil || e.Error == "" {
			t.Errorf("%s %s %s: %d %s, want %d and a JSON error", c.method, c.path, c.body, code, body, c.status)
		}
		if after := setKey(bal.upstreamSet()); after != before {
			t.Fatalf("%s %s %s changed the set: %s, was %s", c.method, c.path, c.body, after, before)
		}
		if now, _ := os.ReadFile(file); string(now) != beforeFile {
			t.Fatalf("%s %s %s changed UPSTREAMS_FILE:\n%s", c.method, c.path, c.body, now)
		}
	}
	l.finish(t)

	// The set, API change included, survives a restart through the file.
	bal.stop()
	bal = launch(t, env...)
	bal.waitHealthy(3, 20*time.Second)
	l = startIDLoad(bal, 4)
	l.waitServed(t, 3, 30, 20*time.Second)
	set = bal.upstreamSet()
	if len(set.Entries) != 2 || set.Entries[1].Address != b || set.Entries[1].Weight != 2 || set.Entries[1].Source != "UPSTREAMS_FILE" {
		t.Fatalf("after a restart: %+v", set.Entries)
	}
	idB = set.Entries[1].IDs[0]
	code, body = bal.adminCall("DELETE", "/admin/upstreams/"+strconv.Itoa(idB), "")
	var removed admin.UpstreamChange
	if err := json.Unmarshal(body, &removed); code != 200 || err != nil || !slices.Equal(removed.Removed, []int{idB}) {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	waitFor(t, 20*time.Second, b+" drained and gone", func() bool { _, there := bal.workerAt(b); return !there })
	served := l.count(3)
	l.waitServed(t, 2, 50, 20*time.Second)
	if l.count(3) != served {
		t.Fatal("the removed upstream still gets requests")
	}
	if now, _ := os.ReadFile(file); strings.Contains(string(now), b) {
		t.Fatalf("UPSTREAMS_FILE after DELETE:\n%s", now)
	}
	// A DNS name through the API: resolved now, removed by address.
	code, body = bal.adminCall("POST", "/admin/upstreams", `{"address": "named.test:`+pb+`"}`)
	if code != 201 || !strings.Contains(string(body), b) {
		t.Fatalf("POST a name: %d %s", code, body)
	}
	l.waitServed(t, 3, 30, 20*time.Second)
	if code, body := bal.adminCall("DELETE", "/admin/upstreams?address=named.test:"+pb, ""); code != 200 {
		t.Fatalf("DELETE by address: %d %s", code, body)
	}
	waitFor(t, 20*time.Second, "the name's upstream gone", func() bool { _, there := bal.workerAt(b); return !there })
	l.finish(t)
}

// Must show: weights 1 and 3 split 4,000 requests 25% / 75% within 2
// points through the real balancer, for both strategies. One client at a
// time: least_conn then always sees a tie, which it shares by weight.
func TestWeightsSplitThroughBalancer(t *testing.T) {
	t.Parallel()
	a, b := "127.0.0.2:"+portOn(t, "127.0.0.2"), "127.0.0.3:"+portOn(t, "127.0.0.3")
	startHostWorker(t, a, "2")
	startHostWorker(t, b, "3")
	for _, strategy := range []string{"round_robin", "least_conn"} {
		bal := launch(t, "MAX_WORKERS=0", "UPSTREAMS="+a+"=1,"+b+"=3", "BALANCE_STRATEGY="+strategy)
		r := bal.waitHealthy(2, 20*time.Second)
		for _, w := range r.Workers {
			if want := map[string]int{a: 1, b: 3}[w.Address]; w.Weight != want {
				t.Fatalf("%s has weight %d, want %d", w.Address, w.Weight, want)
			}
		}
		got := map[int]int{}
		for range 4000 {
			h, err := bal.health()
			if err != nil {
				t.Fatal(err)
			}
			got[h.WorkerID]++
		}
		share := 100 * float64(got[2]) / 4000
		t.Logf("%s: %v, weight 1 took %.1f%%", strategy, got, share)
		if share < 23 || share > 27 || got[2]+got[3] != 4000 {
			t.Errorf("%s: weight 1 of 4 took %.1f%% (%v), want 25%% within 2 points", strategy, share, got)
		}
		bal.stop()
	}
}

// Must show: a mixed pool of 2 local workers and 1 remote upstream is one
// pool: all three get traffic and metrics; the remote dying costs no
// request (retried on the local ones) and takes it out; back, it serves.
func TestMixedPool(t *testing.T) {
	t.Parallel()
	r := "127.0.0.2:" + portOn(t, "127.0.0.2")
	wr := startHostWorker(t, r, "7")
	bal := startBalancer(t, 3, "MAX_WORKERS=2", "UPSTREAMS="+r)
	l := startIDLoad(bal, 4)
	for _, id := range []int{1, 2, 7} {
		l.waitServed(t, id, 30, 20*time.Second)
	}
	_, metrics, err := func() (int, []byte, error) {
		resp, err := client.Get("http://" + bal.admin + "/metrics")
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		_, err = buf.ReadFrom(resp.Body)
		return resp.StatusCode, buf.Bytes(), err
	}()
	if err != nil {
		t.Fatal(err)
	}
	for _, label := range []string{`upstream="worker-1"`, `upstream="worker-2"`, `upstream="` + r + `"`} {
		if !bytes.Contains(metrics, []byte(label)) {
			t.Errorf("/metrics has no %s", label)
		}
	}
	wr.kill()
	// Passive ejection may take it out first; the failed probes then make
	// it unhealthy, which the next good probes end.
	waitFor(t, 10*time.Second, "the remote unhealthy", func() bool { return bal.stateAt(r) == "unhealthy" })
	l.waitServed(t, 1, 50, 20*time.Second)
	wr.start()
	waitFor(t, 20*time.Second, "the remote healthy again", func() bool { return bal.stateAt(r) == "healthy" })
	l.waitServed(t, 7, 30, 20*time.Second)
	l.finish(t)
}

// Must show: a bad UPSTREAMS entry (or DNS_SERVER, or UPSTREAMS_FILE
// line) stops the start with a non-zero exit and one line naming it.
func TestRemoteBadEntriesRefused(t *testing.T) {
	t.Parallel()
	badFile := filepath.Join(t.TempDir(), "upstreams")
	if err := os.WriteFile(badFile, []byte("127.0.0.2:80\n127.0.0.3:80=0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ env, names string }{
		{"UPSTREAMS=nohost", "nohost"},
		{"UPSTREAMS=127.0.0.1:0", "127.0.0.1:0"},
		{"UPSTREAMS=127.0.0.1:65536", "127.0.0.1:65536"},
		{"UPSTREAMS=127.0.0.1:80=0", "127.0.0.1:80=0"},
		{"UPSTREAMS=127.0.0.1:80=1001", "127.0.0.1:80=1001"},
		{"UPSTREAMS=127.0.0.1:80=heavy", "127.0.0.1:80=heavy"},
		{"UPSTREAMS=::1:80", "::1:80"},
		{"UPSTREAMS=[::1]", "[::1]"},
		{"UPSTREAMS=bad host:80", "bad host:80"},
		{"UPSTREAMS=http://h:80", "http://h:80"},
		{"UPSTREAMS=unix:relative.sock", "unix:relative.sock"},
		{"UPSTREAMS=127.0.0.2:80,,127.0.0.3:80", "empty entry"},
		{"UPSTREAMS=127.0.0.2:80,127.0.0.2:80=2", "twice"},
		{"DNS_SERVER=dns.example:53", "dns.example:53"},
		{"UPSTREAMS_FILE=" + badFile, badFile + ":2"},
	} {
		t.Run(c.env, func(t *testing.T) {
			t.Parallel()
			b := launch(t, c.env, "MAX_WORKERS=1")
			code := b.waitExit(10 * time.Second)
			out := strings.TrimSpace(b.out.String())
			name, _, _ := strings.Cut(c.env, "=")
			if code == 0 || strings.Count(out, "\n") != 0 || !strings.Contains(out, name) || !strings.Contains(out, c.names) {
				t.Fatalf("exit %d, output %q: want non-zero and one line naming %s and %q", code, out, name, c.names)
			}
		})
	}
}
