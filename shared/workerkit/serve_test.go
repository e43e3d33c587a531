package workerkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/valyala/fasthttp"

	"github.com/procbal/procbal/shared/protocol"
)

// The tests that call Serve set the worker contract's environment with
// t.Setenv, so they do not run in parallel.

// echo answers "hello <path>", after ?ms=N milliseconds.
func echo(ctx *fasthttp.RequestCtx) {
	if ms := ctx.QueryArgs().GetUintOrZero("ms"); ms > 0 {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	fmt.Fprintf(ctx, "hello %s", ctx.Path())
}

// unixClient talks HTTP over the unix socket at path.
func unixClient(path string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
}

func fetch(c *http.Client, path string) (int, string, error) {
	resp, err := c.Get("http://localhost" + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// spawned sets the environment the balancer gives a worker and returns
// the socket and report socket paths; a stale file is left at the socket.
func spawned(t *testing.T) (sock, report string) {
	dir, err := os.MkdirTemp("", "wk") // short: socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock, report = filepath.Join(dir, "w.sock"), filepath.Join(dir, "w.rpt")
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(protocol.EnvSocket, sock)
	t.Setenv(protocol.EnvReportSocket, report)
	t.Setenv(protocol.EnvHealthPath, "/hz")
	return sock, report
}

// serveInBackground runs Serve until the test ends and waits until it
// answers its health path on c.
func serveInBackground(t *testing.T, ctx context.Context, o Options, c *http.Client, health string) <-chan error {
	t.Helper()
	o.Logger = hclog.NewNullLogger()
	errc := make(chan error, 1)
	go func() { errc <- Serve(ctx, o) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, body, err := fetch(c, health); err == nil && code == 200 && body == "ok\n" {
			return errc
		}
		select {
		case err := <-errc:
			t.Fatalf("Serve returned before answering: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("worker never answered its health path")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A spawned worker listens on WORKER_SOCKET (removing a stale file),
// answers HEALTH_PATH itself, serves its handler, and serves the memory
// report, and internal paths, on the report socket only. When ctx ends it
// finishes the request in flight, returns nil and leaves no socket file.
func TestServeSpawned(t *testing.T) {
	sock, report := spawned(t)
	if !Spawned() {
		t.Fatal("Spawned() false with WORKER_SOCKET set")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	internal := func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("internal " + string(ctx.Path())) }
	c := unixClient(sock)
	errc := serveInBackground(t, ctx, Options{Handler: echo, Internal: internal, ShutdownTimeout: 5 * time.Second}, c, "/hz")
	if code, body, _ := fetch(c, "/api/x"); code != 200 || body != "hello /api/x" {
		t.Fatalf("handler answered %d %q", code, body)
	}
	if code, body, _ := fetch(c, protocol.ReportPath); body != "hello "+protocol.ReportPath {
		t.Fatalf("the memory report is served on the client socket: %d %q", code, body)
	}
	rc := unixClient(report)
	code, body, err := fetch(rc, protocol.ReportPath)
	var m protocol.MemoryReport
	if err != nil || code != 200 || json.Unmarshal([]byte(body), &m) != nil || m.RSSBytes == 0 || m.HeapSysBytes == 0 {
		t.Fatalf("memory report: %d %q %v", code, body, err)
	}
	if code, body, _ := fetch(rc, "/internal/x"); code != 200 || body != "internal /internal/x" {
		t.Fatalf("internal path on the report socket: %d %q", code, body)
	}
	slow := make(chan string, 1)
	go func() { _, body, err := fetch(c, "/slow?ms=300"); slow <- fmt.Sprint(body, err) }()
	time.Sleep(100 * time.Millisecond) // the slow request is in flight
	cancel()
	if got := <-slow; got != "hello /slow<nil>" {
		t.Fatalf("request in flight at shutdown: %q", got)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Serve after ctx ended: %v", err)
	}
	for _, p := range []string{sock, report} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s left behind: %v", p, err)
		}
	}
}

// SIGTERM stops a worker gracefully: Serve returns nil.
func TestServeStopsOnSIGTERM(t *testing.T) {
	sock, _ := spawned(t)
	c := unixClient(sock)
	errc := serveInBackground(t, context.Background(), Options{Handler: echo}, c, "/hz")
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Serve after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after SIGTERM")
	}
}

// Started on its own (no WORKER_SOCKET) a worker listens on Addr over TCP
// and answers the default health path.
func TestServeOnTCPWhenNotSpawned(t *testing.T) {
	t.Setenv(protocol.EnvSocket, "")
	t.Setenv(protocol.EnvReportSocket, "")
	t.Setenv(protocol.EnvHealthPath, "")
	if Spawned() {
		t.Fatal("Spawned() true without WORKER_SOCKET")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		},
	}}
	errc := serveInBackground(t, ctx, Options{Handler: echo, Addr: addr}, c, protocol.DefaultHealthPath)
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// A socket that cannot be listened on is an error naming it, not a panic.
func TestServeListenError(t *testing.T) {
	t.Setenv(protocol.EnvSocket, "/nonexistent-dir/w.sock")
	t.Setenv(protocol.EnvReportSocket, "")
	err := Serve(context.Background(), Options{Handler: echo, Logger: hclog.NewNullLogger()})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent-dir/w.sock") {
		t.Fatalf("Serve on a socket in a missing directory: %v", err)
	}
}
