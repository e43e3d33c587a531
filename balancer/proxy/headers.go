package proxy

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"

	"github.com/valyala/fasthttp"
)

// hopHeaders are removed before forwarding, in both directions (RFC 9110
// 7.6.1, as net/http/httputil lists them). fasthttp manages Connection,
// Content-Length and Transfer-Encoding framing itself.
var hopHeaders = []string{
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
	keepTrailers := bytes.EqualFold(hdr.Peek("Te"), []byte("trailers"))
	removeHopHeaders(hdr.Peek("Connection"), hdr.Del, hdr.DelBytes)
	if keepTrailers {
		hdr.Set("Te", "trailers")
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

// prepareResponse removes hop-by-hop headers from the upstream's answer and
// keeps the client connection open unless the client asked otherwise.
func prepareResponse(resp *fasthttp.Response) {
	hdr := &resp.Header
	removeHopHeaders(hdr.Peek("Connection"), hdr.Del, hdr.DelBytes)
	hdr.ResetConnectionClose()
}

// removeHopHeaders deletes the headers named in a Connection value, the
// Connection header itself, and the fixed hop-by-hop list.
func removeHopHeaders(connection []byte, del func(string), delBytes func([]byte)) {
	if len(connection) > 0 {
		var names [8][]byte
		n := 0
		for tok := range bytes.SplitSeq(connection, []byte{','}) {
			tok = bytes.TrimSpace(tok)
			if len(tok) > 0 && n < len(names) {
				names[n] = tok
				n++
			}
		}
		// Copy first: connection points into the header being edited.
		var buf [256]byte
		for _, name := range names[:n] {
			delBytes(append(buf[:0], name...))
		}
		del("Connection")
	}
	for _, k := range hopHeaders {
		del(k)
	}
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
