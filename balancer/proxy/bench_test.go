//go:build linux

package proxy_test

import (
	"testing"

	"github.com/valyala/fasthttp"
)

func okHandler(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") }

// BenchmarkEngineGET measures one proxied GET end to end: a fasthttp client
// over real TCP to the event-loop engine (it takes no in-memory listener),
// and the engine over a real unix socket to a fasthttp upstream.
func BenchmarkEngineGET(b *testing.B) {
	be := startBackend(b, okHandler)
	p, _ := newPool(b, be.addr)
	o := testEngineOptions
	o.Loops = 1
	benchGET(b, &fasthttp.HostClient{Addr: startFrontWith(b, p, o)})
}

// benchGET times GET /bench through c, which reaches the front under test.
func benchGET(b *testing.B, c *fasthttp.HostClient) {
	b.Cleanup(c.CloseIdleConnections)
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://front/bench")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			b.Fatalf("status %d, %v", resp.StatusCode(), err)
		}
	}
}
