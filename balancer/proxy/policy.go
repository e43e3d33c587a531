package proxy

// The policy layer: the proxy's rules with no I/O, so that tests drive them
// without sockets. The engine (engine.go, conn.go, exchange.go) does the
// I/O and asks these functions what to do.

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/balancer/proxy/wire"
)

// The failures of an attempt that the policy tells apart.
var (
	errUpstreamClosed = errors.New("upstream closed the connection before answering")
	errBadResponse    = errors.New("upstream sent a malformed response")
	errUpstreamTime   = errors.New("upstream timed out")
	errDialTimeout    = errors.New("connecting timed out")
)

// localError is a failure on the balancer's side (out of descriptors or
// memory), not the upstream's: it does not count against the upstream.
type localError struct{ err error }

func (e *localError) Error() string { return "no socket for the upstream: " + e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// isLocal reports a failure on the balancer's side. Only error paths call
// it: errors.As moves its target to the heap.
func isLocal(err error) bool {
	var le *localError
	return errors.As(err, &le)
}

// retryAllowed is the retry rule, Caddy's tryAgain: a request whose
// attempt failed with err goes to another upstream when nothing reached
// the upstream (a dial failure), or when the method is idempotent, the
// whole request can be sent again (replayable) and the upstream did not
// merely take too long (it may still be working on it). The caller bounds
// the attempts by pool.MaxTries.
func retryAllowed(err error, idempotent, replayable bool) bool {
	var de *pool.DialError
	if errors.As(err, &de) {
		return true
	}
	return idempotent && replayable && err != errUpstreamTime
}

// errorAnswer maps the failure of a request that got no answer to the
// status and message the client gets: 503 when no upstream was available
// or the balancer ran out of resources, 504 on a timeout, else 502.
func errorAnswer(err error) (status int, msg string) {
	switch {
	case errors.Is(err, pool.ErrNoUpstream):
		return 503, "no healthy upstream"
	case isLocal(err):
		return 503, "balancer out of resources"
	case err == errUpstreamTime:
		return 504, "upstream timed out"
	}
	return 502, "upstream unreachable"
}

// appendErrorAnswer appends a whole error answer: the status line, a JSON
// body {"error": msg}, Retry-After on a 503, and the Connection header
// connection (none when empty).
func appendErrorAnswer(dst []byte, status int, msg, connection string) []byte {
	var body [256]byte
	b := appendJSONError(body[:0], msg)
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, http.StatusText(status)...)
	dst = append(dst, "\r\nContent-Type: application/json\r\n"...)
	if status == 503 {
		dst = append(dst, "Retry-After: 1\r\n"...)
	}
	if connection != "" {
		dst = append(dst, "Connection: "...)
		dst = append(dst, connection...)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(b)), 10)
	dst = append(dst, "\r\n\r\n"...)
	return append(dst, b...)
}

// connectionHeader is the Connection header of an answer to a request of
// HTTP/1.<minor>: "close" when the connection closes after it,
// "keep-alive" when an HTTP/1.0 client's stays open (it would close
// without it), else none.
func connectionHeader(closeConn bool, minor int) string {
	switch {
	case closeConn:
		return "close"
	case minor == 0:
		return "keep-alive"
	}
	return ""
}

// identity is what a forwarded request says about where it came from:
// X-Forwarded-For gets the client's address appended, X-Forwarded-Proto
// is "http", X-Forwarded-Host the request's Host (written by
// wire.AppendRequest), and X-Request-Id is kept or, when the request has
// none, newID. host is the listener's address, the Host of an HTTP/1.0
// request without one. bodyWhole drops Expect: 100-continue, which the
// balancer answers itself when it reads a body whole.
func identity(h *wire.RequestHead, clientIP, host, newID []byte, bodyWhole bool) wire.Forward {
	f := wire.Forward{ClientIP: clientIP, Proto: "http", Host: host, NoExpect: bodyWhole}
	if h.RequestID == nil {
		f.RequestID = newID
	}
	return f
}

// attempt is one try of a request on one upstream. It does all the
// accounting of the try: the pick, and at its end exactly once the
// release of the upstream's in-flight count, the pool's success or
// failure report for passive ejection, and the observation of its status
// and latency. A zero attempt has no upstream.
type attempt struct {
	u     *pool.Upstream
	start int64 // unix nanoseconds
}

// Sticky modes (EngineOptions.Sticky).
const (
	stickyOff    = iota
	stickyCookie // a signed cookie names the upstream
	stickyIP     // the client's address, on the consistent-hash ring
	stickyHeader // a request header's value, on the ring
)

// stickyMode parses EngineOptions.Sticky into a mode and, for
// "header:NAME", the header's name.
func stickyMode(s string) (mode int, header string, ok bool) {
	switch {
	case s == "" || s == "off":
		return stickyOff, "", true
	case s == "cookie":
		return stickyCookie, "", true
	case s == "ip":
		return stickyIP, "", true
	}
	if name, found := strings.CutPrefix(s, "header:"); found && name != "" && !strings.ContainsAny(name, " \t:\r\n") {
		return stickyHeader, name, true
	}
	return 0, "", false
}

// ParseSticky checks a Sticky setting.
func ParseSticky(s string) error {
	if _, _, ok := stickyMode(s); !ok {
		return fmt.Errorf("%q: want off, cookie, ip or header:NAME", s)
	}
	return nil
}

// stickiness is how one request would like to be placed: on the upstream
// its sticky cookie names (to; nil for a missing, tampered or stale
// cookie), or by its key's place on the ring.
type stickiness struct {
	mode   int
	to     *pool.Upstream
	key    uint64
	hasKey bool
}

// place returns where a request goes, given its head and client address,
// under mode (cookie: the cookie named cookieName; header: that header).
func place(p *pool.Pool, mode int, h *wire.RequestHead, buf, clientIP []byte, cookieName, header string) stickiness {
	s := stickiness{mode: mode}
	switch mode {
	case stickyCookie:
		if v := h.Cookie(buf, cookieName); v != nil {
			s.to = p.CookieTarget(v)
		}
	case stickyIP:
		s.key, s.hasKey = pool.HashKey(clientIP), true
	case stickyHeader:
		if v := h.Header(buf, header); v != nil {
			s.key, s.hasKey = pool.HashKey(v), true
		}
	}
	return s
}

// pick takes the next upstream from p that tried has not had, where s
// would place the request when it can; it reports false when there is
// none.
func (a *attempt) pick(p *pool.Pool, tried *pool.Tried, s *stickiness, now int64) bool {
	var u *pool.Upstream
	switch {
	case s.mode == stickyCookie:
		u = p.PickPreferred(*tried, s.to)
	case s.hasKey:
		u = p.PickHashed(*tried, s.key)
	default:
		u = p.Pick(*tried)
	}
	if u == nil {
		return false
	}
	tried.Add(u)
	*a = attempt{u: u, start: now}
	return true
}

// Outcomes of an attempt.
const (
	// answered: the upstream's whole answer was relayed.
	answered = iota
	// upstreamFailed: the upstream could not be reached, reset, timed out
	// or answered garbage; it counts towards its passive ejection.
	upstreamFailed
	// notUpstream: the try ended for a reason that is not the upstream's
	// (the client left or sent a bad body, the balancer ran out of
	// resources); it is observed but not held against the upstream.
	notUpstream
)

// end closes the attempt with its outcome and status (0 when no answer
// was relayed). Calling it again, or on a zero attempt, does nothing.
func (a *attempt) end(p *pool.Pool, obs Observer, outcome, status int, now int64) {
	u := a.u
	if u == nil {
		return
	}
	a.u = nil
	if outcome != answered {
		status = 0
	}
	u.Release(status)
	switch outcome {
	case answered:
		p.ReportSuccess(u)
	case upstreamFailed:
		p.ReportFailure(u)
	}
	if obs != nil {
		obs.Observe(u, status, time.Duration(now-a.start))
	}
}
