//go:build linux

package proxy_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/procbal/procbal/balancer/proxy"
)

// Issue 8, item 4: request and response buffering, so that slow clients
// never hold an upstream (a sync backend has only a few workers).

// sumBackend answers POST with the SHA-256 of the body it got and GET
// /big?n=N with N bytes.
func sumBackend(t *testing.T) *backend {
	return startBackend(t, func(ctx *fasthttp.RequestCtx) {
		if ctx.IsPost() {
			ctx.Response.Header.Set("X-Sum", sum(ctx.Request.Body()))
			ctx.Response.Header.Set("X-Len", strconv.Itoa(len(ctx.Request.Body())))
			return
		}
		n, _ := strconv.Atoi(string(ctx.QueryArgs().Peek("n")))
		ctx.SetBody(bytes.Repeat([]byte("r"), n))
	})
}

// bufferOptions keep buffered bodies in a directory of the test's own, so
// it can check that nothing is left there.
func bufferOptions(t *testing.T) proxy.EngineOptions {
	o := testEngineOptions
	o.TempDir = t.TempDir()
	o.BufferMemory = 32 << 10
	return o
}

func noFilesLeft(t *testing.T, dir string) {
	t.Helper()
	if ents, _ := os.ReadDir(dir); len(ents) > 0 {
		t.Errorf("%d files left in the buffer directory", len(ents))
	}
}

// A request body is read whole before an upstream sees anything of it,
// in memory and then in an unlinked temporary file.
func TestRequestBodyBufferedBeforeUpstream(t *testing.T) {
	t.Parallel()
	b := sumBackend(t)
	p, ups := newPool(t, b.addr)
	o := bufferOptions(t)
	front := startFrontWith(t, p, o)
	for i, size := range []int{10, 100 << 10, 3 << 20} {
		body := bytes.Repeat([]byte("abcdefg"), size/7+1)[:size]
		c, br := dialFront(t, front)
		fmt.Fprintf(c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
		_, _ = c.Write(body[:size/2])
		time.Sleep(150 * time.Millisecond)
		if ups[0].Inflight() != 0 || b.reqs.Load() != int64(i) {
			t.Fatalf("size %d: the upstream was picked before the body was whole (inflight %d)", size, ups[0].Inflight())
		}
		_, _ = c.Write(body[size/2:])
		resp, _ := readResp(t, br, "POST")
		if resp.StatusCode != 200 || resp.Header.Get("X-Sum") != sum(body) {
			t.Fatalf("size %d: %d, sum %s, want %s", size, resp.StatusCode, resp.Header.Get("X-Sum"), sum(body))
		}
	}
	noFilesLeft(t, o.TempDir)
}

// A chunked body is buffered in its canonical form and arrives whole.
func TestChunkedBodyBuffered(t *testing.T) {
	t.Parallel()
	b := sumBackend(t)
	p, _ := newPool(t, b.addr)
	o := bufferOptions(t)
	c, br := dialFront(t, startFrontWith(t, p, o))
	var want bytes.Buffer
	_, _ = io.WriteString(c, "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
	for i := range 200 {
		part := strings.Repeat(string(rune('a'+i%26)), 1000+i)
		want.WriteString(part)
		fmt.Fprintf(c, "%x;i=%d\r\n%s\r\n", len(part), i, part)
	}
	_, _ = io.WriteString(c, "0\r\nX-Checksum: 1\r\n\r\n")
	resp, _ := readResp(t, br, "POST")
	if resp.StatusCode != 200 || resp.Header.Get("X-Sum") != sum(want.Bytes()) {
		t.Fatalf("%d, %s bytes; want %d", resp.StatusCode, resp.Header.Get("X-Len"), want.Len())
	}
	noFilesLeft(t, o.TempDir)
}

// A client that sends 100-continue gets it from the balancer, which then
// sends the whole request without the Expect header.
func TestExpectContinueAnsweredByBalancer(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	b := startBackend(t, func(ctx *fasthttp.RequestCtx) {
		got <- string(ctx.Request.Header.Peek("Expect"))
		ctx.SetBody(ctx.PostBody())
	})
	p, _ := newPool(t, b.addr)
	c, br := dialFront(t, startFront(t, p))
	_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, " 100 ") {
		t.Fatalf("first line %q (%v), want 100 Continue", line, err)
	}
	_, _ = br.ReadString('\n')
	_, _ = io.WriteString(c, "hello")
	if resp, body := readResp(t, br, "POST"); resp.StatusCode != 200 || body != "hello" {
		t.Fatalf("final answer %d %q", resp.StatusCode, body)
	}
	if e := <-got; e != "" {
		t.Fatalf("upstream got Expect %q", e)
	}
}

// A stalled body gets 408 after ReadHeaderTimeout, and a body that keeps
// trickling gets 408 after ClientBodyTimeout; neither reaches the upstream.
func TestBodyTimeouts(t *testing.T) {
	t.Parallel()
	b := sumBackend(t)
	p, ups := newPool(t, b.addr)
	o := bufferOptions(t)
	o.ReadHeaderTimeout = 300 * time.Millisecond
	o.ClientBodyTimeout = 1 * time.Second
	front := startFrontWith(t, p, o)

	c, br := dialFront(t, front)
	start := time.Now()
	_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
	if resp, _ := readResp(t, br, "POST"); resp.StatusCode != 408 {
		t.Fatalf("stalled body: %d, want 408", resp.StatusCode)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("stalled body answered after %v, want about ReadHeaderTimeout", d)
	}

	// The trickle gets a front of its own whose stall bound is far above
	// the trickle's 100 ms: on a loaded machine a late byte must not
	// end it as a stall before ClientBodyTimeout does.
	o.ReadHeaderTimeout, o.ClientBodyTimeout = 800*time.Millisecond, 1500*time.Millisecond
	c, br = dialFront(t, startFrontWith(t, p, o))
	start = time.Now()
	_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
	go func() {
		for range 40 {
			if _, err := io.WriteString(c, "x"); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	if resp, _ := readResp(t, br, "POST"); resp.StatusCode != 408 {
		t.Fatalf("trickling body: %d, want 408", resp.StatusCode)
	}
	if d := time.Since(start); d < 1400*time.Millisecond || d > 3500*time.Millisecond {
		t.Errorf("trickling body answered after %v, want about ClientBodyTimeout", d)
	}
	if b.reqs.Load() != 0 || ups[0].Failures() != 0 {
		t.Errorf("the upstream got %d requests, %d failures", b.reqs.Load(), ups[0].Failures())
	}
}

// A slow reader's answer is held by the balancer: the upstream is free as
// soon as it has sent it, and the client still gets every byte.
func TestSlowReaderReleasesUpstream(t *testing.T) {
	t.Parallel()
	for _, held := range []bool{true, false} {
		t.Run(fmt.Sprintf("held=%v", held), func(t *testing.T) {
			b := sumBackend(t)
			p, ups := newPool(t, b.addr)
			o := bufferOptions(t)
			if !held {
				o.ResponseBuffer = -1
			}
			c, br := dialFront(t, startFrontWith(t, p, o))
			const n = 8 << 20
			fmt.Fprintf(c, "GET /big?n=%d HTTP/1.1\r\nHost: x\r\n\r\n", n)
			time.Sleep(500 * time.Millisecond)
			if free := ups[0].Inflight() == 0; free != held {
				t.Fatalf("upstream released before the client read: %v, want %v", free, held)
			}
			resp, body := readResp(t, br, "GET")
			if resp.StatusCode != 200 || len(body) != n {
				t.Fatalf("got %d, %d bytes", resp.StatusCode, len(body))
			}
			waitInflight(t, ups[0], 0)
			// The connection goes on with the next request.
			fmt.Fprintf(c, "GET /big?n=3 HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp, body := readResp(t, br, "GET"); resp.StatusCode != 200 || body != "rrr" {
				t.Fatalf("next answer %d %q", resp.StatusCode, body)
			}
			noFilesLeft(t, o.TempDir)
		})
	}
}

// With StreamRequests, bodies go upstream as they arrive, as before.
func TestStreamedRequestBody(t *testing.T) {
	t.Parallel()
	b := sumBackend(t)
	p, ups := newPool(t, b.addr)
	o := bufferOptions(t)
	o.StreamRequests = true
	c, br := dialFront(t, startFrontWith(t, p, o))
	body := bytes.Repeat([]byte("s"), 1<<20)
	fmt.Fprintf(c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(body))
	_, _ = c.Write(body[:1000])
	waitInflight(t, ups[0], 1) // picked while the body is still coming
	_, _ = c.Write(body[1000:])
	if resp, _ := readResp(t, br, "POST"); resp.StatusCode != 200 || resp.Header.Get("X-Sum") != sum(body) {
		t.Fatalf("%d, %s bytes", resp.StatusCode, resp.Header.Get("X-Len"))
	}
}
