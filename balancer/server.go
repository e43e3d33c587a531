//go:build linux

package main

import (
	"github.com/hashicorp/go-hclog"

	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/balancer/proxy"
)

// newEngine returns the client-facing event-loop engine over p, with the
// loop count, request bounds and buffering of the settings; buffered
// bodies beyond memory go to unlinked files in tmp.
func newEngine(cfg *Config, p *pool.Pool, obs proxy.Observer, log hclog.Logger, tmp string) *proxy.Engine {
	respBuf := int64(cfg.ResponseBuffer)
	if respBuf == 0 {
		respBuf = -1 // RESPONSE_BUFFER=off: the upstream waits for the client
	}
	return proxy.NewEngine(p, obs, log, proxy.EngineOptions{
		Loops:             cfg.loops(),
		MaxHeaderBytes:    int(cfg.MaxHeaderBytes),
		MaxBodyBytes:      int64(cfg.MaxBodyBytes),
		ReadHeaderTimeout: cfg.ReadTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		UpstreamTimeout:   cfg.UpstreamTimeout,
		StreamRequests:    !cfg.ReqBuffering,
		ClientBodyTimeout: cfg.BodyTimeout,
		ResponseBuffer:    respBuf,
		BufferMemory:      int64(cfg.BufferMemory),
		TempDir:           tmp,
		MaxTunnels:        int64(cfg.MaxTunnels),
		TunnelIdleTimeout: cfg.TunnelIdle,
		Sticky:            cfg.Sticky,
		StickyCookie:      cfg.StickyCookie,
		AccessLog:         cfg.accessLogFormat(),
		AccessLogOut:      cfg.accessOut,
	})
}
