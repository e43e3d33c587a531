//go:build linux

package proxy_test

import (
	"net/http"
	"testing"

	"github.com/valyala/fasthttp"
)

// Header names are case-insensitive (RFC 9110 5.1). Regression: lower-case
// hop-by-hop and X-Forwarded-* headers once slipped past the header rewrite,
// and clients could spoof X-Forwarded-Proto/Host.
func TestHopByHopHeadersAnyCase(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	b := startBackend(t, rec.handle)
	p, _ := newPool(t, b.addr)
	front := startFront(t, p)
	resp, _, _ := rawExchange(t, front, "GET / HTTP/1.1\r\nhost: front.test\r\n"+
		"connection: x-fake-hop\r\nx-fake-hop: 1\r\nkeep-alive: 300\r\n"+
		"proxy-authorization: Basic c2VjcmV0\r\nupgrade: websocket\r\nte: gzip\r\n"+
		"x-forwarded-for: 1.2.3.4\r\nx-request-id: client-id\r\n"+
		"x-forwarded-proto: https\r\nx-forwarded-host: spoofed.test\r\n\r\n")
	if resp == nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("answer = %v, want 200", resp)
	}
	got := rec.next(t)
	for _, h := range []string{"Connection", "X-Fake-Hop", "Keep-Alive", "Proxy-Authorization", "Upgrade", "Te"} {
		if vs := headerValues(&got.Header, h); len(vs) > 0 {
			t.Errorf("backend got %s: %q", h, vs)
		}
	}
	for h, want := range map[string]string{
		"X-Forwarded-For":   "1.2.3.4, 127.0.0.1",
		"X-Request-Id":      "client-id",
		"X-Forwarded-Proto": "http",
		"X-Forwarded-Host":  "front.test",
	} {
		if vs := headerValues(&got.Header, h); len(vs) != 1 || vs[0] != want {
			t.Errorf("backend got %s = %q, want [%q]", h, vs, want)
		}
	}
}

// The same in the other direction: hop-by-hop headers an upstream spells
// in lower case are removed before the answer reaches the client.
func TestHopByHopResponseHeadersAnyCase(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	rec.resp = func(ctx *fasthttp.RequestCtx) {
		h := &ctx.Response.Header
		h.DisableNormalizing()
		h.Set("connection", "x-fake-hop")
		h.Set("x-fake-hop", "1")
		h.Set("keep-alive", "timeout=5")
		h.Set("proxy-authenticate", "Basic")
		ctx.SetBodyString("ok")
	}
	b := startBackend(t, rec.handle)
	p, _ := newPool(t, b.addr)
	front := startFront(t, p)
	resp, _, _ := rawExchange(t, front, "GET / HTTP/1.1\r\nHost: front.test\r\n\r\n")
	if resp == nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("answer = %v, want 200", resp)
	}
	for _, h := range []string{"X-Fake-Hop", "Keep-Alive", "Proxy-Authenticate"} {
		if v := resp.Header.Values(h); len(v) > 0 {
			t.Errorf("client got %s: %q", h, v)
		}
	}
}
