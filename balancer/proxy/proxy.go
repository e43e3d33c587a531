// Package proxy is the balancer's client front end: an event-loop engine
// (Engine, Linux only) that picks an upstream, rewrites headers, relays
// requests over pooled keep-alive connections, retries on another upstream
// when that is safe, and maps failures to 502/503/504.
package proxy

import (
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/procbal/procbal/balancer/pool"
)

// Observer is told of every finished attempt; the metrics implement it. It
// must be safe for concurrent use and should not allocate.
type Observer interface {
	// Observe records one attempt on u: its status (0 when it failed before
	// an answer) and its duration.
	Observe(u *pool.Upstream, status int, d time.Duration)
}

// appendJSONError appends the {"error": msg} body the engine answers
// errors with. msg is quoted, so any text is safe.
func appendJSONError(b []byte, msg string) []byte {
	b = append(b, `{"error":`...)
	b = strconv.AppendQuote(b, msg)
	return append(b, "}\n"...)
}

// appendIP appends ip's text form without allocating.
func appendIP(b []byte, ip net.IP) []byte {
	if ip4 := ip.To4(); ip4 != nil {
		for i, o := range ip4 {
			if i > 0 {
				b = append(b, '.')
			}
			b = strconv.AppendUint(b, uint64(o), 10)
		}
		return b
	}
	if len(ip) != net.IPv6len {
		return append(b, "unknown"...)
	}
	return netip.AddrFrom16([16]byte(ip)).AppendTo(b)
}
