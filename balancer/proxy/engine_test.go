//go:build linux

package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/valyala/fasthttp"

	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/balancer/proxy"
)

// The event-loop engine's relay cases: what its hand-written HTTP/1.1
// relay must get right beyond the proxying rules proxy_test.go checks.

// dialFront opens a raw client connection with a read deadline.
func dialFront(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

func readResp(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp, string(b)
}

func TestEnginePipelinedRequests(t *testing.T) {
	t.Parallel()
	b := startBackend(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBody(ctx.RequestURI()) })
	p, _ := newPool(t, b.addr)
	c, br := dialFront(t, startFront(t, p))
	var raw strings.Builder
	for i := range 20 {
		fmt.Fprintf(&raw, "GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
	}
	if _, err := io.WriteString(c, raw.String()); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		resp, body := readResp(t, br, "GET")
		if want := fmt.Sprintf("/p%d", i); resp.StatusCode != 200 || body != want {
			t.Fatalf("answer %d: %d %q, want 200 %q (in order)", i, resp.StatusCode, body, want)
		}
	}
}

func TestEngineChunkedBothWays(t *testing.T) {
	t.Parallel()
	b := startBackend(t, func(ctx *fasthttp.RequestCtx) {
		body := append([]byte(nil), ctx.PostBody()...)
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			for i := 0; i < len(body); i += 1000 {
				w.Write(body[i:min(i+1000, len(body))])
				w.Flush()
			}
		})
	})
	p, _ := newPool(t, b.addr)
	c, br := dialFront(t, startFront(t, p))
	payload := bytes.Repeat([]byte("0123456789abcdef"), 50_000) // 800 KB
	var raw bytes.Buffer
	raw.WriteString("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
	for i := 0; i < len(payload); i += 70_000 {
		part := payload[i:min(i+70_000, len(payload))]
		fmt.Fprintf(&raw, "%x;ext=1\r\n%s\r\n", len(part), part)
	}
	raw.WriteString("0\r\nX-Trailer: t\r\n\r\n")
	go func() { _, _ = c.Write(raw.Bytes()) }()
	resp, body := readResp(t, br, "POST")
	if resp.StatusCode != 200 || body != string(payload) {
		t.Fatalf("echo: %d, %d bytes, want 200 and the %d bytes sent", resp.StatusCode, len(body), len(payload))
	}
	if len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("streamed answer came back with Transfer-Encoding %v, want chunked", resp.TransferEncoding)
	}
	// The connection is still usable.
	_, _ = io.WriteString(c, "GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := readResp(t, br, "GET"); resp.StatusCode != 200 {
		t.Fatalf("next request on the connection: %d", resp.StatusCode)
	}
}

func TestEngineHeadAndNoBodyAnswers(t *testing.T) {
	t.Parallel()
	b := startBackend(t, func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/204":
			ctx.SetStatusCode(204)
		case "/304":
			ctx.SetStatusCode(304)
		default:
			ctx.SetBodyString("twelve bytes")
		}
	})
	p, _ := newPool(t, b.addr)
	c, br := dialFront(t, startFront(t, p))
	for _, tc := range []struct{ method, path, body string }{
		{"HEAD", "/x", ""}, {"GET", "/204", ""}, {"GET", "/304", ""}, {"GET", "/x", "twelve bytes"},
	} {
		fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: x\r\n\r\n", tc.method, tc.path)
		resp, body := readResp(t, br, tc.method)
		if body != tc.body {
			t.Fatalf("%s %s: body %q, want %q", tc.method, tc.path, body, tc.body)
		}
		if tc.method == "HEAD" && resp.ContentLength != 12 {
			t.Errorf("HEAD: Content-Length %d, want the GET's 12", resp.ContentLength)
		}
	}
}

func TestEngineHTTP10ClosesAfterAnswer(t *testing.T) {
	t.Parallel()
	b := startBackend(t, okHandler)
	p, _ := newPool(t, b.addr)
	resp, body, closed := rawExchange(t, startFront(t, p), "GET / HTTP/1.0\r\n\r\n")
	if resp == nil || resp.StatusCode != 200 || string(body) != "ok" || !closed {
		t.Fatalf("HTTP/1.0: %v %q closed=%v, want 200 ok and the connection closed", resp, body, closed)
	}
}

func TestEngineExpectContinue(t *testing.T) {
	t.Parallel()
	b := startBackend(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBody(ctx.PostBody()) })
	p, _ := newPool(t, b.addr)
	c, br := dialFront(t, startFront(t, p))
	_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, " 100 ") {
		t.Fatalf("first line %q (%v), want the upstream's 100 Continue", line, err)
	}
	if blank, _ := br.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("after 100 Continue: %q", blank)
	}
	_, _ = io.WriteString(c, "hello")
	if resp, body := readResp(t, br, "POST"); resp.StatusCode != 200 || body != "hello" {
		t.Fatalf("final answer %d %q", resp.StatusCode, body)
	}
}

// A client that reads slowly gets the whole large answer; the engine
// holds at most a buffer of it at a time.
func TestEngineSlowReaderGetsEverything(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("x"), 8<<20)
	b := startBackend(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBody(big) })
	p, ups := newPool(t, b.addr)
	c, br := dialFront(t, startFront(t, p))
	_, _ = io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(300 * time.Millisecond) // the socket buffers fill up
	resp, body := readResp(t, br, "GET")
	if resp.StatusCode != 200 || len(body) != len(big) {
		t.Fatalf("got %d, %d bytes, want 200 and %d", resp.StatusCode, len(body), len(big))
	}
	waitInflight(t, ups[0], 0)
}

// A client that goes away mid-answer releases the upstream's in-flight
// count, and the engine keeps serving.
func TestEngineClientGoneMidAnswer(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("y"), 8<<20)
	b := startBackend(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBody(big) })
	p, ups := newPool(t, b.addr)
	front := startFront(t, p)
	c, br := dialFront(t, front)
	_, _ = io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitInflight(t, ups[0], 0)
	resp := do(t, client(t, front), "GET", "/after", nil)
	if resp.StatusCode() != 200 {
		t.Fatalf("after a client left: %d", resp.StatusCode())
	}
}

func waitInflight(t *testing.T, u *pool.Upstream, want int64) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for u.Inflight() != want {
		if time.Now().After(deadline) {
			t.Fatalf("in flight = %d, want %d", u.Inflight(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Timeouts: a client that sends half a head gets 408 and a close; an
// idle keep-alive connection is closed.
func TestEngineClientTimeouts(t *testing.T) {
	t.Parallel()
	b := startBackend(t, okHandler)
	p, _ := newPool(t, b.addr)
	o := testEngineOptions
	o.ReadHeaderTimeout, o.IdleTimeout = 200*time.Millisecond, 400*time.Millisecond
	front := startFrontWith(t, p, o)

	c, br := dialFront(t, front)
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
	resp, _ := readResp(t, br, "GET")
	if resp.StatusCode != 408 {
		t.Fatalf("half a head: %d, want 408", resp.StatusCode)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after 408: %v, want the connection closed", err)
	}

	c2, br2 := dialFront(t, front)
	_, _ = io.WriteString(c2, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := readResp(t, br2, "GET"); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	start := time.Now()
	if _, err := br2.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v, want closed", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("idle connection closed after %v, before IdleTimeout", d)
	}
}

// Shutdown lets a request in flight finish, answers it with Connection:
// close, and refuses new connections.
func TestEngineShutdownFinishesInFlight(t *testing.T) {
	t.Parallel()
	b := startBackend(t, func(ctx *fasthttp.RequestCtx) {
		time.Sleep(300 * time.Millisecond)
		ctx.SetBodyString("done")
	})
	p, _ := newPool(t, b.addr)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	e := proxy.NewEngine(p, nil, hclog.NewNullLogger(), testEngineOptions)
	served := make(chan error, 1)
	go func() { served <- e.Serve(ln) }()
	idle, idleBr := dialFront(t, addr)
	_, _ = io.WriteString(idle, "GET /warm HTTP/1.1\r\nHost: x\r\n\r\n")
	readResp(t, idleBr, "GET")

	c, br := dialFront(t, addr)
	_, _ = io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(100 * time.Millisecond)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.ShutdownWithContext(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}()
	resp, body := readResp(t, br, "GET")
	if resp.StatusCode != 200 || body != "done" || !resp.Close {
		t.Fatalf("in-flight request: %d %q close=%v, want 200 done with Connection: close", resp.StatusCode, body, resp.Close)
	}
	if _, err := idleBr.ReadByte(); err != io.EOF {
		t.Errorf("idle connection during shutdown: %v, want closed", err)
	}
	wg.Wait()
	if err := <-served; err != nil {
		t.Errorf("Serve returned %v", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("still accepting after shutdown")
	}
}

// Many clients at once over several loops: every answer is the right one.
func TestEngineConcurrentClients(t *testing.T) {
	t.Parallel()
	b1 := startBackend(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBody(ctx.RequestURI()) })
	b2 := startBackend(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBody(ctx.RequestURI()) })
	p, ups := newPool(t, b1.addr, b2.addr)
	o := testEngineOptions
	o.Loops = 3
	front := startFrontWith(t, p, o)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &fasthttp.HostClient{Addr: front, MaxConns: 2}
			defer c.CloseIdleConnections()
			for i := range 200 {
				uri := "/g" + strconv.Itoa(g) + "/" + strconv.Itoa(i)
				code, body, err := c.Get(nil, "http://"+front+uri)
				if err != nil || code != 200 || string(body) != uri {
					errs <- fmt.Errorf("%s: %d %q %v", uri, code, body, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := b1.reqs.Load() + b2.reqs.Load(); n != 16*200 {
		t.Errorf("backends got %d requests, want %d", n, 16*200)
	}
	for _, u := range ups {
		waitInflight(t, u, 0)
	}
}

// Heads larger than a buffer (16 KiB) pass both ways, up to the limit.
func TestEngineLargeHeads(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("v", 40<<10)
	b := startBackend(t, func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("X-Echo", string(ctx.Request.Header.Peek("X-Big")))
		ctx.SetBody(ctx.PostBody())
	})
	p, _ := newPool(t, b.addr)
	c, br := dialFront(t, startFront(t, p))
	body := strings.Repeat("b", 30<<10)
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\nContent-Length: %d\r\n\r\n%s", big, len(body), body)
	resp, got := readResp(t, br, "POST")
	if resp.StatusCode != 200 || resp.Header.Get("X-Echo") != big || got != body {
		t.Fatalf("status %d, echoed header %d bytes, body %d bytes; want 200, %d, %d",
			resp.StatusCode, len(resp.Header.Get("X-Echo")), len(got), len(big), len(body))
	}
	fmt.Fprintf(c, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := readResp(t, br, "GET"); resp.StatusCode != 200 {
		t.Fatalf("next request: %d", resp.StatusCode)
	}
}

// An upstream the pool stops listing (a replaced worker, a remote address
// gone from DNS) loses its pooled connections at the next sweep.
func TestEngineForgetsRemovedUpstream(t *testing.T) {
	t.Parallel()
	old := startBackend(t, okHandler)
	next := startBackend(t, okHandler)
	p, _ := newPool(t, old.addr)
	c := client(t, startFront(t, p))
	if resp := do(t, c, "GET", "/", nil); resp.StatusCode() != 200 {
		t.Fatalf("status %d", resp.StatusCode())
	}
	if old.conns.Load() != 1 || old.closed.Load() != 0 {
		t.Fatalf("old upstream: %d connections, %d closed; want one pooled", old.conns.Load(), old.closed.Load())
	}
	u := pool.NewUpstream(2, pool.Local, next.addr)
	u.SetState(pool.Healthy)
	p.Publish([]*pool.Upstream{u})
	deadline := time.Now().Add(3 * time.Second)
	for old.closed.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the pooled connection to the removed upstream is still open")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resp := do(t, c, "GET", "/", nil); resp.StatusCode() != 200 || next.reqs.Load() != 1 {
		t.Fatalf("after the change: %d, new upstream got %d requests", resp.StatusCode(), next.reqs.Load())
	}
}
