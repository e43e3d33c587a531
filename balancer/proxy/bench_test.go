package proxy_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/procbal/procbal/balancer/proxy"
)

func okHandler(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") }

// BenchmarkProxyGET measures one proxied GET end to end: a fasthttp client
// over an in-memory connection to the front server running the proxy, and
// the proxy over a real unix socket to a fasthttp upstream.
func BenchmarkProxyGET(b *testing.B) {
	be := startBackend(b, okHandler)
	p, _ := newPool(b, testClientOptions, be.addr)
	ln := fasthttputil.NewInmemoryListener()
	srv := newFrontServer(proxy.New(p, nil, hclog.NewNullLogger()).ServeHTTP)
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = srv.ShutdownWithContext(ctx)
	})
	benchGET(b, &fasthttp.HostClient{Addr: "front", Dial: func(string) (net.Conn, error) { return ln.Dial() }})
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

// BenchmarkEngineGET is BenchmarkProxyGET through the event-loop engine,
// over real TCP from the client (the engine takes no in-memory listener).
func BenchmarkEngineGET(b *testing.B) {
	be := startBackend(b, okHandler)
	p, _ := newPool(b, testClientOptions, be.addr)
	o := testEngineOptions
	o.Loops = 1
	benchGET(b, &fasthttp.HostClient{Addr: startFrontWith(b, p, o)})
}
