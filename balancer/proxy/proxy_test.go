//go:build linux

package proxy_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/procbal/procbal/balancer/pool"
)

// recorder is a backend handler that keeps a copy of every request it got,
// so the tests assert what the upstream received.
type recorder struct {
	got  chan *fasthttp.Request
	resp func(ctx *fasthttp.RequestCtx) // optional: shapes the answer
}

func newRecorder() *recorder { return &recorder{got: make(chan *fasthttp.Request, 64)} }

func (r *recorder) handle(ctx *fasthttp.RequestCtx) {
	req := &fasthttp.Request{}
	ctx.Request.CopyTo(req)
	select {
	case r.got <- req:
	default:
	}
	if r.resp != nil {
		r.resp(ctx)
		return
	}
	ctx.SetBodyString("ok")
}

func (r *recorder) next(t *testing.T) *fasthttp.Request {
	t.Helper()
	select {
	case req := <-r.got:
		return req
	case <-time.After(5 * time.Second):
		t.Fatal("the backend got no request")
		return nil
	}
}

// headerValues returns every value of the header name, matched without
// regard to case.
func headerValues(h *fasthttp.RequestHeader, name string) []string {
	var vs []string
	for k, v := range h.All() {
		if strings.EqualFold(string(k), name) {
			vs = append(vs, string(v))
		}
	}
	return vs
}

func TestHopByHopRequestHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		headers string   // raw header lines the client sends
		gone    []string // must not reach the backend
		kept    map[string]string
	}{
		{
			name:    "connection-named",
			headers: "Connection: X-Fake-Hop, X-Other\r\nX-Fake-Hop: 1\r\nX-Other: 2\r\nX-Keep: yes\r\n",
			gone:    []string{"X-Fake-Hop", "X-Other", "Connection"},
			kept:    map[string]string{"X-Keep": "yes"},
		},
		{
			name: "fixed list",
			headers: "Keep-Alive: timeout=5\r\nProxy-Authorization: Basic c2VjcmV0\r\n" +
				"Proxy-Connection: keep-alive\r\nUpgrade: websocket\r\nConnection: close\r\nX-Keep: yes\r\n",
			gone: []string{"Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "Upgrade", "Connection"},
			kept: map[string]string{"X-Keep": "yes"},
		},
		{
			// An Upgrade the Connection header names goes on (issue 13),
			// as the one "Connection: upgrade" token.
			name:    "upgrade goes on",
			headers: "Upgrade: websocket\r\nConnection: keep-alive, Upgrade, X-Fake-Hop\r\nX-Fake-Hop: 1\r\n",
			gone:    []string{"X-Fake-Hop", "Keep-Alive"},
			kept:    map[string]string{"Upgrade": "websocket", "Connection": "upgrade"},
		},
		{
			name:    "te trailers kept",
			headers: "Te: trailers\r\n",
			kept:    map[string]string{"Te": "trailers"},
		},
		{
			name:    "te other dropped",
			headers: "Te: gzip\r\n",
			gone:    []string{"Te"},
		},
		{
			name:    "te trailers kept though connection-named",
			headers: "Connection: Te\r\nTe: trailers\r\n",
			gone:    []string{"Connection"},
			kept:    map[string]string{"Te": "trailers"},
		},
		{
			name:    "connection keep-alive",
			headers: "Connection: keep-alive\r\nKeep-Alive: 300\r\n",
			gone:    []string{"Connection", "Keep-Alive"},
		},
	}
	rec := newRecorder()
	b := startBackend(t, rec.handle)
	p, _ := newPool(t, b.addr)
	front := startFront(t, p)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _, _ := rawExchange(t, front, "GET /hop HTTP/1.1\r\nHost: front.test\r\n"+tt.headers+"\r\n")
			if resp == nil || resp.StatusCode != 200 {
				t.Fatalf("answer = %v, want 200", resp)
			}
			got := rec.next(t)
			for _, h := range tt.gone {
				if vs := headerValues(&got.Header, h); len(vs) > 0 {
					t.Errorf("backend got %s: %q", h, vs)
				}
			}
			for h, want := range tt.kept {
				if vs := headerValues(&got.Header, h); len(vs) != 1 || vs[0] != want {
					t.Errorf("backend got %s = %q, want [%q]", h, vs, want)
				}
			}
		})
	}
}

func TestHopByHopResponseHeaders(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	rec.resp = func(ctx *fasthttp.RequestCtx) {
		h := &ctx.Response.Header
		h.Set("Connection", "X-Fake-Hop")
		h.Set("X-Fake-Hop", "1")
		h.Set("Keep-Alive", "timeout=5")
		h.Set("Proxy-Authenticate", "Basic")
		h.Set("Upgrade", "h2c")
		h.Set("X-Keep", "yes")
		ctx.SetBodyString("ok")
	}
	b := startBackend(t, rec.handle)
	p, _ := newPool(t, b.addr)
	front := startFront(t, p)

	resp, body, closed := rawExchange(t, front, "GET / HTTP/1.1\r\nHost: front.test\r\n\r\n")
	if resp == nil || resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("answer = %v %q, want 200 ok", resp, body)
	}
	for _, h := range []string{"X-Fake-Hop", "Keep-Alive", "Proxy-Authenticate", "Upgrade"} {
		if v := resp.Header.Values(h); len(v) > 0 {
			t.Errorf("client got %s: %q", h, v)
		}
	}
	if v := resp.Header.Values("Connection"); len(v) > 0 && !(len(v) == 1 && strings.EqualFold(v[0], "keep-alive")) {
		t.Errorf("client got Connection: %q", v)
	}
	if resp.Header.Get("X-Keep") != "yes" {
		t.Errorf("client lost X-Keep: %q", resp.Header)
	}
	if closed {
		t.Error("the front closed the client connection")
	}
}

func TestForwardedHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		hdr     []string
		wantXFF string
	}{
		{"no x-forwarded-for", nil, "127.0.0.1"},
		{"appended", []string{"X-Forwarded-For", "1.2.3.4"}, "1.2.3.4, 127.0.0.1"},
		{"appended to a list", []string{"X-Forwarded-For", "1.2.3.4, 10.0.0.1"}, "1.2.3.4, 10.0.0.1, 127.0.0.1"},
		{"proto from client replaced", []string{"X-Forwarded-Proto", "https"}, "127.0.0.1"},
	}
	rec := newRecorder()
	b := startBackend(t, rec.handle)
	p, _ := newPool(t, b.addr)
	c := client(t, startFront(t, p))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := do(t, c, "GET", "/admin/workers?x=1", nil, tt.hdr...)
			if resp.StatusCode() != 200 {
				t.Fatalf("status = %d", resp.StatusCode())
			}
			got := rec.next(t)
			// /admin/ on the client listener is proxied like any path.
			if uri := string(got.RequestURI()); uri != "/admin/workers?x=1" {
				t.Errorf("backend got URI %q", uri)
			}
			for h, want := range map[string]string{
				"X-Forwarded-For":   tt.wantXFF,
				"X-Forwarded-Proto": "http",
				"X-Forwarded-Host":  "front.test",
				"Host":              "front.test",
			} {
				if vs := headerValues(&got.Header, h); len(vs) != 1 || vs[0] != want {
					if h == "Host" {
						vs = []string{string(got.Header.Host())}
						if vs[0] == want {
							continue
						}
					}
					t.Errorf("backend got %s = %q, want [%q]", h, vs, want)
				}
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	b := startBackend(t, rec.handle)
	p, _ := newPool(t, b.addr)
	c := client(t, startFront(t, p))

	do(t, c, "GET", "/", nil, "X-Request-Id", "client-id-1")
	if got := headerValues(&rec.next(t).Header, "X-Request-Id"); len(got) != 1 || got[0] != "client-id-1" {
		t.Errorf("sent id: backend got %q, want [client-id-1]", got)
	}
	seen := map[string]bool{}
	for range 20 {
		do(t, c, "GET", "/", nil)
		got := headerValues(&rec.next(t).Header, "X-Request-Id")
		if len(got) != 1 || got[0] == "" {
			t.Fatalf("no id sent: backend got %q, want one generated id", got)
		}
		if seen[got[0]] {
			t.Fatalf("generated id %q twice", got[0])
		}
		seen[got[0]] = true
	}
}

// The client's "Connection: close" ends the client's connection, not the
// pooled one to the upstream.
func TestClientCloseKeepsUpstreamConnection(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	b := startBackend(t, rec.handle)
	p, _ := newPool(t, b.addr)
	// One event loop: each loop pools its own upstream connections.
	o := testEngineOptions
	o.Loops = 1
	front := startFrontWith(t, p, o)
	for i := range 20 {
		resp, body, closed := rawExchange(t, front, "GET / HTTP/1.1\r\nHost: front.test\r\nConnection: close\r\n\r\n")
		if resp == nil || resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("request %d: answer %v %q", i, resp, body)
		}
		if !closed {
			t.Fatalf("request %d: the front kept the client connection open after Connection: close", i)
		}
		if got := rec.next(t); got.Header.ConnectionClose() {
			t.Fatalf("request %d: backend got Connection: close", i)
		}
	}
	if n := b.conns.Load(); n != 1 {
		t.Errorf("backend saw %d connections for 20 requests, want 1 reused", n)
	}
}

func TestRetryAfterDialError(t *testing.T) {
	t.Parallel()
	for _, method := range []string{"GET", "POST", "PATCH", "DELETE"} {
		t.Run(method, func(t *testing.T) {
			rec := newRecorder()
			b := startBackend(t, rec.handle)
			p, ups := newPool(t, deadAddr(t), b.addr)
			c := client(t, startFront(t, p))
			resp := do(t, c, method, "/x", []byte("payload"))
			if resp.StatusCode() != 200 {
				t.Fatalf("status = %d (%q), want 200 from the second upstream", resp.StatusCode(), resp.Body())
			}
			got := rec.next(t)
			if string(got.Header.Method()) != method || string(got.Body()) != "payload" {
				t.Errorf("backend got %s %q", got.Header.Method(), got.Body())
			}
			if ups[0].Failures() != 1 || ups[0].Inflight() != 0 || ups[1].Inflight() != 0 {
				t.Errorf("dead upstream: %d failures; inflight %d, %d; want 1; 0, 0",
					ups[0].Failures(), ups[0].Inflight(), ups[1].Inflight())
			}
		})
	}
}

// An upstream that takes the request and closes the connection without an
// answer may have acted on it: only a safe method goes to another one.
func TestRetryAfterUpstreamClosed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		method  string
		retried bool
	}{
		{"GET", true},
		{"HEAD", true},
		{"POST", false},
		{"PATCH", false},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			a := startCloser(t)
			rec := newRecorder()
			b := startBackend(t, rec.handle)
			p, ups := newPool(t, a.addr, b.addr)
			c := client(t, startFront(t, p))
			var body []byte
			if tt.method != "GET" && tt.method != "HEAD" {
				body = []byte(`{"n":1}`)
			}
			resp := do(t, c, tt.method, "/once", body)
			if a.reqs.Load() != 1 {
				t.Fatalf("the closing upstream got %d requests, want 1", a.reqs.Load())
			}
			if tt.retried {
				if resp.StatusCode() != 200 || b.reqs.Load() != 1 {
					t.Errorf("status %d, second upstream got %d; want 200, 1", resp.StatusCode(), b.reqs.Load())
				}
			} else {
				jsonError(t, resp, fasthttp.StatusBadGateway)
				if n := b.reqs.Load(); n != 0 {
					t.Errorf("the %s went to a second upstream (%d requests)", tt.method, n)
				}
			}
			if ups[0].Failures() != 1 || ups[0].Inflight() != 0 || ups[1].Inflight() != 0 {
				t.Errorf("closing upstream: %d failures; inflight %d, %d; want 1; 0, 0",
					ups[0].Failures(), ups[0].Inflight(), ups[1].Inflight())
			}
		})
	}
}

func TestNoHealthyUpstream(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		states []pool.State
	}{
		{"empty pool", nil},
		{"starting", []pool.State{pool.Starting}},
		{"unhealthy and draining", []pool.State{pool.Unhealthy, pool.Draining, pool.Stopped}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startBackend(t, newRecorder().handle)
			addrs := make([]string, len(tt.states))
			for i := range addrs {
				addrs[i] = b.addr
			}
			p, ups := newPool(t, addrs...)
			for i, s := range tt.states {
				ups[i].SetState(s)
			}
			c := client(t, startFront(t, p))
			resp := do(t, c, "GET", "/", nil)
			jsonError(t, resp, fasthttp.StatusServiceUnavailable)
			if ra := string(resp.Header.Peek("Retry-After")); ra == "" {
				t.Error("no Retry-After")
			}
			if b.reqs.Load() != 0 {
				t.Errorf("backend got %d requests", b.reqs.Load())
			}
		})
	}
}

// A slow upstream answers 504 and, since it may still be working on the
// request, the request is not sent to another one.
func TestUpstreamTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow := startBackend(t, func(ctx *fasthttp.RequestCtx) {
		select {
		case <-release:
		case <-time.After(2 * time.Second):
		}
		ctx.SetBodyString("late")
	})
	t.Cleanup(func() { close(release) })
	fast := startBackend(t, newRecorder().handle)
	p, _ := newPool(t, slow.addr, fast.addr)
	o := testEngineOptions
	o.UpstreamTimeout = 100 * time.Millisecond
	c := client(t, startFrontWith(t, p, o))
	start := time.Now()
	resp := do(t, c, "GET", "/slow", nil)
	jsonError(t, resp, fasthttp.StatusGatewayTimeout)
	if d := time.Since(start); d > time.Second {
		t.Errorf("504 after %v, want about the 100ms timeout", d)
	}
	if fast.reqs.Load() != 0 {
		t.Errorf("the timed-out GET went to another upstream")
	}
}

func TestAllUpstreamsDead(t *testing.T) {
	t.Parallel()
	p, ups := newPool(t, deadAddr(t), deadAddr(t))
	c := client(t, startFront(t, p))
	for _, m := range []string{"GET", "POST"} {
		jsonError(t, do(t, c, m, "/", nil), fasthttp.StatusBadGateway)
	}
	for _, u := range ups {
		if u.Failures() != 2 || u.Inflight() != 0 {
			t.Errorf("upstream %d: %d failures, inflight %d; want 2, 0", u.ID, u.Failures(), u.Inflight())
		}
	}
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestLargeBodies(t *testing.T) {
	t.Parallel()
	big := make([]byte, 5<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>11)
	}
	rec := newRecorder()
	rec.resp = func(ctx *fasthttp.RequestCtx) {
		if ctx.IsPost() {
			ctx.Response.Header.Set("X-Sum", sum(ctx.Request.Body()))
			return
		}
		ctx.SetBody(big)
	}
	b := startBackend(t, rec.handle)
	p, _ := newPool(t, b.addr)
	c := client(t, startFront(t, p))

	resp := do(t, c, "POST", "/upload", big)
	if resp.StatusCode() != 200 || string(resp.Header.Peek("X-Sum")) != sum(big) {
		t.Errorf("upload: status %d, backend sum %q, want %q", resp.StatusCode(), resp.Header.Peek("X-Sum"), sum(big))
	}
	rec.next(t)

	resp = do(t, c, "GET", "/download", nil)
	if resp.StatusCode() != 200 || len(resp.Body()) != len(big) || !bytes.Equal(resp.Body(), big) {
		t.Errorf("download: status %d, %d bytes, sum %s; want 200, %d bytes, %s",
			resp.StatusCode(), len(resp.Body()), sum(resp.Body()), len(big), sum(big))
	}
	rec.next(t)
}

func TestFramingRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		raw  string
	}{
		{"content-length and chunked", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"chunked and content-length", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"},
		{"content-length and chunked, lower case", "POST / HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"two content-lengths", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"},
		{"two equal content-lengths", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd"},
		{"content-length list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 4\r\n\r\nabcd"},
		{"unknown transfer coding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"},
		{"two transfer-encodings", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"transfer-encoding in HTTP/1.0", "POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"},
		{"control character in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: b\x01c\r\n\r\n"},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: b\x00c\r\n\r\n"},
		{"space before colon", "GET / HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n"},
		{"control character in name", "GET / HTTP/1.1\r\nHost: x\r\nX\x01A: b\r\n\r\n"},
		{"two hosts", "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startBackend(t, newRecorder().handle)
			p, _ := newPool(t, b.addr)
			front := startFront(t, p)
			resp, body, closed := rawExchange(t, front, tt.raw)
			// An unknown transfer coding gets 501 (RFC 9112 6.1).
			want := http.StatusBadRequest
			if tt.name == "unknown transfer coding" {
				want = http.StatusNotImplemented
			}
			if resp != nil && resp.StatusCode != want {
				t.Errorf("status %d %q, want %d", resp.StatusCode, body, want)
			}
			if !closed {
				t.Error("connection left open after a framing error")
			}
			if n := b.reqs.Load(); n != 0 {
				t.Errorf("backend got %d requests, want 0", n)
			}
		})
	}
}

// RFC 9112 6.3: with both Content-Length and Transfer-Encoding, chunked
// wins, and the connection must be closed after the answer, so nothing
// after the chunked body (a smuggled request) is read as a request.
func TestFramingContentLengthAndChunkedNotSmuggled(t *testing.T) {
	t.Parallel()
	var paths atomic.Value
	paths.Store("")
	b := startBackend(t, func(ctx *fasthttp.RequestCtx) {
		paths.Store(paths.Load().(string) + string(ctx.Path()) + " ")
		if ctx.Request.Header.ContentLength() != len(ctx.Request.Body()) ||
			len(ctx.Request.Header.Peek("Transfer-Encoding")) > 0 && ctx.Request.Header.ContentLength() >= 0 {
			ctx.SetStatusCode(599)
		}
	})
	p, _ := newPool(t, b.addr)
	front := startFront(t, p)
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	raw := "POST /outer HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(5+len(smuggled)) +
		"\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled
	resp, _, closed := rawExchange(t, front, raw)
	if resp != nil && resp.StatusCode == 599 {
		t.Error("backend got inconsistent framing")
	}
	if !closed {
		t.Error("connection left open after a request with Content-Length and Transfer-Encoding")
	}
	// rawExchange waited for the close: a smuggled request had time to arrive.
	if got := paths.Load().(string); strings.Contains(got, "smuggled") {
		t.Errorf("backend got a smuggled request: %q", got)
	}
}
