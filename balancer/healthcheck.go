//go:build linux

package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/procbal/procbal/shared/protocol"
)

// version is the balancer's version, set at build time with
// -ldflags "-X main.version=v1.2.3" (the images' VERSION build argument).
var version = "dev"

// healthcheckTimeout bounds `balancer healthcheck`, below the images'
// HEALTHCHECK --timeout.
const healthcheckTimeout = 3 * time.Second

// subcommand runs `balancer healthcheck`, `balancer ctl` (ctl.go) or
// `balancer version` and reports whether args named one of them; the
// balancer itself takes no arguments.
func subcommand(args []string) (code int, ok bool) {
	if len(args) == 0 {
		return 0, false
	}
	switch args[0] {
	case "healthcheck":
		return healthcheck(os.Stderr), true
	case "ctl":
		return ctl(args[1:], os.Stdout, os.Stderr), true
	case "version":
		fmt.Println(version)
		return 0, true
	}
	return 0, false
}

// healthcheck asks the balancer running with this environment for GET
// /admin/health on ADMIN_ADDR (a wildcard address is asked on loopback),
// with ADMIN_TOKEN when set. It returns 0 when the answer is 200 (an
// upstream is healthy), else 1 after one line on w saying why. It is the
// images' HEALTHCHECK: they have no shell and no curl.
func healthcheck(w io.Writer) int {
	cfg, err := env.ParseAs[Config]()
	if err != nil {
		fmt.Fprintln(w, "balancer healthcheck: bad setting:", envError(err))
		return 1
	}
	url := "http://" + protocol.LoopbackAddr(cfg.AdminAddr) + "/admin/health"
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintln(w, "balancer healthcheck: ADMIN_ADDR:", err)
		return 1
	}
	req.Header.Set("User-Agent", "procbal-healthcheck/"+version)
	if cfg.AdminToken != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.AdminToken)
	}
	resp, err := (&http.Client{Timeout: healthcheckTimeout}).Do(req)
	if err != nil {
		fmt.Fprintln(w, "balancer healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		fmt.Fprintf(w, "balancer healthcheck: GET %s: %s %s\n", url, resp.Status, strings.Join(strings.Fields(string(body)), " "))
		return 1
	}
	return 0
}
