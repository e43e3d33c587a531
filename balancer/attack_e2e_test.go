package main

// Regression tests for request smuggling, a poisoned keep-alive pool and
// slow-client starvation, against real backends: gunicorn (Debian's
// python3-gunicorn, which `make test` installs) serving testdata/echoapp.py,
// and raw TCP upstreams written here that record the bytes they receive or
// answer with deliberately broken framing. The balancer fronts them as
// remote upstreams (MAX_WORKERS=0, UPSTREAMS=127.0.0.1:port).

import (
	"bufio"
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
	"syscall"
	"testing"
	"time"
)

// --- gunicorn -------------------------------------------------------------

var gunicornOnce struct {
	sync.Once
	argv []string // the command that runs gunicorn, without arguments
	err  error
}

// gunicornArgv finds a working gunicorn: the gunicorn script on PATH, or
// `python3 -m gunicorn` with Debian's /usr/bin/python3 (python3-gunicorn
// installs the module there; a python3 earlier on PATH, a pyenv one say,
// may not have it) or the python3 on PATH.
func gunicornArgv() ([]string, error) {
	gunicornOnce.Do(func() {
		var cands [][]string
		if p, err := exec.LookPath("gunicorn"); err == nil {
			cands = append(cands, []string{p})
		}
		cands = append(cands, []string{"/usr/bin/python3", "-m", "gunicorn"})
		if p, err := exec.LookPath("python3"); err == nil && p != "/usr/bin/python3" {
			cands = append(cands, []string{p, "-m", "gunicorn"})
		}
		var tried []string
		for _, c := range cands {
			out, err := exec.Command(c[0], append(c[1:], "--version")...).CombinedOutput()
			if err == nil {
				gunicornOnce.argv = c
				return
			}
			tried = append(tried, fmt.Sprintf("%q: %v %s", strings.Join(c, " "), err, bytes.TrimSpace(out)))
		}
		gunicornOnce.err = fmt.Errorf("gunicorn is not installed (run `make test` as root, which installs "+
			"Debian's python3-gunicorn, or apt-get install python3-gunicorn); tried %s", strings.Join(tried, "; "))
	})
	return gunicornOnce.argv, gunicornOnce.err
}

// startGunicorn runs gunicorn with testdata/echoapp.py on a free loopback
// port, with args (worker class, counts, timeouts) added, waits until it
// answers /healthz, and returns its address. Its whole process group is
// killed at cleanup.
func startGunicorn(t *testing.T, args ...string) string {
	t.Helper()
	argv, err := gunicornArgv()
	if err != nil {
		t.Fatal(err) // never skipped: these tests guard the proxy against real backends
	}
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	full := append(append([]string{}, argv[1:]...), "-b", addr, "--chdir", dir, "--log-level", "warning")
	full = append(full, args...)
	full = append(full, "echoapp:app")
	cmd := exec.Command(argv[0], full...)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so the master and every worker can be killed
	// at once; the master also dies with the test (its workers notice the
	// new parent and exit).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting gunicorn: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			t.Logf("gunicorn output:\n%s", out.String())
		}
	})
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	waitFor(t, 20*time.Second, "gunicorn answering /healthz on "+addr, func() bool {
		select {
		case <-exited:
			t.Fatalf("gunicorn exited: %s\n%s", cmd.ProcessState, out.String())
		default:
		}
		resp, err := hc.Get("http://" + addr + "/healthz")
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return addr
}

// startRemoteBalancer runs the balancer in front of the remote upstream
// addr only, and waits until it is healthy. Probes get more time than the
// harness's 100 ms: a Python upstream on a busy machine may need it.
func startRemoteBalancer(t *testing.T, addr string, env ...string) *bal {
	t.Helper()
	b := launch(t, append([]string{"MAX_WORKERS=0", "UPSTREAMS=" + addr,
		"HEALTH_INTERVAL=1s", "HEALTH_TIMEOUT=1s"}, env...)...)
	waitFor(t, 15*time.Second, "the remote upstream "+addr+" healthy", func() bool {
		select {
		case <-b.exited:
			t.Fatalf("balancer exited: %v\n%s", b.err, b.out.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", b.admin, time.Second); err != nil {
			return false
		} else {
			c.Close()
		}
		return b.workers().Totals.Healthy >= 1
	})
	return b
}

// echo is echoapp.py's answer.
type echo struct {
	Method  string `json:"method"`
	Path    string `json:"path"`
	BodyLen int    `json:"body_len"`
}

// exchange writes req on a new connection to addr and reads one response.
// status is 0 when the connection closed (or timed out) without one.
func exchange(addr, req string) (status int, body string, err error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// refusedByBalancer reports whether an answer is the balancer's own 400
// (its JSON error body), not an upstream's.
func refusedByBalancer(status int, body string) bool {
	return status == 400 && strings.Contains(body, `"error"`)
}

// clip shortens a body for a message.
func clip(s string) string {
	if len(s) <= 120 {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%q... (%d bytes)", s[:120], len(s))
}

// ownAnswer sends GET path on a new connection through the balancer and
// reports a problem unless echoapp answers 200 for that very path.
func ownAnswer(addr, path string) error {
	status, body, err := exchange(addr, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
	if err != nil || status != 200 {
		return fmt.Errorf("GET %s: status %d, body %s, error %v; want 200", path, status, clip(body), err)
	}
	var e echo
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Path != path {
		return fmt.Errorf("GET %s was answered with %s: another request's answer (desynchronized upstream connection)", path, clip(body))
	}
	return nil
}

// --- a raw TCP upstream ----------------------------------------------------

// rawUpstream is an HTTP/1.1 upstream written by hand: it records the raw
// bytes of every request but the health probes, speaks keep-alive, and
// answers /healthz with 200 and other requests with answer(uri), or by
// default with "path=<uri>".
type rawUpstream struct {
	ln     net.Listener
	answer func(uri string) []byte
	mu     sync.Mutex
	reqs   []rawReq
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

// rawReq is one request as received: its head, and the body bytes exactly
// as framed (chunk lines and trailers included).
type rawReq struct {
	uri  string
	head string
	body string
}

func startRawUpstream(t *testing.T, answer func(uri string) []byte) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln, answer: answer, conns: map[net.Conn]bool{}}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.mu.Lock()
			u.conns[c] = true
			u.mu.Unlock()
			u.wg.Add(1)
			go u.serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		u.mu.Lock()
		for c := range u.conns {
			c.Close()
		}
		u.mu.Unlock()
		u.wg.Wait()
	})
	return u
}

func (u *rawUpstream) addr() string { return u.ln.Addr().String() }

func (u *rawUpstream) requests() []rawReq {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]rawReq(nil), u.reqs...)
}

// find returns the recorded requests whose URI is uri.
func (u *rawUpstream) find(uri string) []rawReq {
	var out []rawReq
	for _, r := range u.requests() {
		if r.uri == uri {
			out = append(out, r)
		}
	}
	return out
}

func (u *rawUpstream) serve(c net.Conn) {
	defer u.wg.Done()
	defer func() {
		c.Close()
		u.mu.Lock()
		delete(u.conns, c)
		u.mu.Unlock()
	}()
	br := bufio.NewReader(c)
	for {
		req, closeConn, err := readRawRequest(br)
		if err != nil {
			return
		}
		var resp []byte
		if req.uri == "/healthz" {
			resp = []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		} else {
			u.mu.Lock()
			u.reqs = append(u.reqs, req)
			u.mu.Unlock()
			if u.answer != nil {
				resp = u.answer(req.uri)
			}
			if resp == nil {
				body := "path=" + req.uri
				resp = []byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
			}
		}
		if _, err := c.Write(resp); err != nil || closeConn {
			return
		}
	}
}

// readRawRequest reads one request: the head up to its empty line, then a
// body framed by Transfer-Encoding (any value naming chunked) or
// Content-Length, kept as framed.
func readRawRequest(br *bufio.Reader) (rawReq, bool, error) {
	var r rawReq
	var head strings.Builder
	var length int64 = -1
	chunked, closeConn := false, false
	for first := true; ; first = false {
		line, err := br.ReadString('\n')
		if err != nil {
			return r, false, err
		}
		head.WriteString(line)
		l := strings.TrimRight(line, "\r\n")
		if first {
			f := strings.Fields(l)
			if len(f) != 3 {
				return r, false, fmt.Errorf("bad request line %q", l)
			}
			r.uri = f[1]
			continue
		}
		if l == "" {
			break
		}
		name, value, _ := strings.Cut(l, ":")
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "content-length":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil {
				return r, false, err
			}
			length = n
		case "transfer-encoding":
			chunked = chunked || strings.Contains(strings.ToLower(value), "chunked")
		case "connection":
			closeConn = closeConn || strings.Contains(strings.ToLower(value), "close")
		}
	}
	r.head = head.String()
	var body strings.Builder
	switch {
	case chunked:
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return r, false, err
			}
			body.WriteString(line)
			s, _, _ := strings.Cut(strings.TrimRight(line, "\r\n"), ";")
			size, err := strconv.ParseInt(strings.TrimSpace(s), 16, 64)
			if err != nil || size < 0 || size > 1<<30 {
				return r, false, fmt.Errorf("bad chunk size line %q", line)
			}
			if size == 0 {
				for { // trailers, then the empty line
					line, err := br.ReadString('\n')
					if err != nil {
						return r, false, err
					}
					body.WriteString(line)
					if strings.TrimRight(line, "\r\n") == "" {
						break
					}
				}
				break
			}
			data := make([]byte, size)
			if _, err := io.ReadFull(br, data); err != nil {
				return r, false, err
			}
			body.Write(data)
			end, err := br.ReadString('\n')
			if err != nil {
				return r, false, err
			}
			body.WriteString(end)
		}
	case length > 0:
		data := make([]byte, length)
		if _, err := io.ReadFull(br, data); err != nil {
			return r, false, err
		}
		body.Write(data)
	}
	r.body = body.String()
	return r, closeConn, nil
}

// headerLines returns the head's lines whose field name is name
// (case-insensitively), as sent.
func headerLines(head, name string) []string {
	var out []string
	for _, l := range strings.Split(head, "\n")[1:] {
		l = strings.TrimRight(l, "\r")
		if n, _, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(n), name) {
			out = append(out, l)
		}
	}
	return out
}

// --- the tests ------------------------------------------------------------

// A chunk-size line ended by a bare LF is read differently by the balancer
// (bare LF ends the line) and by gunicorn (only CRLF does; "\nxx" is a chunk
// extension): with the chunk sizes chosen here the balancer sees one request
// whose 0x43-byte chunk hides a second request, while gunicorn sees a
// 2-byte chunk, the end of the body, and then that second request, whose
// answer goes to whichever client next uses the pooled connection. The
// balancer must refuse bare LF in chunked framing with 400, and every later
// client must get its own answer.
func TestChunkedBareLFNotSmuggled(t *testing.T) {
	t.Parallel()
	up := startGunicorn(t, "-k", "gthread", "-w", "1", "--threads", "4", "--keep-alive", "10", "--timeout", "30")
	// One event loop: one keep-alive pool, which every client shares.
	b := startRemoteBalancer(t, up, "PROXY_LOOPS=1")

	hidden := "0\r\n\r\nGET /sleep?smuggled=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n"
	if len(hidden) != 0x43 {
		t.Fatalf("the hidden chunk is %d bytes, the test needs 0x43", len(hidden))
	}
	attack := "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"2;\n" + "xx\r\n" + "43\r\n" + hidden + "\r\n0\r\n\r\n"
	status, body, err := exchange(b.addr, attack)
	if !refusedByBalancer(status, body) {
		t.Errorf("chunk-size line ended by a bare LF: got status %d, body %s, error %v; want the balancer's 400", status, clip(body), err)
	}
	for i := range 8 {
		if err := ownAnswer(b.addr, fmt.Sprintf("/c?i=%d", i)); err != nil {
			t.Errorf("client %d after the bare-LF request: %v", i, err)
		}
	}

	// Bare LF elsewhere in the framing is refused too.
	for name, chunks := range map[string]string{
		"size line without extension": "2\nxx\r\n0\r\n\r\n",
		"after chunk data":            "2\r\nxx\n0\r\n\r\n",
	} {
		req := "POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
		status, body, err := exchange(b.addr, req)
		if !refusedByBalancer(status, body) {
			t.Errorf("bare LF %s: got status %d, body %s, error %v; want the balancer's 400", name, status, clip(body), err)
		}
		if err := ownAnswer(b.addr, "/after?"+strings.ReplaceAll(name, " ", "-")); err != nil {
			t.Errorf("after bare LF %s: %v", name, err)
		}
	}
}

// Transfer-Encoding is a list, and intermediaries disagree on empty
// members: gunicorn refuses anything but exactly "chunked", others accept
// "chunked," as chunked or not. The balancer must refuse empty list members
// with 400, accept "chunked" in any case and forward it as exactly
// "Transfer-Encoding: chunked", and never forward trailers that name
// framing or routing fields.
func TestTransferEncodingCanonical(t *testing.T) {
	t.Parallel()
	bad := []string{"chunked,", ",chunked", "chunked , ,"}
	good := []string{"CHUNKED", "Chunked"}
	post := func(uri, te string) string {
		return "POST " + uri + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + te + "\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
	}

	t.Run("raw upstream", func(t *testing.T) {
		t.Parallel()
		up := startRawUpstream(t, nil)
		b := startRemoteBalancer(t, up.addr(), "PROXY_LOOPS=1")
		for i, te := range bad {
			uri := fmt.Sprintf("/bad?i=%d", i)
			status, body, err := exchange(b.addr, post(uri, te))
			if !refusedByBalancer(status, body) {
				t.Errorf("Transfer-Encoding %q: got status %d, body %s, error %v; want the balancer's 400", te, status, clip(body), err)
			}
			if seen := up.find(uri); len(seen) != 0 {
				t.Errorf("Transfer-Encoding %q reached the upstream:\n%s", te, seen[0].head)
			}
		}
		for i, te := range good {
			uri := fmt.Sprintf("/good?i=%d", i)
			status, body, err := exchange(b.addr, post(uri, te))
			if status != 200 || body != "path="+uri {
				t.Errorf("Transfer-Encoding %q: got status %d, body %s, error %v; want 200 from the upstream", te, status, clip(body), err)
				continue
			}
			seen := up.find(uri)
			if len(seen) != 1 {
				t.Errorf("Transfer-Encoding %q: the upstream saw %d such requests, want 1", te, len(seen))
				continue
			}
			if got := headerLines(seen[0].head, "Transfer-Encoding"); len(got) != 1 || got[0] != "Transfer-Encoding: chunked" {
				t.Errorf("Transfer-Encoding %q was forwarded as %q, want exactly [\"Transfer-Encoding: chunked\"]; head:\n%s", te, got, seen[0].head)
			}
		}

		// Trailers naming framing or routing fields must not reach the
		// upstream, whether the body goes on chunked (without them) or
		// re-framed with a Content-Length; refusing the request is fine too.
		trailers := "POST /trailers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"5\r\nhello\r\n0\r\nContent-Length: 5\r\nHost: evil\r\nX-Ok: 1\r\n\r\n"
		status, body, err := exchange(b.addr, trailers)
		switch {
		case refusedByBalancer(status, body):
			t.Logf("forbidden trailers: refused with 400")
		case status == 200:
			seen := up.find("/trailers")
			if len(seen) != 1 {
				t.Errorf("forbidden trailers: the upstream saw %d requests, want 1", len(seen))
				break
			}
			r := seen[0]
			t.Logf("forbidden trailers: forwarded as\n%s%s", r.head, r.body)
			if strings.Contains(r.head+r.body, "evil") {
				t.Errorf("the trailer \"Host: evil\" reached the upstream:\n%s%s", r.head, r.body)
			}
			low := strings.ToLower(r.body)
			for _, name := range []string{"content-length:", "transfer-encoding:", "host:"} {
				if strings.Contains(low, name) {
					t.Errorf("a trailer %q reached the upstream after the head:\n%s%s", name, r.head, r.body)
				}
			}
		default:
			t.Errorf("forbidden trailers: got status %d, body %s, error %v; want 200 (trailers dropped) or the balancer's 400", status, clip(body), err)
		}
		if status, body, err := exchange(b.addr, "GET /last HTTP/1.1\r\nHost: x\r\n\r\n"); status != 200 || body != "path=/last" {
			t.Errorf("GET /last after the others: status %d, body %s, error %v", status, clip(body), err)
		}
	})

	t.Run("gunicorn", func(t *testing.T) {
		t.Parallel()
		up := startGunicorn(t, "-k", "gthread", "-w", "1", "--threads", "4", "--keep-alive", "10", "--timeout", "30")
		b := startRemoteBalancer(t, up, "PROXY_LOOPS=1")
		for i, te := range append(append([]string{}, bad...), good...) {
			status, body, err := exchange(b.addr, post(fmt.Sprintf("/te?i=%d", i), te))
			if i < len(bad) {
				if !refusedByBalancer(status, body) {
					t.Errorf("Transfer-Encoding %q: got status %d, body %s, error %v; want the balancer's 400", te, status, clip(body), err)
				}
			} else {
				var e echo
				if status != 200 || json.Unmarshal([]byte(body), &e) != nil || e.Path != fmt.Sprintf("/te?i=%d", i) || e.BodyLen != 5 {
					t.Errorf("Transfer-Encoding %q: got status %d, body %s, error %v; want 200 with a 5-byte body read", te, status, clip(body), err)
				}
			}
			if err := ownAnswer(b.addr, fmt.Sprintf("/follow?i=%d", i)); err != nil {
				t.Errorf("after Transfer-Encoding %q: %v", te, err)
			}
		}
	})
}

// An upstream that sends more than the response it announced (here, a
// whole second response) leaves those bytes on the connection. When the
// announced response ends exactly where a 16 KiB read buffer ends, the
// balancer has not seen the extra bytes yet; it must still not pool the
// connection with them pending, or the next client gets the forged answer.
func TestPoolNotPoisoned(t *testing.T) {
	t.Parallel()
	const poison = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON"
	answer := func(uri string) []byte {
		n, ok := strings.CutPrefix(uri, "/size?n=")
		if !ok {
			return nil
		}
		k, _ := strconv.Atoi(n)
		resp := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", k) + strings.Repeat("s", k)
		return []byte(resp + poison) // one write
	}
	up := startRawUpstream(t, answer)
	// One event loop: one pool, so the next request takes the connection
	// the previous one used.
	b := startRemoteBalancer(t, up.addr(), "PROXY_LOOPS=1")
	bodyFor := func(total int) int { // head + body = total bytes
		k := total
		for range 3 {
			k = total - len(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", k))
		}
		return k
	}
	bad := 0
	for _, total := range []int{16 << 10, 32 << 10, 48 << 10} {
		k := bodyFor(total)
		if got := len(answer(fmt.Sprintf("/size?n=%d", k))) - len(poison); got != total {
			t.Fatalf("answer for %d is %d bytes before the extra ones", total, got)
		}
		for run := range 4 {
			status, body, err := exchange(b.addr, fmt.Sprintf("GET /size?n=%d HTTP/1.1\r\nHost: x\r\n\r\n", k))
			if status != 200 || len(body) != k {
				t.Errorf("%d-byte answer, run %d: status %d, %d body bytes, error %v; want 200 with %d", total, run, status, len(body), err, k)
			}
			uri := fmt.Sprintf("/other?total=%d&run=%d", total, run)
			status, body, err = exchange(b.addr, "GET "+uri+" HTTP/1.1\r\nHost: x\r\n\r\n")
			if status != 200 || body != "path="+uri {
				bad++
				t.Errorf("after a %d-byte answer with extra bytes (run %d), GET %s got status %d, body %s, error %v; want its own answer (%q)",
					total, run, uri, status, clip(body), err, "path="+uri)
			}
		}
	}
	if bad > 0 {
		t.Logf("%d of 12 follow-up requests got another answer than their own", bad)
	}
}

// Slow clients must not hold gunicorn's sync workers (one request at a time
// each): a client trickling its request body, or reading its answer
// slowly, is buffered by the balancer, as nginx does, so two sync workers
// still serve everyone else.
//
// Not parallel: it measures the share of requests answered in time.
func TestSlowClientsDoNotStarveSyncWorkers(t *testing.T) {
	up := startGunicorn(t, "-k", "sync", "-w", "2", "--timeout", "30")
	b := startRemoteBalancer(t, up)

	const runFor = 15 * time.Second
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn // closed at the end, to unblock the slow clients
	track := func(c net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		select {
		case <-stop:
			c.Close()
			return false
		default:
		}
		conns = append(conns, c)
		return true
	}
	sleep := func(d time.Duration) bool {
		select {
		case <-stop:
			return false
		case <-time.After(d):
			return true
		}
	}

	// 4 clients sending a 100000-byte body one byte every 2 s.
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sleep(time.Duration(i+1) * 100 * time.Millisecond) {
				c, err := net.Dial("tcp", b.addr)
				if err != nil || !track(c) {
					continue
				}
				_, err = fmt.Fprintf(c, "POST /slow-body?i=%d HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", i)
				for err == nil && sleep(2*time.Second) {
					_, err = c.Write([]byte("x"))
				}
				c.Close()
			}
		}()
	}
	// 4 clients reading a 50 MB answer at about 2 KB/s, with a small
	// receive buffer, so the answer cannot hide in their sockets.
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
				return rc.Control(func(fd uintptr) {
					syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
				})
			}}
			for sleep(time.Duration(i+1) * 100 * time.Millisecond) {
				c, err := d.Dial("tcp", b.addr)
				if err != nil || !track(c) {
					continue
				}
				c.(*net.TCPConn).SetReadBuffer(4096)
				_, err = fmt.Fprintf(c, "GET /big?n=50000000&i=%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
				buf := make([]byte, 512)
				for err == nil && sleep(250*time.Millisecond) {
					_, err = c.Read(buf)
				}
				c.Close()
			}
		}()
	}

	// Meanwhile a normal client: a GET every 50 ms, 2 s each at most.
	time.Sleep(500 * time.Millisecond) // the slow clients are in place
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	ok, total := 0, 0
	var fails []string
	end := time.Now().Add(runFor)
	for i := 0; time.Now().Before(end); i++ {
		start := time.Now()
		path := fmt.Sprintf("/c?i=%d", i)
		total++
		resp, err := hc.Get("http://" + b.addr + path)
		var e echo
		if err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case rerr != nil:
				err = rerr
			case resp.StatusCode != 200:
				err = fmt.Errorf("status %d: %s", resp.StatusCode, body)
			case json.Unmarshal(body, &e) != nil || e.Path != path:
				err = fmt.Errorf("answered %q", body)
			}
		}
		if err == nil {
			ok++
		} else if len(fails) < 5 {
			fails = append(fails, fmt.Sprintf("GET %s after %s: %v", path, time.Since(start).Round(time.Millisecond), err))
		}
		time.Sleep(time.Until(start.Add(50 * time.Millisecond)))
	}

	rss := "unknown"
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", b.cmd.Process.Pid)); err == nil {
		for _, l := range strings.Split(string(st), "\n") {
			if v, found := strings.CutPrefix(l, "VmRSS:"); found {
				rss = strings.TrimSpace(v)
			}
		}
	}
	mu.Lock()
	close(stop)
	for _, c := range conns {
		c.Close()
	}
	mu.Unlock()
	wg.Wait()

	t.Logf("normal client: %d of %d GETs answered 200 within 2s, beside 4 slow-body and 4 slow-reading clients; balancer RSS %s", ok, total, rss)
	if total == 0 || ok*100 < total*95 {
		t.Fatalf("only %d of %d GETs (%.0f%%) answered 200 in time, want at least 95%%; first failures: %s",
			ok, total, 100*float64(ok)/float64(max(total, 1)), strings.Join(fails, "; "))
	}
}
