package wire

import (
	"strconv"
	"strings"
	"testing"
)

type reqWant struct {
	method, uri      string
	minor            int
	cl               int64
	chunked, ka      bool
	host, xff, id    string // "<nil>" when absent
	expect, idem, hd bool
}

func TestParseRequest(t *testing.T) {
	get := reqWant{method: "GET", uri: "/", minor: 1, cl: -1, ka: true, host: "a", xff: "<nil>", id: "<nil>", idem: true}
	with := func(f func(*reqWant)) reqWant { w := get; f(&w); return w }
	tests := []struct {
		name string
		in   string
		want reqWant
		err  error
	}{
		{"simple", crlf("GET / HTTP/1.1\nHost: a\n\n"), get, nil},
		{"lf only", "GET / HTTP/1.1\nHost: a\n\n", get, nil},
		{"mixed line ends", "GET / HTTP/1.1\r\nHost: a\n\r\n", get, nil},
		{"leading empty lines", crlf("\n\nGET / HTTP/1.1\nHost: a\n\n"), get, nil},
		{"leading bare lf", "\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", get, nil},
		{"leading cr alone", "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", get, e(400, "malformed request line")},
		{"host trimmed", crlf("GET / HTTP/1.1\nHost: \t a \t\n\n"), get, nil},
		{"host no space", crlf("GET / HTTP/1.1\nHost:a\n\n"), get, nil},
		{"no host", crlf("GET / HTTP/1.1\n\n"), get, e(400, "missing Host header")},
		{"no host with headers", crlf("GET / HTTP/1.1\nX-Host: a\nConnection: close\n\n"), get, e(400, "missing Host header")},
		{"no host absolute uri", crlf("GET http://b/c HTTP/1.1\n\n"), get, e(400, "missing Host header")},
		{"no host http/1.0", crlf("GET / HTTP/1.0\n\n"), with(func(w *reqWant) { w.minor, w.ka, w.host = 0, false, "<nil>" }), nil},
		{"no host http/1.0 keep-alive", crlf("GET / HTTP/1.0\nConnection: keep-alive\n\n"), with(func(w *reqWant) { w.minor, w.host = 0, "<nil>" }), nil},
		{"no host http/1.0 post", crlf("POST /p HTTP/1.0\nContent-Length: 3\n\n"), with(func(w *reqWant) {
			w.method, w.uri, w.minor, w.ka, w.host, w.cl, w.idem = "POST", "/p", 0, false, "<nil>", 3, false
		}), nil},
		{"empty host", crlf("GET / HTTP/1.1\nHost:\n\n"), get, e(400, "malformed Host header")},
		{"host with path", crlf("GET / HTTP/1.1\nHost: a/b\n\n"), get, e(400, "malformed Host header")},
		{"host with userinfo", crlf("GET / HTTP/1.1\nHost: u@a\n\n"), get, e(400, "malformed Host header")},
		{"host bad port", crlf("GET / HTTP/1.1\nHost: a:b\n\n"), get, e(400, "malformed Host header")},
		{"host empty port", crlf("GET / HTTP/1.1\nHost: a:\n\n"), get, e(400, "malformed Host header")},
		{"host only port", crlf("GET / HTTP/1.1\nHost: :80\n\n"), get, e(400, "malformed Host header")},
		{"host space inside", crlf("GET / HTTP/1.1\nHost: a b\n\n"), get, e(400, "malformed Host header")},
		{"host ipv6", crlf("GET / HTTP/1.1\nHost: [::1]:8080\n\n"), with(func(w *reqWant) { w.host = "[::1]:8080" }), nil},
		{"host ipv6 bad", crlf("GET / HTTP/1.1\nHost: [::g]\n\n"), get, e(400, "malformed Host header")},
		{"host port", crlf("GET / HTTP/1.1\nHost: example.com:443\n\n"), with(func(w *reqWant) { w.host = "example.com:443" }), nil},
		{"origin form without slash", crlf("GET foo HTTP/1.1\nHost: a\n\n"), get, e(400, "malformed request target")},
		{"asterisk not options", crlf("GET * HTTP/1.1\nHost: a\n\n"), get, e(400, "malformed request target")},
		{"connect", crlf("CONNECT a:443 HTTP/1.1\nHost: a:443\n\n"), get, e(405, "CONNECT is not supported: this is not a forward proxy")},
		{"absolute other scheme", crlf("GET ftp://b/c HTTP/1.1\nHost: a\n\n"), get, e(400, "malformed request target")},
		{"absolute userinfo", crlf("GET http://u:p@b/c HTTP/1.1\nHost: a\n\n"), get, e(400, "malformed request target")},
		{"absolute empty authority", crlf("GET http:///c HTTP/1.1\nHost: a\n\n"), get, e(400, "malformed request target")},
		{"absolute no path", crlf("GET HTTPS://B:8443?q=1 HTTP/1.1\nHost: a\n\n"), with(func(w *reqWant) { w.uri, w.host = "?q=1", "B:8443" }), nil},
		{"two hosts", crlf("GET / HTTP/1.1\nHost: a\nhost: b\n\n"), get, e(400, "multiple Host headers")},
		{"head", crlf("HEAD /x?y=1 HTTP/1.1\nHost: a\n\n"), with(func(w *reqWant) { w.method, w.uri, w.hd = "HEAD", "/x?y=1", true }), nil},
		{"options", crlf("OPTIONS * HTTP/1.1\nHost: a\n\n"), with(func(w *reqWant) { w.method, w.uri = "OPTIONS", "*" }), nil},
		{"trace", crlf("TRACE / HTTP/1.1\nHost: a\n\n"), with(func(w *reqWant) { w.method = "TRACE" }), nil},
		{"post", crlf("POST /p HTTP/1.1\nHost: a\nContent-Length: 12\n\n"), with(func(w *reqWant) { w.method, w.uri, w.cl, w.idem = "POST", "/p", 12, false }), nil},
		{"lower get is not idempotent", crlf("get / HTTP/1.1\nHost: a\n\n"), with(func(w *reqWant) { w.method, w.idem = "get", false }), nil},
		{"lower head is not head", crlf("head / HTTP/1.1\nHost: a\n\n"), with(func(w *reqWant) { w.method, w.idem = "head", false }), nil},
		{"extension method", crlf("M-SEARCH! / HTTP/1.1\nHost: a\n\n"), with(func(w *reqWant) { w.method, w.idem = "M-SEARCH!", false }), nil},
		{"absolute uri", crlf("GET http://b/c HTTP/1.1\nHost: a\n\n"), with(func(w *reqWant) { w.uri, w.host = "/c", "b" }), nil},
		{"utf8 uri", crlf("GET /\xc3\xa9 HTTP/1.1\nHost: a\n\n"), get, e(400, "malformed request line")},
		{"obs-text value", crlf("GET / HTTP/1.1\nHost: a\nX-A: \xff\x80\n\n"), get, nil},
		{"tab in value", crlf("GET / HTTP/1.1\nHost: a\nX-A: a\tb\n\n"), get, nil},

		// Request line.
		{"http/1.0", crlf("GET / HTTP/1.0\nHost: a\n\n"), with(func(w *reqWant) { w.minor, w.ka = 0, false }), nil},
		{"http/1.0 keep-alive", crlf("GET / HTTP/1.0\nHost: a\nConnection: Keep-Alive\n\n"), with(func(w *reqWant) { w.minor = 0 }), nil},
		{"http/1.0 keep-alive and close", crlf("GET / HTTP/1.0\nHost: a\nConnection: keep-alive, close\n\n"), with(func(w *reqWant) { w.minor, w.ka = 0, false }), nil},
		{"close", crlf("GET / HTTP/1.1\nHost: a\nConnection: CLOSE\n\n"), with(func(w *reqWant) { w.ka = false }), nil},
		{"close in list", crlf("GET / HTTP/1.1\nHost: a\nConnection: x-a\nConnection: foo ,close\n\n"), with(func(w *reqWant) { w.ka = false }), nil},
		{"http/1.2", crlf("GET / HTTP/1.2\nHost: a\n\n"), get, e(505, "http version not supported")},
		{"http/2.0", crlf("GET / HTTP/2.0\nHost: a\n\n"), get, e(505, "http version not supported")},
		{"http/0.9", crlf("GET / HTTP/0.9\nHost: a\n\n"), get, e(505, "http version not supported")},
		{"http/1.10", crlf("GET / HTTP/1.10\nHost: a\n\n"), get, e(400, "malformed request line")},
		{"lower http", crlf("GET / http/1.1\nHost: a\n\n"), get, e(400, "malformed request line")},
		{"http2 preface", crlf("PRI * HTTP/2.0\n\nSM\n\n"), get, e(505, "http version not supported")},
		{"no version", crlf("GET /\nHost: a\n\n"), get, e(400, "malformed request line")},
		{"no uri", crlf("GET  HTTP/1.1\nHost: a\n\n"), get, e(400, "malformed request line")},
		{"two spaces", crlf("GET  / HTTP/1.1\nHost: a\n\n"), get, e(400, "malformed request line")},
		{"trailing space", crlf("GET / HTTP/1.1 \nHost: a\n\n"), get, e(400, "malformed request line")},
		{"space in uri", crlf("GET /a b HTTP/1.1\nHost: a\n\n"), get, e(400, "malformed request line")},
		{"tab separator", crlf("GET\t/ HTTP/1.1\nHost: a\n\n"), get, e(400, "malformed request line")},
		{"ctl in uri", crlf("GET /\x01 HTTP/1.1\nHost: a\n\n"), get, e(400, "malformed request line")},
		{"del in uri", crlf("GET /\x7f HTTP/1.1\nHost: a\n\n"), get, e(400, "malformed request line")},
		{"bad method", crlf("G(T / HTTP/1.1\nHost: a\n\n"), get, e(400, "malformed request line")},
		{"empty method", crlf(" / HTTP/1.1\nHost: a\n\n"), get, e(400, "malformed request line")},
		{"cr in request line", "GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", get, e(400, "malformed request line")},
		{"garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n", get, e(400, "malformed request line")},

		// Header lines.
		{"space before colon", crlf("GET / HTTP/1.1\nHost : a\n\n"), get, e(400, "malformed header line")},
		{"no colon", crlf("GET / HTTP/1.1\nHost a\n\n"), get, e(400, "malformed header line")},
		{"empty name", crlf("GET / HTTP/1.1\n: a\n\n"), get, e(400, "malformed header line")},
		{"bad name char", crlf("GET / HTTP/1.1\nX(a): a\n\n"), get, e(400, "malformed header line")},
		{"obs fold", crlf("GET / HTTP/1.1\nHost: a\nX-A: b\n c\n\n"), get, e(400, "obsolete line folding")},
		{"obs fold tab", crlf("GET / HTTP/1.1\nHost: a\nX-A: b\n\tc\n\n"), get, e(400, "obsolete line folding")},
		{"space after request line", crlf("GET / HTTP/1.1\n Host: a\n\n"), get, e(400, "obsolete line folding")},
		{"nul in value", crlf("GET / HTTP/1.1\nHost: a\nX-A: a\x00b\n\n"), get, e(400, "control character in header")},
		{"cr in value", crlf("GET / HTTP/1.1\nHost: a\nX-A: a\rb\n\n"), get, e(400, "control character in header")},
		{"del in value", crlf("GET / HTTP/1.1\nHost: a\nX-A: abcdefghijklmnop\x7f\n\n"), get, e(400, "control character in header")},
		{"esc in long value", crlf("GET / HTTP/1.1\nHost: a\nX-A: abcdefghijklmnop\x1bqrstuvwxyz\n\n"), get, e(400, "control character in header")},
		{"cr cr lf", "GET / HTTP/1.1\r\nHost: a\r\r\n\r\n", get, e(400, "control character in header")},
		{"lone cr line", "GET / HTTP/1.1\r\nHost: a\r\n\r\r\n\r\n", get, e(400, "malformed header line")},

		// Content-Length.
		{"cl zero", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 0\n\n"), with(func(w *reqWant) { w.method, w.cl, w.idem = "POST", 0, false }), nil},
		{"cl case", crlf("POST / HTTP/1.1\nHost: a\ncOnTeNt-LeNgTh: 5\n\n"), with(func(w *reqWant) { w.method, w.cl, w.idem = "POST", 5, false }), nil},
		{"cl repeated same", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 5\nContent-Length: 5\n\n"), get, e(400, "conflicting Content-Length")},
		{"cl repeated same case", crlf("POST / HTTP/1.1\nHost: a\ncontent-length: 0\nCONTENT-LENGTH: 0\n\n"), get, e(400, "conflicting Content-Length")},
		{"cl repeated same apart", crlf("POST / HTTP/1.1\nContent-Length: 5\nHost: a\nContent-Length: 5\n\n"), get, e(400, "conflicting Content-Length")},
		{"cl list same", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 5 , 5,5\n\n"), get, e(400, "conflicting Content-Length")},
		{"cl list same two", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 5,5\n\n"), get, e(400, "conflicting Content-Length")},
		{"cl repeated same http/1.0", crlf("POST / HTTP/1.0\nContent-Length: 5\nContent-Length: 5\n\n"), get, e(400, "conflicting Content-Length")},
		{"cl repeated before missing host", crlf("POST / HTTP/1.1\nContent-Length: 5\nContent-Length: 5\n\n"), get, e(400, "conflicting Content-Length")},
		{"cl max", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 9223372036854775807\n\n"), with(func(w *reqWant) { w.method, w.cl, w.idem = "POST", 1<<63-1, false }), nil},
		{"cl leading zeros", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 007\n\n"), with(func(w *reqWant) { w.method, w.cl, w.idem = "POST", 7, false }), nil},
		{"cl differing", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 5\nContent-Length: 6\n\n"), get, e(400, "conflicting Content-Length")},
		{"cl list differing", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 5, 6\n\n"), get, e(400, "conflicting Content-Length")},
		{"cl overflow", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 9223372036854775808\n\n"), get, e(400, "bad Content-Length")},
		{"cl negative", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: -1\n\n"), get, e(400, "bad Content-Length")},
		{"cl plus", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: +1\n\n"), get, e(400, "bad Content-Length")},
		{"cl hex", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 0x10\n\n"), get, e(400, "bad Content-Length")},
		{"cl empty", crlf("POST / HTTP/1.1\nHost: a\nContent-Length:\n\n"), get, e(400, "bad Content-Length")},
		// The comma is refused before the elements are looked at.
		{"cl empty element", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 5,\n\n"), get, e(400, "conflicting Content-Length")},
		{"cl only comma", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: ,\n\n"), get, e(400, "conflicting Content-Length")},
		{"cl bad then repeated", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: x\nContent-Length: 5\n\n"), get, e(400, "bad Content-Length")},
		{"cl inner space", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 1 2\n\n"), get, e(400, "bad Content-Length")},

		// Transfer-Encoding.
		{"chunked", crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n"), with(func(w *reqWant) { w.method, w.chunked, w.idem = "POST", true, false }), nil},
		{"chunked case", crlf("POST / HTTP/1.1\nHost: a\ntransfer-encoding: ChUnKeD\n\n"), with(func(w *reqWant) { w.method, w.chunked, w.idem = "POST", true, false }), nil},
		{"chunked with empty elements", crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: ,\nTransfer-Encoding: , chunked ,\n\n"), get, e(400, "malformed Transfer-Encoding")},
		{"chunked trailing comma", crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked,\n\n"), get, e(400, "malformed Transfer-Encoding")},
		{"chunked leading comma", crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: ,chunked\n\n"), get, e(400, "malformed Transfer-Encoding")},
		{"chunked spaced commas", crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked , ,\n\n"), get, e(400, "malformed Transfer-Encoding")},
		{"chunked upper case", crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: CHUNKED\n\n"), with(func(w *reqWant) { w.method, w.chunked, w.idem = "POST", true, false }), nil},
		{"chunked twice", crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\nTransfer-Encoding: chunked\n\n"), get, e(400, "malformed Transfer-Encoding")},
		{"chunked twice in list", crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked, chunked\n\n"), get, e(400, "malformed Transfer-Encoding")},
		{"te empty", crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding:\n\n"), get, e(400, "malformed Transfer-Encoding")},
		{"te gzip", crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: gzip, chunked\n\n"), get, e(501, "unsupported transfer coding")},
		{"te identity", crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: identity\n\n"), get, e(501, "unsupported transfer coding")},
		{"te chunked params", crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked;x=1\n\n"), get, e(501, "unsupported transfer coding")},
		{"te chunked-false", crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: xchunked\n\n"), get, e(501, "unsupported transfer coding")},
		{"te in http/1.0", crlf("POST / HTTP/1.0\nHost: a\nTransfer-Encoding: chunked\n\n"), get, e(400, "Transfer-Encoding in HTTP/1.0 request")},
		{"cl and te", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 5\nTransfer-Encoding: chunked\n\n"), get, e(400, "both Content-Length and Transfer-Encoding")},
		{"te and cl", crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\nContent-Length: 5\n\n"), get, e(400, "both Content-Length and Transfer-Encoding")},
		{"te gzip and cl", crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: gzip\nContent-Length: 5\n\n"), get, e(400, "both Content-Length and Transfer-Encoding")},

		// Forwarding headers, Expect.
		{"xff", crlf("GET / HTTP/1.1\nHost: a\nX-Forwarded-For:  1.1.1.1, 2.2.2.2 \n\n"), with(func(w *reqWant) { w.xff = "1.1.1.1, 2.2.2.2" }), nil},
		{"xff first of two", crlf("GET / HTTP/1.1\nHost: a\nx-forwarded-for: 1.1.1.1\nX-Forwarded-For: 2.2.2.2\n\n"), with(func(w *reqWant) { w.xff = "1.1.1.1" }), nil},
		{"request id", crlf("GET / HTTP/1.1\nHost: a\nX-REQUEST-ID: abc\n\n"), with(func(w *reqWant) { w.id = "abc" }), nil},
		{"expect", crlf("PUT / HTTP/1.1\nHost: a\nContent-Length: 1\nExpect: 100-Continue\n\n"), with(func(w *reqWant) { w.method, w.cl, w.expect, w.idem = "PUT", 1, true, false }), nil},
		{"expect other", crlf("GET / HTTP/1.1\nHost: a\nExpect: 200-ok\n\n"), get, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h RequestHead
			buf := []byte(tt.in + "BODY")
			err := ParseRequest(buf, Limits{}, &h)
			checkErr(t, err, tt.err)
			if err != nil {
				return
			}
			w := tt.want
			got := reqWant{str(h.Method), str(h.URI), h.Minor, h.ContentLength, h.Chunked, h.KeepAlive,
				str(h.Host), str(h.ForwardedFor), str(h.RequestID), h.ExpectContinue, h.Idempotent, h.Head}
			if got != w {
				t.Errorf("got  %+v\nwant %+v", got, w)
			}
			if h.Len != len(tt.in) {
				t.Errorf("Len = %d, want %d", h.Len, len(tt.in))
			}
		})
	}
}

// validRequests are heads ParseRequest accepts, used by several tests.
var validRequests = []string{
	crlf("GET / HTTP/1.1\nHost: a\n\n"),
	"GET /lf HTTP/1.1\nHost: a\nX-A: b\n\n",
	crlf("\nGET /leading HTTP/1.1\nHost: a\n\n"),
	crlf("GET / HTTP/1.0\n\n"),
	crlf("POST /upload?x=1 HTTP/1.1\nHost: example.com:8080\nContent-Length: 11\nContent-Type: text/plain\n\n"),
	crlf("POST /c HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\nTE: trailers\nConnection: TE, x-hop\nX-Hop: 1\n\n"),
	crlf("GET /x HTTP/1.1\nHost: a\nUser-Agent: curl/8.0\nAccept: */*\nX-Forwarded-For: 1.2.3.4\nX-Request-Id: r1\nConnection: keep-alive\n\n"),
	crlf("HEAD /h HTTP/1.1\nhost:   spaced   \nX-Empty:\nX-Tab:\tv\t\n\n"),
	crlf("PUT /p HTTP/1.1\nHost: a\nContent-Length: 3\nExpect: 100-continue\n\n"),
	crlf("GET /k HTTP/1.0\nConnection: keep-alive\nAccept: */*\n\n"),
	crlf("POST /ten HTTP/1.0\nHost: a\nContent-Length: 2\nConnection: close\n\n"),
	crlf("OPTIONS * HTTP/1.1\nHost: a\nProxy-Authorization: Basic eA==\nUpgrade: websocket\n\n"),
}

func TestParseRequestPrefixes(t *testing.T) {
	for _, in := range validRequests {
		buf := []byte(in)
		var h RequestHead
		for n := 0; n < len(buf); n++ {
			if err := ParseRequest(buf[:n], Limits{}, &h); err != ErrIncomplete {
				t.Fatalf("%q: prefix %d: error %v, want ErrIncomplete", in, n, err)
			}
		}
		if err := ParseRequest(buf, Limits{}, &h); err != nil || h.Len != len(buf) {
			t.Fatalf("%q: error %v, Len %d", in, err, h.Len)
		}
		// A pipelined request or body after the head does not change it.
		more := append(buf[:len(buf):len(buf)], in...)
		if err := ParseRequest(more, Limits{}, &h); err != nil || h.Len != len(buf) {
			t.Fatalf("%q: followed: error %v, Len %d", in, err, h.Len)
		}
	}
}

// TestParseRequestEarlyErrors checks when a refused head is reported: a
// repeated Content-Length as soon as its line is complete, a missing Host
// only once the whole head is there.
func TestParseRequestEarlyErrors(t *testing.T) {
	tests := []struct {
		in  string
		bad int // length of the shortest prefix refused
		err error
	}{
		{crlf("PUT /p HTTP/1.1\nHost: a\nContent-Length: 3, 3\nExpect: 100-continue\n\n"),
			len(crlf("PUT /p HTTP/1.1\nHost: a\nContent-Length: 3, 3\n")), e(400, "conflicting Content-Length")},
		{"PUT /p HTTP/1.1\nHost: a\nContent-Length: 3\nContent-Length: 3\nX: 1\n\n",
			len("PUT /p HTTP/1.1\nHost: a\nContent-Length: 3\nContent-Length: 3\n"), e(400, "conflicting Content-Length")},
		{crlf("GET / HTTP/1.1\nAccept: */*\nX-Host: a\n\n"),
			len(crlf("GET / HTTP/1.1\nAccept: */*\nX-Host: a\n\n")), e(400, "missing Host header")},
	}
	for _, tt := range tests {
		buf := []byte(tt.in)
		var h RequestHead
		for n := 0; n < tt.bad; n++ {
			if err := ParseRequest(buf[:n], Limits{}, &h); err != ErrIncomplete {
				t.Fatalf("%q: prefix %d: error %v, want ErrIncomplete", tt.in, n, err)
			}
		}
		for n := tt.bad; n <= len(buf); n++ {
			checkErr(t, ParseRequest(buf[:n], Limits{}, &h), tt.err)
		}
	}
}

func TestParseRequestMaxHead(t *testing.T) {
	head := crlf("GET / HTTP/1.1\nHost: a\n\n")
	n := len(head)
	var h RequestHead
	tests := []struct {
		buf string
		max int
		err error
	}{
		{head, n, nil},
		{head + "xxxx", n, nil},
		{head, n - 1, ErrHeadTooLarge},
		{head + "xxxx", n - 1, ErrHeadTooLarge},
		{head[:n-1], n, ErrIncomplete},
		{head[:n-1], n - 1, ErrHeadTooLarge},
		{head[:n-2], n, ErrIncomplete},
		{"\r\n\r\n\r\n\r\n", 8, ErrHeadTooLarge},
		{"\r\n\r\n\r\n\r", 8, ErrIncomplete},
		{"\r\n\r\n\r\n\r\n", 7, ErrHeadTooLarge},
		{"GET / HTTP/1.1\r\n", 10, ErrHeadTooLarge},
	}
	for _, tt := range tests {
		err := ParseRequest([]byte(tt.buf), Limits{MaxHead: tt.max}, &h)
		if err != tt.err {
			t.Errorf("%q max %d: error %v, want %v", tt.buf, tt.max, err, tt.err)
		}
	}
	// The default limit is 64 KiB.
	big := "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("a", 64<<10) + "\r\n\r\n"
	if err := ParseRequest([]byte(big), Limits{}, &h); err != ErrHeadTooLarge {
		t.Errorf("64 KiB header: %v", err)
	}
	if err := ParseRequest([]byte(big[:60<<10]), Limits{}, &h); err != ErrIncomplete {
		t.Errorf("60 KiB prefix: %v", err)
	}
	if err := ParseRequest([]byte(big), Limits{MaxHead: 1 << 20}, &h); err != nil {
		t.Errorf("1 MiB limit: %v", err)
	}
}

func TestParseRequestTooManyHeaders(t *testing.T) {
	// head has n header lines, Host included.
	head := func(n int) []byte {
		var b strings.Builder
		b.WriteString("GET / HTTP/1.1\r\nHost: a\r\n")
		for i := range n - 1 {
			b.WriteString("X-" + strconv.Itoa(i) + ": v\r\n")
		}
		b.WriteString("\r\n")
		return []byte(b.String())
	}
	var h RequestHead
	if err := ParseRequest(head(256), Limits{}, &h); err != nil {
		t.Fatalf("256 headers: %v", err)
	}
	checkErr(t, ParseRequest(head(257), Limits{}, &h), e(431, "too many headers"))
	// Reported before the head is complete.
	b := head(300)
	checkErr(t, ParseRequest(b[:len(b)-10], Limits{}, &h), e(431, "too many headers"))
}

func TestParseRequestResets(t *testing.T) {
	var h RequestHead
	if err := ParseRequest([]byte(crlf("POST / HTTP/1.1\nHost: a\nX-Forwarded-For: x\nConnection: foo\nContent-Length: 3\n\n")), Limits{}, &h); err != nil {
		t.Fatal(err)
	}
	if err := ParseRequest([]byte(crlf("GET / HTTP/1.0\n\n")), Limits{}, &h); err != nil {
		t.Fatal(err)
	}
	if h.ContentLength != -1 || h.Host != nil || h.ForwardedFor != nil || h.conn.n != 0 || h.rewrite || h.KeepAlive {
		t.Fatalf("state left over: %+v", h)
	}
}

func TestAppendRequest(t *testing.T) {
	fwd := Forward{ClientIP: []byte("10.0.0.9"), Proto: "http", RequestID: []byte("gen-1")}
	fwdHost := fwd
	fwdHost.Host = []byte("192.0.2.1:8080")
	tail := "X-Forwarded-For: 10.0.0.9\nX-Forwarded-Proto: http\nX-Forwarded-Host: a\nX-Request-Id: gen-1\n\n"
	tests := []struct {
		name string
		in   string
		f    Forward
		want string
	}{
		{"plain", "GET / HTTP/1.1\nHost: a\nAccept: */*\n\n", fwd,
			"GET / HTTP/1.1\nHost: a\nAccept: */*\n" + tail},
		{"http/1.0 goes upstream as 1.0 keep-alive", "GET /x HTTP/1.0\nHost: a\n\n", fwd,
			"GET /x HTTP/1.0\nConnection: keep-alive\nHost: a\n" + tail},
		{"http/1.0 keep-alive not repeated", "GET /x HTTP/1.0\nHost: a\nConnection: Keep-Alive\nKeep-Alive: timeout=5\nX-A: 1\n\n", fwd,
			"GET /x HTTP/1.0\nConnection: keep-alive\nHost: a\nX-A: 1\n" + tail},
		{"http/1.0 close not forwarded", "POST /x HTTP/1.0\nHost: a\nConnection: close, x-hop\nX-Hop: 1\nContent-Length: 2\n\n", fwd,
			"POST /x HTTP/1.0\nConnection: keep-alive\nHost: a\nContent-Length: 2\n" + tail},
		{"values trimmed, names as sent", "GET / HTTP/1.1\nhOsT:a\nX-A:\t b c \t\nX-Empty:\nX-B: ok\n\n", fwd,
			"GET / HTTP/1.1\nhOsT: a\nX-A: b c\nX-Empty: \nX-B: ok\n" + tail},
		{"hop-by-hop removed", "GET / HTTP/1.1\nHost: a\nConnection: keep-alive\nKeep-Alive: timeout=5\nProxy-Connection: keep-alive\n" +
			"Proxy-Authenticate: x\nProxy-Authorization: y\nTE: gzip\nTrailer: X-T\nUpgrade: h2c\nX-Keep: 1\n\n", fwd,
			"GET / HTTP/1.1\nHost: a\nX-Keep: 1\n" + tail},
		{"hop-by-hop any case", "GET / HTTP/1.1\nHost: a\nCONNECTION: close\nkeep-alive: 1\nPROXY-connection: x\nte: gzip\nUPGRADE: x\n\n", fwd,
			"GET / HTTP/1.1\nHost: a\n" + tail},
		{"te trailers kept", "GET / HTTP/1.1\nHost: a\nTE: Trailers\nConnection: TE\n\n", fwd,
			"GET / HTTP/1.1\nHost: a\nTE: Trailers\n" + tail},
		{"connection-named headers", "GET / HTTP/1.1\nHost: a\nX-Hop: 1\nConnection: x-hop, X-OTHER\nx-other: 2\nX-Kept: 3\n\n", fwd,
			"GET / HTTP/1.1\nHost: a\nX-Kept: 3\n" + tail},
		{"connection-named across headers", "GET / HTTP/1.1\nHost: a\nConnection: a1\nconnection: A2 , ,a3\nA1: 1\na2: 2\nA3: 3\nA4: 4\n\n", fwd,
			"GET / HTTP/1.1\nHost: a\nA4: 4\n" + tail},
		{"connection cannot drop framing", "POST / HTTP/1.1\nHost: a\nContent-Length: 2\nConnection: Content-Length, Host, Transfer-Encoding\n\n", fwd,
			"POST / HTTP/1.1\nHost: a\nContent-Length: 2\n" + tail},
		{"transfer-encoding written as chunked", "POST / HTTP/1.1\nHost: a\nTransfer-Encoding:  Chunked\nContent-Type: x\n\n", fwd,
			"POST / HTTP/1.1\nHost: a\nContent-Type: x\nTransfer-Encoding: chunked\n" + tail},
		{"absolute form to origin form", "GET http://b:81/c?d HTTP/1.1\nHost: a\nAccept: x\n\n", fwd,
			"GET /c?d HTTP/1.1\nHost: b:81\nAccept: x\nX-Forwarded-For: 10.0.0.9\nX-Forwarded-Proto: http\nX-Forwarded-Host: b:81\nX-Request-Id: gen-1\n\n"},
		{"absolute form without path", "GET http://b?d HTTP/1.1\nHost: a\n\n", fwd,
			"GET /?d HTTP/1.1\nHost: b\nX-Forwarded-For: 10.0.0.9\nX-Forwarded-Proto: http\nX-Forwarded-Host: b\nX-Request-Id: gen-1\n\n"},
		{"xff appended", "GET / HTTP/1.1\nHost: a\nX-Forwarded-For: 1.1.1.1, 2.2.2.2\nX-Forwarded-Proto: https\nX-Forwarded-Host: evil\n\n", fwd,
			"GET / HTTP/1.1\nHost: a\nX-Forwarded-For: 1.1.1.1, 2.2.2.2, 10.0.0.9\nX-Forwarded-Proto: http\nX-Forwarded-Host: a\nX-Request-Id: gen-1\n\n"},
		{"second xff dropped", "GET / HTTP/1.1\nHost: a\nX-Forwarded-For: 1.1.1.1\nx-forwarded-for: 2.2.2.2\n\n", fwd,
			"GET / HTTP/1.1\nHost: a\nX-Forwarded-For: 1.1.1.1, 10.0.0.9\nX-Forwarded-Proto: http\nX-Forwarded-Host: a\nX-Request-Id: gen-1\n\n"},
		{"empty xff", "GET / HTTP/1.1\nHost: a\nX-Forwarded-For:\n\n", fwd,
			"GET / HTTP/1.1\nHost: a\n" + tail},
		{"request id kept", "GET / HTTP/1.1\nHost: a\nx-request-id:  client-7 \n\n", fwd,
			"GET / HTTP/1.1\nHost: a\nX-Forwarded-For: 10.0.0.9\nX-Forwarded-Proto: http\nX-Forwarded-Host: a\nX-Request-Id: client-7\n\n"},
		{"empty request id replaced", "GET / HTTP/1.1\nHost: a\nX-Request-Id:\n\n", fwd,
			"GET / HTTP/1.1\nHost: a\n" + tail},
		{"no host no forwarded host", "GET / HTTP/1.0\nAccept: x\n\n", fwd,
			"GET / HTTP/1.0\nConnection: keep-alive\nAccept: x\nX-Forwarded-For: 10.0.0.9\nX-Forwarded-Proto: http\nX-Request-Id: gen-1\n\n"},
		{"no host, forward host added", "GET / HTTP/1.0\nAccept: x\n\n", fwdHost,
			"GET / HTTP/1.0\nConnection: keep-alive\nHost: 192.0.2.1:8080\nAccept: x\nX-Forwarded-For: 10.0.0.9\nX-Forwarded-Proto: http\nX-Request-Id: gen-1\n\n"},
		{"no host, forward host added, headers rewritten", "GET / HTTP/1.0\nConnection: keep-alive, x-hop\nX-Hop: 1\nX-Forwarded-Host: evil\nAccept:x\n\n", fwdHost,
			"GET / HTTP/1.0\nConnection: keep-alive\nHost: 192.0.2.1:8080\nAccept: x\nX-Forwarded-For: 10.0.0.9\nX-Forwarded-Proto: http\nX-Request-Id: gen-1\n\n"},
		{"no host, only forward host", "GET / HTTP/1.0\n\n", Forward{Host: []byte("h")},
			"GET / HTTP/1.0\nConnection: keep-alive\nHost: h\n\n"},
		{"forward host unused with host", "GET / HTTP/1.1\nAccept: x\nHost: a\n\n", fwdHost,
			"GET / HTTP/1.1\nAccept: x\nHost: a\n" + tail},
		{"forward host unused with http/1.0 host", "GET / HTTP/1.0\nHost: a\n\n", fwdHost,
			"GET / HTTP/1.0\nConnection: keep-alive\nHost: a\n" + tail},
		{"empty forward host", "GET / HTTP/1.0\nAccept: x\n\n", Forward{Host: []byte{}},
			"GET / HTTP/1.0\nConnection: keep-alive\nAccept: x\n\n"},
		{"empty forward", "GET / HTTP/1.1\nHost: a\n\n", Forward{},
			"GET / HTTP/1.1\nHost: a\nX-Forwarded-Host: a\n\n"},
		{"empty forward keeps xff", "GET / HTTP/1.1\nHost: a\nX-Forwarded-For: 1.1.1.1\n\n", Forward{},
			"GET / HTTP/1.1\nHost: a\nX-Forwarded-For: 1.1.1.1\nX-Forwarded-Host: a\n\n"},
		{"leading empty lines dropped", "\n\nDELETE /d HTTP/1.1\nHost: a\n\n", fwd,
			"DELETE /d HTTP/1.1\nHost: a\n" + tail},
	}
	for _, tt := range tests {
		for _, lineEnd := range []string{"\r\n", "\n"} {
			in := strings.ReplaceAll(tt.in, "\n", lineEnd)
			t.Run(tt.name+"/"+strconv.Quote(lineEnd), func(t *testing.T) {
				var h RequestHead
				buf := []byte(in + "body")
				if err := ParseRequest(buf, Limits{}, &h); err != nil {
					t.Fatal(err)
				}
				got := string(AppendRequest(nil, buf, &h, tt.f))
				if want := crlf(tt.want); got != want {
					t.Errorf("got\n%q\nwant\n%q", got, want)
				}
			})
		}
	}
}

// TestAppendRequestManyConnectionTokens checks the path for more
// Connection tokens than a head remembers.
func TestAppendRequestManyConnectionTokens(t *testing.T) {
	var in, want strings.Builder
	in.WriteString("GET / HTTP/1.1\r\nHost: a\r\nConnection: close")
	want.WriteString("GET / HTTP/1.1\r\nHost: a\r\n")
	for i := range 40 {
		in.WriteString(", x-" + strconv.Itoa(i))
	}
	in.WriteString("\r\n")
	for i := range 45 {
		in.WriteString("X-" + strconv.Itoa(i) + ": v\r\n")
		if i >= 40 {
			want.WriteString("X-" + strconv.Itoa(i) + ": v\r\n")
		}
	}
	in.WriteString("Close: 1\r\n\r\n")
	want.WriteString("X-Forwarded-Host: a\r\n\r\n")
	var h RequestHead
	buf := []byte(in.String())
	if err := ParseRequest(buf, Limits{}, &h); err != nil {
		t.Fatal(err)
	}
	if !h.conn.more || h.KeepAlive {
		t.Fatalf("more = %v, KeepAlive = %v", h.conn.more, h.KeepAlive)
	}
	if got := string(AppendRequest(nil, buf, &h, Forward{})); got != want.String() {
		t.Errorf("got\n%q\nwant\n%q", got, want.String())
	}
}

// TestAppendRequestRewrittenURI checks that Method and URI come from h.
func TestAppendRequestRewrittenURI(t *testing.T) {
	var h RequestHead
	buf := []byte(crlf("GET /api/x HTTP/1.1\nHost: a\n\n"))
	if err := ParseRequest(buf, Limits{}, &h); err != nil {
		t.Fatal(err)
	}
	h.URI = []byte("/x")
	got := string(AppendRequest(nil, buf, &h, Forward{}))
	if want := crlf("GET /x HTTP/1.1\nHost: a\nX-Forwarded-Host: a\n\n"); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestErrorString(t *testing.T) {
	if got := (&Error{400, "bad Content-Length"}).Error(); got != "400 bad Content-Length" {
		t.Errorf("Error() = %q", got)
	}
}

func TestValidValue(t *testing.T) {
	for i := range 256 {
		c := byte(i)
		want := c >= 0x20 && c != 0x7f || c == '\t'
		for pos := range 20 {
			b := []byte(strings.Repeat("a", 20))
			b[pos] = c
			if got := validValue(b); got != want {
				t.Fatalf("byte %#x at %d: %v, want %v", c, pos, got, want)
			}
		}
	}
	if !validValue([]byte("\x80\xff\t\t\t\t\t\t\t\t ~~~~~~~~")) {
		t.Fatal("valid bytes refused")
	}
}

func TestHeaderAndCookieLookup(t *testing.T) {
	buf := []byte("GET / HTTP/1.1\r\nHost: a\r\nX-Session:  s-1 \r\nCookie: a=1; procbal_sticky=w2.abc;b=3\r\n" +
		"cookie: c=4\r\n\r\n")
	var h RequestHead
	if err := ParseRequest(buf, Limits{}, &h); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ got, want string }{
		{string(h.Header(buf, "x-session")), "s-1"},
		{string(h.Header(buf, "X-SESSION")), "s-1"},
		{string(h.Header(buf, "X-None")), ""},
		{string(h.Cookie(buf, "procbal_sticky")), "w2.abc"},
		{string(h.Cookie(buf, "b")), "3"},
		{string(h.Cookie(buf, "c")), "4"},
		{string(h.Cookie(buf, "procbal")), ""},
		{string(h.Cookie(buf, "A")), ""},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { h.Cookie(buf, "b"); h.Header(buf, "x-session") }); n != 0 {
		t.Errorf("%v allocations per lookup", n)
	}
}
