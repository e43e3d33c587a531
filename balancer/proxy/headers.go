package proxy

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"

	"github.com/valyala/fasthttp"
)

// hopHeaders are removed before forwarding, in both directions (RFC 9110
// 7.6.1, as net/http/httputil lists them). fasthttp manages Content-Length
// and Transfer-Encoding framing itself.
var hopHeaders = []string{
	"Connection",
	"Keep-Alive",
	"Proxy-Connection",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Upgrade",
}

// prepareRequest turns the client's request into the upstream request, in
// place: hop-by-hop headers out, forwarding headers in, a request id kept
// or made. It allocates nothing in the common case.
func (h *Handler) prepareRequest(ctx *fasthttp.RequestCtx) {
	hdr := &ctx.Request.Header
	// The client's "Connection: close" is honoured by the server; upstream
	// connections stay pooled.
	hdr.ResetConnectionClose()
	if hasHopHeader(hdr.RawHeaders()) {
		removeRequestHopHeaders(hdr)
	}
	var buf [256]byte
	b := append(buf[:0], hdr.Peek("X-Forwarded-For")...)
	if len(b) > 0 {
		b = append(b, ", "...)
	}
	b = appendIP(b, ctx.RemoteIP())
	hdr.SetBytesV("X-Forwarded-For", b)
	hdr.Set("X-Forwarded-Proto", "http")
	hdr.SetBytesV("X-Forwarded-Host", hdr.Host())
	if len(hdr.Peek("X-Request-Id")) == 0 {
		hdr.SetBytesV("X-Request-Id", h.ids.next(buf[:0]))
	}
}

// removeRequestHopHeaders deletes the hop-by-hop headers of a request, and
// those its Connection header names, keeping "Te: trailers".
func removeRequestHopHeaders(hdr *fasthttp.RequestHeader) {
	keepTrailers := bytes.EqualFold(hdr.Peek("Te"), []byte("trailers"))
	var named hopNames
	named.parse(hdr.Peek("Connection"))
	for i := range named.n {
		hdr.DelBytes(named.name(i))
	}
	for _, k := range hopHeaders {
		hdr.Del(k)
	}
	if keepTrailers {
		hdr.Set("Te", "trailers")
	}
}

// hasHopHeader scans a raw header block for any hop-by-hop header name, so
// the common request without one skips the deletions: each Del normalizes
// its key and walks every header.
func hasHopHeader(raw []byte) bool {
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		name := bytes.TrimSpace(line[:colon])
		for _, h := range hopHeaders {
			if len(name) == len(h) && bytes.EqualFold(name, []byte(h)) {
				return true
			}
		}
	}
	return false
}

// prepareResponse removes hop-by-hop headers from the upstream's answer and
// keeps the client connection open unless the client asked otherwise.
//
// Its deletion loop repeats removeRequestHopHeaders' on purpose: a generic
// helper over both header types calls DelBytes through a dictionary, which
// moves hopNames to the heap (one allocation per request, measured by
// TestProxyGETAllocs).
func prepareResponse(resp *fasthttp.Response) {
	hdr := &resp.Header
	var named hopNames
	named.parse(hdr.Peek("Connection"))
	for i := range named.n {
		hdr.DelBytes(named.name(i))
	}
	for _, k := range hopHeaders {
		hdr.Del(k)
	}
	hdr.ResetConnectionClose()
}

// hopNames holds copies of the header names a Connection value lists, so
// they can be deleted from the header they point into. It lives on the
// caller's stack: offsets, not slices, keep it from pointing into itself.
type hopNames struct {
	buf  [256]byte
	end  [8]uint16
	n    int
	used int
}

func (h *hopNames) parse(connection []byte) {
	for tok := range bytes.SplitSeq(connection, []byte{','}) {
		tok = bytes.TrimSpace(tok)
		if len(tok) == 0 || h.n == len(h.end) || h.used+len(tok) > len(h.buf) {
			continue
		}
		h.used += copy(h.buf[h.used:], tok)
		h.end[h.n] = uint16(h.used)
		h.n++
	}
}

// name returns the i-th listed name.
func (h *hopNames) name(i int) []byte {
	start := 0
	if i > 0 {
		start = int(h.end[i-1])
	}
	return h.buf[start:h.end[i]]
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

// ambiguousFraming reports a request that carried both Content-Length and
// Transfer-Encoding. fasthttp reads such a request as chunked and marks the
// connection to close (RFC 9112 6.3); we refuse it outright, since a server
// behind another proxy could frame it differently. fasthttp rewrites the
// framing headers after reading the body, so the raw header block is
// scanned, and only for requests already marked to close.
func ambiguousFraming(h *fasthttp.RequestHeader) bool {
	if !h.ConnectionClose() {
		return false
	}
	var cl, te bool
	raw := h.RawHeaders()
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		cl = cl || hasName(line, "content-length:")
		te = te || hasName(line, "transfer-encoding:")
	}
	return cl && te
}

func hasName(line []byte, name string) bool {
	return len(line) >= len(name) && bytes.EqualFold(line[:len(name)], []byte(name))
}
