package main

import (
	"cmp"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/valyala/fasthttp"

	"github.com/procbal/procbal/shared/protocol"
)

// version is the worker's version, set at build time with
// -ldflags "-X main.version=v1.2.3" (the images' VERSION build argument).
var version = "dev"

// healthcheckTimeout bounds `worker healthcheck`, below the images'
// HEALTHCHECK --timeout.
const healthcheckTimeout = 3 * time.Second

// subcommand runs `worker healthcheck` or `worker version` and reports
// whether args named one of them.
func subcommand(args []string) (code int, ok bool) {
	if len(args) == 0 {
		return 0, false
	}
	switch args[0] {
	case "healthcheck":
		return healthcheck(os.Stderr), true
	case "version":
		fmt.Println(version)
		return 0, true
	}
	return 0, false
}

// healthcheck asks the worker running with this environment for GET
// HEALTH_PATH (default /healthz): on WORKER_SOCKET when set, else on
// WORKER_ADDR (a wildcard address is asked on loopback). It returns 0 on a
// 2xx answer, else 1 after one line on w saying why. It is the worker
// image's HEALTHCHECK: the image has no shell and no curl.
func healthcheck(w io.Writer) int {
	cfg, err := env.ParseAs[Config]()
	if err != nil {
		fmt.Fprintln(w, "worker healthcheck: bad setting:", err)
		return 1
	}
	path := cmp.Or(os.Getenv(protocol.EnvHealthPath), protocol.DefaultHealthPath)
	addr, dial := protocol.LoopbackAddr(cfg.Addr), fasthttp.Dial
	if sock := os.Getenv(protocol.EnvSocket); sock != "" {
		addr = "localhost"
		dial = func(string) (net.Conn, error) { return net.Dial("unix", sock) }
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + addr + path)
	req.Header.SetUserAgent("procbal-healthcheck/" + version)
	c := &fasthttp.HostClient{Addr: addr, Dial: dial}
	if err := c.DoTimeout(req, resp, healthcheckTimeout); err != nil {
		fmt.Fprintf(w, "worker healthcheck: GET %s: %v\n", path, err)
		return 1
	}
	if code := resp.StatusCode(); code < 200 || code > 299 {
		fmt.Fprintf(w, "worker healthcheck: GET %s: status %d\n", path, code)
		return 1
	}
	return 0
}
