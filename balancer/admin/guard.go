package admin

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// The guard keeps web pages away from the admin API. Without a token the
// API is loopback-only, and a page in a browser on the same host could
// otherwise reach it in two ways: a cross-site "simple" POST (text/plain,
// no preflight) to 127.0.0.1:3002, and DNS rebinding, where the page's own
// name resolves to 127.0.0.1 and same-origin reads follow.
//
// The rule:
//
//   - Host. When ADMIN_ADDR is loopback (the default, and the only setting
//     allowed without a token), the Host header must be a loopback name or
//     address: localhost, 127.0.0.0/8 or ::1, with or without a port. A
//     rebinding page sends its own name and is refused. When ADMIN_ADDR is
//     a wildcard or another address, ADMIN_TOKEN is required at start, and
//     the token is the guard: a browser never adds a bearer token on its
//     own and a rebinding page does not know it, so any Host is accepted
//     (operators reach such a listener by names the balancer cannot know).
//   - Origin. A state-changing request (any method but GET, HEAD and
//     OPTIONS) that carries an Origin is refused unless the origin is the
//     admin API's own: the request's Host, or a loopback name or address
//     with the admin API's port.
//   - Sec-Fetch-Site. A state-changing request marked "cross-site" or
//     "same-site" (a page on another loopback port is same-site) is refused.
//
// curl and scripts send neither Origin nor Sec-Fetch-Site, and name a
// loopback address in Host, so they pass. A refusal is 403 with a JSON
// error and changes nothing.
func (a *api) guard(next http.Handler) http.Handler {
	strictHost := a.Token == "" || isLoopbackAddr(a.Addr)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if msg := refusal(r, strictHost); msg != "" {
			a.Log.Warn("admin request refused", "method", r.Method, "path", r.URL.Path,
				"host", r.Host, "origin", r.Header.Get("Origin"), "reason", msg)
			writeError(w, http.StatusForbidden, msg)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// refusal returns why r is refused, or "" when it may go on.
func refusal(r *http.Request, strictHost bool) string {
	if strictHost && !isLoopbackHost(r.Host) {
		return "Host must be a loopback name or address (localhost, 127.0.0.1, [::1])"
	}
	if safeMethod(r.Method) {
		return ""
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
		return "requests from web pages are refused (Sec-Fetch-Site: " + site + ")"
	}
	if origin, ok := r.Header["Origin"]; ok && !ownOrigin(strings.Join(origin, ","), r) {
		return "requests from web pages are refused (Origin is not the admin API's own)"
	}
	return ""
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// ownOrigin reports whether origin is the admin API's own: the request's
// Host itself, or a loopback name or address with the same port. "null",
// a list or anything but an http(s) origin is not.
func ownOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.Path != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return isLoopbackHost(u.Host) && portOf(u.Host, u.Scheme) == portOf(r.Host, requestScheme(r))
}

func requestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// portOf is hostport's port, or the scheme's default.
func portOf(hostport, scheme string) string {
	if _, port, err := net.SplitHostPort(hostport); err == nil && port != "" {
		return port
	}
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// isLoopbackAddr reports whether a listen address such as 127.0.0.1:3002
// binds loopback only. An empty address counts as loopback (the default).
func isLoopbackAddr(addr string) bool {
	if addr == "" {
		return true
	}
	host, _, err := net.SplitHostPort(addr)
	return err == nil && isLoopbackName(host)
}

// isLoopbackHost reports whether a Host header value, with or without a
// port, names loopback: localhost, 127.0.0.0/8 or ::1 (in brackets).
func isLoopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else if strings.HasPrefix(hostport, "[") && strings.HasSuffix(hostport, "]") {
		host = hostport[1 : len(hostport)-1]
	} else if strings.Contains(hostport, ":") {
		return false // a bare IPv6 address must be bracketed in Host
	}
	return isLoopbackName(host)
}

// isLoopbackName reports whether host, without a port, is localhost (a
// trailing dot allowed) or a loopback IP address.
func isLoopbackName(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
