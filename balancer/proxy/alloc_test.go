//go:build linux && !race

// Allocation tests run without the race detector, which allocates on its
// own (make test runs them in a separate pass).

package proxy_test

import (
	"io"
	"net"
	"strings"
	"testing"

	"github.com/procbal/procbal/balancer/proxy"
)

// The engine relays a request (GETs, and POSTs whose bodies it buffers or
// re-frames) with no allocation at all once warm: the whole
// round trip (a raw client over TCP, the event loop, a fasthttp upstream on
// a unix socket) is measured, so nothing the engine does is left out. The
// cases cover the headers the engine rewrites or removes, including the
// "Connection: keep-alive" browsers send.
func TestEngineGETAllocs(t *testing.T) {
	for _, format := range []string{proxy.AccessLogOff, proxy.AccessLogJSON, proxy.AccessLogText} {
		t.Run("access log "+format, func(t *testing.T) { testAllocs(t, format) })
	}
}

func testAllocs(t *testing.T, accessLog string) {
	be := startBackend(t, okHandler)
	p, _ := newPool(t, be.addr)
	o := testEngineOptions
	o.Loops = 1
	o.AccessLog, o.AccessLogOut = accessLog, io.Discard
	front := startFrontWith(t, p, o)
	for _, tc := range []struct{ name, req string }{
		{"plain", "GET /bench?x=1 HTTP/1.1\r\nHost: front.test\r\n\r\n"},
		{"forwarded", "GET /bench HTTP/1.1\r\nHost: front.test\r\nX-Forwarded-For: 1.2.3.4\r\nX-Request-Id: abc\r\n\r\n"},
		{"connection keep-alive", "GET /bench HTTP/1.1\r\nHost: front.test\r\nConnection: keep-alive\r\n\r\n"},
		{"hop-by-hop without Connection", "GET /bench HTTP/1.1\r\nHost: front.test\r\nKeep-Alive: 300\r\nTe: trailers\r\nProxy-Authorization: x\r\n\r\n"},
		{"hop-by-hop", "GET /bench HTTP/1.1\r\nHost: front.test\r\nConnection: keep-alive, X-Fake-Hop\r\nX-Fake-Hop: 1\r\nKeep-Alive: 300\r\nTe: trailers\r\n\r\n"},
		// A body larger than a buffer is read whole into the spool first.
		{"buffered POST 40 KiB", "POST /bench HTTP/1.1\r\nHost: front.test\r\nContent-Length: 40960\r\n\r\n" + strings.Repeat("b", 40960)},
		{"chunked POST", "POST /bench HTTP/1.1\r\nHost: front.test\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"400\r\n" + strings.Repeat("c", 1024) + "\r\n0\r\n\r\n"},
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
				t.Errorf("%v allocations per proxied request, want 0", n)
			}
		})
	}
}

// complete reports whether b holds a whole "ok" answer.
func complete(b []byte) bool {
	return len(b) > 4 && string(b[:12]) == "HTTP/1.1 200" && string(b[len(b)-6:]) == "\r\n\r\nok"
}
