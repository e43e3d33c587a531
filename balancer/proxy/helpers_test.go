//go:build linux

package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/valyala/fasthttp"

	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/balancer/proxy"
)

// sockDir returns a new short directory for unix sockets: t.TempDir() names
// can push a socket path past the ~108 byte limit.
func sockDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// backend is a real fasthttp upstream on a unix socket that counts the
// connections and requests it gets.
type backend struct {
	addr   string // "unix:/path", as UPSTREAMS spells it
	conns  atomic.Int64
	closed atomic.Int64
	reqs   atomic.Int64
}

func startBackend(t testing.TB, h fasthttp.RequestHandler) *backend {
	t.Helper()
	sock := filepath.Join(sockDir(t), "b.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: "unix:" + sock}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			b.reqs.Add(1)
			h(ctx)
		},
		ConnState: func(_ net.Conn, s fasthttp.ConnState) {
			switch s {
			case fasthttp.StateNew:
				b.conns.Add(1)
			case fasthttp.StateClosed:
				b.closed.Add(1)
			}
		},
		MaxRequestBodySize: 64 << 20,
		ReadBufferSize:     128 << 10, // heads as large as the front allows
		CloseOnShutdown:    true,
		Logger:             silent{},
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = srv.ShutdownWithContext(ctx)
	})
	return b
}

type silent struct{}

func (silent) Printf(string, ...any) {}

// deadAddr is a unix socket path nothing listens on: dialing it fails.
func deadAddr(t testing.TB) string {
	return "unix:" + filepath.Join(sockDir(t), "dead.sock")
}

// closer is an upstream that accepts a connection, reads the request and
// closes the connection without answering.
type closer struct {
	addr string
	reqs atomic.Int64
}

func startCloser(t testing.TB) *closer {
	t.Helper()
	sock := filepath.Join(sockDir(t), "c.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c := &closer{addr: "unix:" + sock}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go c.serve(conn)
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return c
}

func (c *closer) serve(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	req, err := http.ReadRequest(bufio.NewReader(conn))
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, req.Body) // every byte reached the upstream
	c.reqs.Add(1)
}

// newPool returns a round-robin pool of healthy upstreams at addrs, in
// order, so the first request goes to addrs[0].
func newPool(t testing.TB, addrs ...string) (*pool.Pool, []*pool.Upstream) {
	t.Helper()
	p := pool.New(&pool.RoundRobin{}, pool.OutlierOptions{}, hclog.NewNullLogger())
	ups := make([]*pool.Upstream, len(addrs))
	for i, a := range addrs {
		ups[i] = pool.NewUpstream(i+1, pool.Local, a)
		ups[i].SetState(pool.Healthy)
	}
	p.Publish(ups)
	return p, ups
}

// testEngineOptions are the balancer's defaults.
var testEngineOptions = proxy.EngineOptions{
	MaxHeaderBytes:    64 << 10,
	MaxBodyBytes:      32 << 20,
	ReadHeaderTimeout: 10 * time.Second,
	IdleTimeout:       60 * time.Second,
	UpstreamTimeout:   60 * time.Second,
}

// failOnError returns a logger that fails t on anything logged at error
// level: the engine logs a recovered panic there.
func failOnError(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: errorFailer{t}})
}

type errorFailer struct{ t testing.TB }

func (f errorFailer) Write(p []byte) (int, error) {
	f.t.Errorf("engine logged: %s", p)
	return len(p), nil
}

// startFront serves the engine over p on 127.0.0.1 and returns its address.
func startFront(t testing.TB, p *pool.Pool) string {
	t.Helper()
	return startFrontWith(t, p, testEngineOptions)
}

// startFrontWith is startFront with engine options.
func startFrontWith(t testing.TB, p *pool.Pool, o proxy.EngineOptions) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := proxy.NewEngine(p, nil, failOnError(t), o)
	addr := ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = srv.ShutdownWithContext(ctx)
	})
	return addr
}

// client returns a fasthttp client for the front at addr.
func client(t testing.TB, addr string) *fasthttp.HostClient {
	c := &fasthttp.HostClient{Addr: addr, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// do sends a request through c and returns the answer.
func do(t testing.TB, c *fasthttp.HostClient, method, uri string, body []byte, hdr ...string) *fasthttp.Response {
	t.Helper()
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	req.Header.SetHost("front.test")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if body != nil {
		req.SetBody(body)
	}
	resp := &fasthttp.Response{}
	if err := c.Do(req, resp); err != nil {
		t.Fatalf("%s %s: %v", method, uri, err)
	}
	return resp
}

// rawExchange writes raw to a new connection to addr and reads one answer,
// then reports whether the server closed the connection after it. resp is
// nil when the server closed the connection without answering.
func rawExchange(t testing.TB, addr, raw string) (resp *http.Response, body []byte, closed bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err) {
			return nil, nil, true
		}
		t.Fatalf("reading answer: %v", err)
	}
	body, err = io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	// A closed connection reads EOF at once; an open one times out.
	_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err = br.ReadByte()
	var ne net.Error
	closed = err != nil && !(errors.As(err, &ne) && ne.Timeout())
	return resp, body, closed
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// jsonError checks an error answer's status and {"error": ...} body.
func jsonError(t testing.TB, resp *fasthttp.Response, status int) {
	t.Helper()
	if resp.StatusCode() != status {
		t.Fatalf("status = %d, want %d (body %q)", resp.StatusCode(), status, resp.Body())
	}
	if ct := string(resp.Header.ContentType()); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var v map[string]string
	if err := json.Unmarshal(resp.Body(), &v); err != nil || v["error"] == "" || len(v) != 1 {
		t.Errorf("body = %q, want {\"error\": \"...\"} (%v)", resp.Body(), err)
	}
}
