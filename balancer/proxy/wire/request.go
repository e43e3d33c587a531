package wire

import "bytes"

// RequestHead describes a parsed request head. Its byte slices point into
// the buffer passed to ParseRequest, which must stay unchanged while they
// are used.
type RequestHead struct {
	Method []byte
	URI    []byte // request-target as sent
	Minor  int    // HTTP/1.<Minor>: 0 or 1
	Len    int    // bytes of the head: leading empty lines, request line, headers and the final empty line

	ContentLength int64 // -1 when absent
	Chunked       bool  // Transfer-Encoding: chunked
	// KeepAlive: the client connection may stay open after this exchange:
	// HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with
	// "Connection: keep-alive" (and without "close").
	KeepAlive bool

	Host []byte // Host header value (trimmed), nil when absent
	// ForwardedFor is the X-Forwarded-For value (trimmed), nil when absent.
	// With several X-Forwarded-For headers it is the first one's value; the
	// others are dropped when forwarding.
	ForwardedFor []byte
	// RequestID is the X-Request-Id value (trimmed), nil when absent; with
	// several, the first one's.
	RequestID []byte

	// Upgrade is the Upgrade header's value (trimmed) when a Connection
	// header lists "upgrade": the client asks to switch protocols (a
	// WebSocket handshake); nil otherwise.
	Upgrade []byte

	ExpectContinue bool // Expect: 100-continue
	Idempotent     bool // method is GET, HEAD, OPTIONS or TRACE (case-sensitive)
	Head           bool // method is HEAD

	absolute  bool // the target was in absolute form: Host comes from it
	rootSlash bool // the absolute-form target had no path: "/" goes before URI

	hdrOff  int  // offset of the first header line
	hdrEnd  int  // offset of the final empty line
	rewrite bool // some header line is dropped or reformatted when forwarding
	conn    connTokens
}

// ParseRequest parses the request head at the start of buf into h. It
// returns nil, ErrIncomplete (no complete head yet and len(buf) <
// MaxHead), ErrHeadTooLarge (no complete head within the first MaxHead
// bytes), or an *Error for a malformed head; an error can come before the
// head is complete, as soon as a complete line is found bad. Leading empty
// lines before the request line are skipped (RFC 9112 2.2) and counted in
// Len.
//
// A request with more than one Host header is refused (RFC 9112 3.2), and
// so is an HTTP/1.1 request without one; an HTTP/1.0 request without Host
// is accepted, with h.Host nil. A repeated Content-Length, even with the
// same value, is refused.
func ParseRequest(buf []byte, lim Limits, h *RequestHead) error {
	*h = RequestHead{ContentLength: -1}
	max := lim.max()
	w := buf
	if len(w) > max {
		w = w[:max]
	}
	i := 0
	for i < len(w) && (w[i] == '\r' || w[i] == '\n') {
		if w[i] == '\n' {
			i++
			continue
		}
		if i+1 == len(w) {
			return short(len(buf), max)
		}
		if w[i+1] != '\n' {
			return reqErrs[eStartLine]
		}
		i += 2
	}
	line, next, _, ok := nextLine(w, i)
	if !ok {
		return short(len(buf), max)
	}
	if code := h.requestLine(line); code != eNone {
		return reqErrs[code]
	}
	h.hdrOff = next
	i = next

	var (
		n                   int
		closeTok, keepAlive bool
		te                  codings
		l                   hdrLine
		upgrade             []byte
	)
	for {
		st, next, code := nextHeader(w, i, &n, &l)
		if st == stepMore {
			return short(len(buf), max)
		}
		if st == stepErr {
			return reqErrs[code]
		}
		if st == stepEnd {
			h.hdrEnd, h.Len = i, next
			break
		}
		if !l.canon {
			h.rewrite = true
		}
		name, value, vs, ve := l.name(w), l.value(w), l.vs, l.ve
		switch classify(name) {
		case hHost:
			if h.Host != nil {
				return reqErrs[eMultiHost]
			}
			h.Host = value
		case hContentLength:
			// Stricter than RFC 9110 8.6 allows: a request repeating its
			// length, even with the same value, is refused, as fasthttp
			// and HAProxy do: an intermediary downstream might not agree.
			if h.ContentLength >= 0 || bytes.IndexByte(value, ',') >= 0 {
				return reqErrs[eConflictCL]
			}
			if code := contentLength(value, &h.ContentLength); code != eNone {
				return reqErrs[code]
			}
		case hTransferEncoding:
			h.rewrite = true // written anew in one form
			te.add(value)
		case hConnection:
			h.rewrite = true
			c, k := h.conn.add(buf, vs, ve)
			closeTok = closeTok || c
			keepAlive = keepAlive || k
		case hExpect:
			h.ExpectContinue = h.ExpectContinue || eqLower(value, "100-continue")
		case hForwardedFor:
			h.rewrite = true
			if h.ForwardedFor == nil {
				h.ForwardedFor = value
			}
		case hRequestID:
			h.rewrite = true
			if h.RequestID == nil {
				h.RequestID = value
			}
		case hUpgrade:
			h.rewrite = true
			if upgrade == nil {
				upgrade = value
			}
		case hTE, hKeepAlive, hProxyConnection, hProxyAuthenticate, hProxyAuthorization,
			hTrailer, hForwardedProto, hForwardedHost:
			h.rewrite = true
		}
		i = l.next
	}

	if te.seen {
		switch {
		case h.Minor == 0:
			return reqErrs[eTE10]
		case h.ContentLength >= 0:
			return reqErrs[eBothCLTE]
		case te.empty:
			return reqErrs[eBadTE]
		case te.unknown || te.known:
			return reqErrs[eTECoding]
		case te.chunked != 1:
			return reqErrs[eBadTE]
		}
		h.Chunked = true
	}
	if h.Minor == 1 && h.Host == nil {
		return reqErrs[eNoHost]
	}
	if h.Host != nil && !validHost(h.Host) {
		return reqErrs[eBadHost]
	}
	if code := h.target(); code != eNone {
		return reqErrs[code]
	}
	if h.conn.upgrade && len(upgrade) > 0 {
		switch {
		case h.Minor == 0:
			return reqErrs[eUpgrade10]
		case h.Chunked || h.ContentLength > 0:
			return reqErrs[eUpgradeBody]
		}
		h.Upgrade = upgrade
	}
	if h.Minor == 1 {
		h.KeepAlive = !closeTok
	} else {
		h.KeepAlive = keepAlive && !closeTok
	}
	return nil
}

// requestLine parses "METHOD SP request-target SP HTTP/1.x".
func (h *RequestHead) requestLine(line []byte) errCode {
	i := 0
	for i < len(line) && tchar[line[i]] {
		i++
	}
	if i == 0 || i == len(line) || line[i] != ' ' {
		return eStartLine
	}
	h.Method = line[:i]
	i++
	s := i
	// The target is visible ASCII: other bytes would be decoded one way
	// here and perhaps another by the backend (HAProxy refuses them too).
	for i < len(line) && line[i] > ' ' && line[i] < 0x7f {
		i++
	}
	if i == s || i == len(line) || line[i] != ' ' {
		return eStartLine
	}
	h.URI = line[s:i]
	minor, code := parseVersion(line[i+1:])
	if code != eNone {
		return code
	}
	h.Minor = minor
	m := h.Method
	h.Head = string(m) == "HEAD"
	h.Idempotent = h.Head || string(m) == "GET" || string(m) == "OPTIONS" || string(m) == "TRACE"
	return eNone
}

// target checks the request target's form (RFC 9112 3.2): origin-form
// ("/path?query"), "*" for OPTIONS, or absolute-form
// ("http://authority/path"), which is rewritten to origin-form with Host
// taken from the authority (RFC 9112 3.2.2: the Host header is then
// ignored). CONNECT and its authority-form are refused: this is not a
// forward proxy.
func (h *RequestHead) target() errCode {
	u := h.URI
	switch {
	case string(h.Method) == "CONNECT":
		return eConnect
	case u[0] == '/':
		return eNone
	case len(u) == 1 && u[0] == '*':
		if string(h.Method) != "OPTIONS" {
			return eTarget
		}
		return eNone
	}
	rest, ok := cutScheme(u)
	if !ok {
		return eTarget
	}
	end := 0
	for end < len(rest) && rest[end] != '/' && rest[end] != '?' {
		end++
	}
	authority := rest[:end]
	if bytes.IndexByte(authority, '@') >= 0 || !validHost(authority) {
		return eTarget
	}
	h.Host, h.URI, h.absolute, h.rewrite = authority, rest[end:], true, true
	if len(h.URI) == 0 || h.URI[0] == '?' {
		h.rootSlash = true
	}
	return eNone
}

// cutScheme removes a leading "http://" or "https://" (any case).
func cutScheme(u []byte) ([]byte, bool) {
	for _, s := range [...]string{"http://", "https://"} {
		if len(u) >= len(s) && eqLower(u[:len(s)], s) {
			return u[len(s):], true
		}
	}
	return nil, false
}

// validHost reports whether v is a Host value: uri-host [":" port]
// (RFC 9110 7.2), where uri-host is an IP literal in brackets or a
// reg-name (letters, digits, "-._~", sub-delims and percent signs; an IPv4
// address is one), and port is one to five digits.
func validHost(v []byte) bool {
	i := 0
	if len(v) > 0 && v[0] == '[' {
		i = bytes.IndexByte(v, ']')
		if i < 2 {
			return false
		}
		for _, c := range v[1:i] {
			if unhex(c) < 0 && c != ':' && c != '.' {
				return false
			}
		}
		i++
	} else {
		for i < len(v) && hostChar(v[i]) {
			i++
		}
		if i == 0 {
			return false
		}
	}
	if i == len(v) {
		return true
	}
	port := v[i+1:]
	if v[i] != ':' || len(port) == 0 || len(port) > 5 {
		return false
	}
	for _, c := range port {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

// hostChar reports a character of a reg-name: unreserved, sub-delims or
// "%" (RFC 3986 3.2.2).
func hostChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', isDigit(c):
		return true
	}
	switch c {
	case '-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', '%':
		return true
	}
	return false
}

// Forward is what the proxy adds to a forwarded request.
type Forward struct {
	// ClientIP is appended to X-Forwarded-For ("a, b" + ", " + ip), or is
	// the whole value when the request has none.
	ClientIP []byte
	// Proto is the X-Forwarded-Proto value, e.g. "http".
	Proto string
	// RequestID is used only when the request has no X-Request-Id (or an
	// empty one).
	RequestID []byte
	// Host is sent as Host when an HTTP/1.0 request has none (the
	// address the client connected to, as nginx's $host falls back to).
	Host []byte
	// NoExpect drops "Expect: 100-continue": the proxy answered it itself
	// and sends the body whole with the head.
	NoExpect bool
}

// AppendRequest appends to dst the head to send upstream for the request
// whose head is buf[:h.Len], as parsed by ParseRequest into h:
//
//   - the request line "METHOD URI HTTP/1.1", Method and URI taken from h
//     (so a caller may rewrite them); an HTTP/1.0 request goes as
//     "HTTP/1.0" followed by "Connection: keep-alive", so that the upstream
//     frames its answer for a 1.0 client and still keeps the connection;
//   - "Host: <f.Host>" when the request had none (HTTP/1.0 only: an
//     HTTP/1.1 request without Host is refused by ParseRequest);
//   - every header line, as "Name: value" (name as sent, value trimmed),
//     except the hop-by-hop headers Connection, Keep-Alive,
//     Proxy-Connection, Proxy-Authenticate, Proxy-Authorization, TE (but
//     "TE: trailers" is kept), Trailer and Upgrade, the headers a Connection
//     header names, and X-Forwarded-For, X-Forwarded-Proto,
//     X-Forwarded-Host and X-Request-Id, which are written anew. A
//     Connection header never removes Content-Length, Transfer-Encoding,
//     Host or TE: those are framing or routing, kept as sent;
//   - "X-Forwarded-For: <h.ForwardedFor>, <f.ClientIP>" (either part alone
//     when the other is empty; none when both are);
//   - "X-Forwarded-Proto: <f.Proto>" unless f.Proto is empty;
//   - "X-Forwarded-Host: <h.Host>" when h.Host is not empty;
//   - "X-Request-Id: <h.RequestID, or f.RequestID when that is empty>"
//     unless both are empty;
//   - the final "\r\n".
//
// Content-Length is kept as sent; Transfer-Encoding is written as exactly
// "Transfer-Encoding: chunked" after the other headers (the only coding
// ParseRequest accepts), so a backend never sees a list it might read
// another way; the body must then follow in canonical form
// (ChunkedScanner.Filter). An absolute-form target goes as origin-form,
// with "Host: <authority>" in place of the Host headers sent; with
// f.NoExpect, "Expect: 100-continue" is dropped. With dst's capacity large
// enough it allocates nothing.
func AppendRequest(dst, buf []byte, h *RequestHead, f Forward) []byte {
	dst = append(dst, h.Method...)
	dst = append(dst, ' ')
	if h.rootSlash {
		dst = append(dst, '/')
	}
	dst = append(dst, h.URI...)
	if h.Minor == 0 {
		// An HTTP/1.0 client cannot read a chunked answer: the upstream
		// is asked in HTTP/1.0 too, on a connection kept open for reuse.
		dst = append(dst, " HTTP/1.0\r\nConnection: keep-alive\r\n"...)
	} else {
		dst = append(dst, " HTTP/1.1\r\n"...)
	}
	mode := forRequest
	if f.NoExpect && h.ExpectContinue {
		mode |= forRequestNoExpect
	}
	switch {
	case h.absolute:
		dst = append(dst, "Host: "...)
		dst = append(dst, h.Host...)
		dst = append(dst, "\r\n"...)
		mode |= forRequestNewHost
	case h.Host == nil && len(f.Host) > 0:
		dst = append(dst, "Host: "...)
		dst = append(dst, f.Host...)
		dst = append(dst, "\r\n"...)
	}
	if !h.rewrite && mode == forRequest && h.hdrOff <= h.hdrEnd && h.hdrEnd <= len(buf) {
		dst = append(dst, buf[h.hdrOff:h.hdrEnd]...)
	} else {
		dst = appendHeaders(dst, buf, h.hdrOff, h.hdrEnd, &h.conn, mode)
	}
	if h.Chunked {
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	}
	if h.Upgrade != nil {
		dst = append(dst, "Connection: upgrade\r\nUpgrade: "...)
		dst = append(dst, h.Upgrade...)
		dst = append(dst, "\r\n"...)
	}
	if len(h.ForwardedFor) > 0 || len(f.ClientIP) > 0 {
		dst = append(dst, "X-Forwarded-For: "...)
		dst = append(dst, h.ForwardedFor...)
		if len(h.ForwardedFor) > 0 && len(f.ClientIP) > 0 {
			dst = append(dst, ", "...)
		}
		dst = append(dst, f.ClientIP...)
		dst = append(dst, "\r\n"...)
	}
	if f.Proto != "" {
		dst = append(dst, "X-Forwarded-Proto: "...)
		dst = append(dst, f.Proto...)
		dst = append(dst, "\r\n"...)
	}
	if len(h.Host) > 0 {
		dst = append(dst, "X-Forwarded-Host: "...)
		dst = append(dst, h.Host...)
		dst = append(dst, "\r\n"...)
	}
	id := h.RequestID
	if len(id) == 0 {
		id = f.RequestID
	}
	if len(id) > 0 {
		dst = append(dst, "X-Request-Id: "...)
		dst = append(dst, id...)
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "\r\n"...)
}
