//go:build !race

// Allocation tests run without the race detector, which allocates on its
// own (make test runs them in a separate pass).

package proxy_test

import (
	"net"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/valyala/fasthttp"

	"github.com/procbal/procbal/balancer/proxy"
)

// Regression: the Connection tokens used to be copied into a stack array
// handed to a func value, which moved it to the heap: one allocation per
// request carrying "Connection: keep-alive", as browsers send. hopNames now
// keeps them on the caller's stack.
func TestProxyGETAllocsConnectionHeader(t *testing.T) {
	testGETAllocs(t, []getCase{
		{"connection keep-alive", []string{"Connection", "keep-alive"}},
		{"connection-named", []string{"Connection", "X-Fake-Hop", "X-Fake-Hop", "1"}},
	})
}

// getCase is a GET the allocation tests send, with the headers it carries.
type getCase struct {
	name string
	hdr  []string
}

// The proxy's own work for a GET, once warm, allocates nothing: the
// handler is called directly with a prepared RequestCtx and forwards over a
// real unix socket to a fasthttp upstream.
func TestProxyGETAllocs(t *testing.T) {
	testGETAllocs(t, []getCase{
		{"plain", nil},
		{"forwarded", []string{"X-Forwarded-For", "1.2.3.4", "X-Request-Id", "abc"}},
		{"hop-by-hop without Connection", []string{"Keep-Alive", "300", "Te", "trailers", "Proxy-Authorization", "x"}},
	})
}

func testGETAllocs(t *testing.T, cases []getCase) {
	be := startBackend(t, okHandler)
	p, _ := newPool(t, testClientOptions, be.addr)
	h := proxy.New(p, nil, hclog.NewNullLogger())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var tmpl fasthttp.Request
			tmpl.SetRequestURI("/bench?x=1")
			tmpl.Header.SetHost("front.test")
			for i := 0; i+1 < len(tc.hdr); i += 2 {
				tmpl.Header.Set(tc.hdr[i], tc.hdr[i+1])
			}
			var ctx fasthttp.RequestCtx
			ctx.Init(&tmpl, &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 4567}, nil)
			before := be.reqs.Load()
			run := func() {
				tmpl.CopyTo(&ctx.Request)
				ctx.Response.Reset()
				h.ServeHTTP(&ctx)
				if ctx.Response.StatusCode() != 200 {
					t.Fatalf("status %d %q", ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
			for range 100 {
				run()
			}
			if n := testing.AllocsPerRun(200, run); n != 0 {
				t.Errorf("%v allocations per proxied GET, want 0", n)
			}
			if got := be.reqs.Load() - before; got != 100+201 {
				t.Errorf("backend got %d requests, want %d", got, 100+201)
			}
		})
	}
}

// The engine relays a GET with no allocation at all once warm: the whole
// round trip (a raw client over TCP, the event loop, a fasthttp upstream on
// a unix socket) is measured, so nothing the engine does is left out.
func TestEngineGETAllocs(t *testing.T) {
	be := startBackend(t, okHandler)
	p, _ := newPool(t, testClientOptions, be.addr)
	o := testEngineOptions
	o.Loops = 1
	front := startFrontWith(t, p, o)
	for _, tc := range []struct{ name, req string }{
		{"plain", "GET /bench?x=1 HTTP/1.1\r\nHost: front.test\r\n\r\n"},
		{"forwarded", "GET /bench HTTP/1.1\r\nHost: front.test\r\nX-Forwarded-For: 1.2.3.4\r\nX-Request-Id: abc\r\n\r\n"},
		{"hop-by-hop", "GET /bench HTTP/1.1\r\nHost: front.test\r\nConnection: keep-alive, X-Fake-Hop\r\nX-Fake-Hop: 1\r\nKeep-Alive: 300\r\nTe: trailers\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", front)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			req := []byte(tc.req)
			buf := make([]byte, 4096)
			run := func() {
				if _, err := conn.Write(req); err != nil {
					t.Fatal(err)
				}
				n := 0
				for !complete(buf[:n]) {
					m, err := conn.Read(buf[n:])
					if err != nil {
						t.Fatal(err)
					}
					n += m
				}
			}
			for range 100 {
				run()
			}
			if n := testing.AllocsPerRun(500, run); n != 0 {
				t.Errorf("%v allocations per proxied GET, want 0", n)
			}
		})
	}
}

// complete reports whether b holds a whole "ok" answer.
func complete(b []byte) bool {
	return len(b) > 4 && string(b[:12]) == "HTTP/1.1 200" && string(b[len(b)-6:]) == "\r\n\r\nok"
}
