package wire

import "strconv"

// ResponseHead describes a parsed response head.
type ResponseHead struct {
	Status int // three digits, 100 to 999
	Minor  int // HTTP/1.<Minor>: 0 or 1
	Len    int // bytes of the head, including the final empty line

	// ContentLength is the Content-Length value, -1 when absent or when a
	// Transfer-Encoding header overrides it.
	ContentLength int64
	Chunked       bool // the last transfer coding is chunked
	// KeepAlive: the upstream connection may be reused after this response
	// (HTTP/1.1 without "Connection: close"; HTTP/1.0 only with
	// "Connection: keep-alive"). It is false when framing was ambiguous
	// (Content-Length with Transfer-Encoding, or Transfer-Encoding in
	// HTTP/1.0) and when the body would be close-delimited for a request
	// other than HEAD: ParseResponse does not know the request method.
	KeepAlive bool

	reasonOff, reasonEnd int // the reason phrase, buf[reasonOff:reasonEnd]
	hdrOff, hdrEnd       int
	rewrite              bool // some header line is dropped or reformatted when forwarding
	dropCL               bool // Transfer-Encoding overrides Content-Length: do not forward it
	conn                 connTokens
}

// statusPrefix starts every status line ParseResponse accepts.
const statusPrefix = "HTTP/1."

// ParseResponse parses the response head at the start of buf into h. It
// returns nil, ErrIncomplete, ErrHeadTooLarge, or an *Error whose Status is
// 502, as ParseRequest does. Empty lines before the status line are not
// skipped.
//
// Framing follows RFC 9112 6.3: with Transfer-Encoding, chunked as the last
// coding makes the body chunked, and otherwise it is read until the
// connection closes; a Content-Length sent along with Transfer-Encoding is
// ignored, not forwarded, and makes KeepAlive false, as does
// Transfer-Encoding in an HTTP/1.0 response. Codings other than chunked,
// gzip, x-gzip, deflate, compress and x-compress, chunked listed twice, and
// differing or malformed Content-Length values are errors.
func ParseResponse(buf []byte, lim Limits, h *ResponseHead) error {
	*h = ResponseHead{ContentLength: -1}
	max := lim.max()
	w := buf
	if len(w) > max {
		w = w[:max]
	}
	line, next, _, ok := nextLine(w, 0)
	if !ok {
		// An answer that cannot become a status line is refused now,
		// rather than after the upstream times out.
		if k := min(len(w), len(statusPrefix)); string(w[:k]) != statusPrefix[:k] {
			return respErrs[eStartLine]
		}
		return short(len(buf), max)
	}
	if code := h.statusLine(line); code != eNone {
		return respErrs[code]
	}
	h.hdrOff = next
	i := next

	var (
		n                   int
		closeTok, keepAlive bool
		te                  codings
		l                   hdrLine
	)
	for {
		st, next, code := nextHeader(w, i, &n, &l)
		if st == stepMore {
			return short(len(buf), max)
		}
		if st == stepErr {
			return respErrs[code]
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
		case hContentLength:
			if code := contentLength(value, &h.ContentLength); code != eNone {
				return respErrs[code]
			}
		case hTransferEncoding:
			te.add(value)
		case hConnection:
			h.rewrite = true
			c, k := h.conn.add(buf, vs, ve)
			closeTok = closeTok || c
			keepAlive = keepAlive || k
		case hTE, hKeepAlive, hProxyConnection, hProxyAuthenticate, hProxyAuthorization,
			hTrailer, hUpgrade:
			h.rewrite = true
		}
		i = l.next
	}

	if h.Minor == 1 {
		h.KeepAlive = !closeTok
	} else {
		h.KeepAlive = keepAlive && !closeTok
	}
	if te.seen {
		switch {
		case te.unknown:
			return respErrs[eTECoding]
		case te.n == 0 || te.chunked > 1:
			return respErrs[eBadTE]
		}
		if h.ContentLength >= 0 {
			h.dropCL = true
			h.rewrite = true
			h.ContentLength = -1
			h.KeepAlive = false
		}
		if h.Minor == 0 {
			h.KeepAlive = false
		}
		h.Chunked = te.lastChunk
	}
	if h.Body(false) == UntilClose {
		h.KeepAlive = false
	}
	return nil
}

// statusLine parses "HTTP/1.x SP 3DIGIT [SP reason-phrase]"; a missing
// reason phrase, with or without its space, is accepted.
func (h *ResponseHead) statusLine(line []byte) errCode {
	if len(line) < 12 {
		return eStartLine
	}
	minor, code := parseVersion(line[:8])
	if code != eNone {
		return code
	}
	h.Minor = minor
	c := line[9:12]
	if line[8] != ' ' || !isDigit(c[0]) || !isDigit(c[1]) || !isDigit(c[2]) || c[0] == '0' {
		return eStartLine
	}
	h.Status = int(c[0]-'0')*100 + int(c[1]-'0')*10 + int(c[2]-'0')
	h.reasonOff, h.reasonEnd = 12, 12
	if len(line) > 12 {
		if line[12] != ' ' || !validValue(line[13:]) {
			return eStartLine
		}
		h.reasonOff, h.reasonEnd = 13, len(line)
	}
	return eNone
}

// BodyKind tells how a response body is framed.
type BodyKind int

const (
	None       BodyKind = iota // no body
	Length                     // ContentLength bytes, possibly 0
	Chunked                    // chunked transfer coding: use a ChunkedScanner
	UntilClose                 // everything until the upstream closes the connection
)

// Body tells how the body of the response is framed (RFC 9112 6.3), given
// whether the request was HEAD: None for HEAD requests and for 1xx, 204
// and 304 responses, then Chunked, Length, or UntilClose.
func (h *ResponseHead) Body(headRequest bool) BodyKind {
	switch {
	case headRequest, h.Status < 200, h.Status == 204, h.Status == 304:
		return None
	case h.Chunked:
		return Chunked
	case h.ContentLength >= 0:
		return Length
	}
	return UntilClose
}

// AppendResponse appends to dst the head to send to the client for the
// response whose head is buf[:h.Len], as parsed by ParseResponse into h:
// the status line "HTTP/1.1 <h.Status> <reason as sent>", the header lines
// as "Name: value" minus the hop-by-hop set AppendRequest drops
// (Connection, Keep-Alive, Proxy-Connection, Proxy-Authenticate,
// Proxy-Authorization, TE unless "trailers", Trailer, Upgrade, and the
// headers a Connection header names, never Content-Length or
// Transfer-Encoding), minus a Content-Length that Transfer-Encoding
// overrides; then "Connection: <connection>" unless connection is empty
// ("close", or "keep-alive" for an HTTP/1.0 client kept open), then the
// final "\r\n". For an UntilClose body the caller passes "close".
func AppendResponse(dst, buf []byte, h *ResponseHead, connection string) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(h.Status), 10)
	dst = append(dst, ' ')
	if h.reasonOff <= h.reasonEnd && h.reasonEnd <= len(buf) {
		dst = append(dst, buf[h.reasonOff:h.reasonEnd]...)
	}
	dst = append(dst, "\r\n"...)
	mode := forResponse
	if h.dropCL {
		mode |= forResponseNoCL
	}
	if connection == "upgrade" {
		// A 101 switching to the protocol the client asked for keeps its
		// Upgrade header (RFC 9110 7.8).
		mode |= forResponseUpgrade
	}
	if mode != forResponse || h.rewrite || h.hdrOff > h.hdrEnd || h.hdrEnd > len(buf) {
		dst = appendHeaders(dst, buf, h.hdrOff, h.hdrEnd, &h.conn, mode)
	} else {
		dst = append(dst, buf[h.hdrOff:h.hdrEnd]...)
	}
	if connection != "" {
		dst = append(dst, "Connection: "...)
		dst = append(dst, connection...)
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "\r\n"...)
}
