package wire

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
)

// stdlibRequests are valid requests read by both ParseRequest and
// net/http's ReadRequest. ReadRequest does not skip leading empty lines, so
// those cases are left to the table tests.
var stdlibRequests = []string{
	crlf("GET / HTTP/1.1\nHost: a\n\n"),
	"GET /lf HTTP/1.1\nHost: a\nX-A: b\n\n",
	crlf("GET / HTTP/1.0\n\n"),
	crlf("GET /k HTTP/1.0\nHost: b\nConnection: keep-alive\n\n"),
	crlf("POST /upload?x=1 HTTP/1.1\nHost: example.com:8080\nContent-Length: 11\nContent-Type: text/plain\n\nhello world"),
	crlf("POST /c HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\nTE: trailers\nConnection: TE, x-hop\nX-Hop: 1\n\n0\n\n"),
	crlf("PUT /c HTTP/1.1\nHost: a\nTransfer-Encoding: Chunked\n\n5\nhello\n0\n\n"),
	crlf("GET /x HTTP/1.1\nHost: a\nUser-Agent: curl/8.0\nAccept: */*\nX-Forwarded-For: 1.2.3.4\nX-Request-Id: r1\nConnection: keep-alive\n\n"),
	crlf("HEAD /h HTTP/1.1\nhost:   spaced   \nX-Empty:\nX-Tab:\tv\t\n\n"),
	crlf("PUT /p HTTP/1.1\nHost: a\nContent-Length: 3\nExpect: 100-continue\n\nabc"),
	crlf("POST /ten HTTP/1.0\nContent-Length: 5\nConnection: close\nX-A: 1\n\nhello"),
	crlf("GET /ten HTTP/1.0\nConnection: Keep-Alive, x-hop\nX-Hop: 1\nKeep-Alive: timeout=5\n\n"),
	crlf("OPTIONS * HTTP/1.1\nHost: a\nProxy-Authorization: Basic eA==\nUpgrade: websocket\nConnection: close, Upgrade\n\n"),
	crlf("DELETE /items/7?force=true HTTP/1.1\nHost: [::1]:8080\nCookie: a=b; c=d\nCookie: e=f\nContent-Length: 0\n\n"),
	crlf("GET /%7Euser/a%20b HTTP/1.1\nHost: a\nAccept-Encoding: gzip, deflate\nCache-Control: no-cache\n\n"),
}

func TestStdlibRequests(t *testing.T) {
	fwd := Forward{ClientIP: []byte("10.0.0.1"), Proto: "http", RequestID: []byte("gen-9"), Host: []byte("proxy.test")}
	for _, in := range stdlibRequests {
		var h RequestHead
		if err := ParseRequest([]byte(in), Limits{}, &h); err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(in)))
		if err != nil {
			t.Fatalf("%q: net/http: %v", in, err)
		}
		chunked := len(req.TransferEncoding) == 1 && req.TransferEncoding[0] == "chunked"
		wantCL := req.ContentLength
		if wantCL == 0 && h.ContentLength == -1 && !h.Chunked {
			wantCL = -1 // net/http says 0 when there is no Content-Length
		}
		if string(h.Method) != req.Method || string(h.URI) != req.RequestURI || h.ContentLength != wantCL ||
			h.Chunked != chunked || string(h.Host) != req.Host || h.KeepAlive == req.Close || h.Minor != req.ProtoMinor {
			t.Errorf("%q:\nwire     %s %s 1.%d cl=%d chunked=%v host=%q ka=%v\nnet/http %s %s 1.%d cl=%d chunked=%v host=%q close=%v",
				in, h.Method, h.URI, h.Minor, h.ContentLength, h.Chunked, h.Host, h.KeepAlive,
				req.Method, req.RequestURI, req.ProtoMinor, req.ContentLength, chunked, req.Host, req.Close)
		}

		// The forwarded head, read by net/http, has the same end-to-end
		// headers, no hop-by-hop ones, and the forwarding headers.
		out := AppendRequest(nil, []byte(in), &h, fwd)
		out = append(out, in[h.Len:]...)
		req2, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(out)))
		if err != nil {
			t.Fatalf("%q: net/http on output %q: %v", in, out, err)
		}
		// The version is kept; the upstream connection stays open, for
		// HTTP/1.0 through the one Connection header AppendRequest adds.
		wantConn := ""
		if h.Minor == 0 {
			wantConn = "keep-alive"
		}
		if h.Upgrade != nil {
			wantConn = "upgrade" // an Upgrade goes on with its own Connection token
		}
		if req2.ProtoMinor != req.ProtoMinor || req2.Close || strings.Join(req2.Header["Connection"], "|") != wantConn {
			t.Errorf("%q: upstream 1.%d close=%v Connection %q, want 1.%d Connection %q",
				in, req2.ProtoMinor, req2.Close, req2.Header["Connection"], req.ProtoMinor, wantConn)
		}
		// A request without Host (HTTP/1.0) gets Forward.Host, and no
		// X-Forwarded-Host (checked below).
		wantHost := req.Host
		if h.Host == nil {
			wantHost = "proxy.test"
		}
		if req2.Host != wantHost {
			t.Errorf("%q: upstream Host %q, want %q", in, req2.Host, wantHost)
		}
		drop := map[string]bool{}
		for _, k := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
			"Proxy-Authorization", "Te", "Trailer", "Upgrade", "X-Forwarded-For", "X-Forwarded-Proto",
			"X-Forwarded-Host", "X-Request-Id"} {
			drop[k] = true
		}
		for _, v := range req.Header["Connection"] {
			for tok := range strings.SplitSeq(v, ",") {
				drop[textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(tok))] = true
			}
		}
		if h.Upgrade != nil {
			delete(drop, "Upgrade")
		}
		for k, v := range req.Header {
			if k == "Te" && strings.EqualFold(v[0], "trailers") {
				if req2.Header.Get("Te") != v[0] {
					t.Errorf("%q: TE: trailers not kept", in)
				}
				continue
			}
			if drop[k] {
				if k == "Connection" {
					continue // checked above
				}
				if _, ok := req2.Header[k]; ok && !strings.HasPrefix(k, "X-") {
					t.Errorf("%q: %s kept", in, k)
				}
				continue
			}
			if strings.Join(req2.Header[k], "|") != strings.Join(v, "|") {
				t.Errorf("%q: %s = %q, want %q", in, k, req2.Header[k], v)
			}
		}
		wantXFF := "10.0.0.1"
		if v := req.Header.Get("X-Forwarded-For"); v != "" {
			wantXFF = v + ", " + wantXFF
		}
		wantID := req.Header.Get("X-Request-Id")
		if wantID == "" {
			wantID = "gen-9"
		}
		if got := req2.Header.Get("X-Forwarded-For"); got != wantXFF {
			t.Errorf("%q: X-Forwarded-For %q, want %q", in, got, wantXFF)
		}
		if got := req2.Header.Get("X-Request-Id"); got != wantID {
			t.Errorf("%q: X-Request-Id %q, want %q", in, got, wantID)
		}
		if got := req2.Header.Get("X-Forwarded-Proto"); got != "http" {
			t.Errorf("%q: X-Forwarded-Proto %q", in, got)
		}
		if got := req2.Header.Get("X-Forwarded-Host"); got != req.Host {
			t.Errorf("%q: X-Forwarded-Host %q, want %q", in, got, req.Host)
		}
		if _, ok := req2.Header["X-Forwarded-Host"]; ok && len(h.Host) == 0 {
			t.Errorf("%q: X-Forwarded-Host sent for a request without Host", in)
		}
		// The body, read by net/http, is the same.
		b1, err1 := io.ReadAll(req.Body)
		b2, err2 := io.ReadAll(req2.Body)
		if err1 != nil || err2 != nil || !bytes.Equal(b1, b2) {
			t.Errorf("%q: bodies %q %v, %q %v", in, b1, err1, b2, err2)
		}
	}
}

// TestStdlibRejects lists requests ParseRequest refuses; net/http's
// ReadRequest refuses them too, but for the ones marked: it reads "Host :"
// as a header named "Host ", accepts a Content-Length repeated with the same
// value (RFC 9110 8.6 allows it; ParseRequest is stricter), and leaves the
// missing Host of an HTTP/1.1 request to its server.
func TestStdlibRejects(t *testing.T) {
	for _, tt := range []struct {
		in            string
		stdlibAccepts bool
	}{
		{crlf("GET / HTTP/1.1\nHost: a\nContent-Length: 5\nContent-Length: 6\n\n"), false},
		{crlf("GET / HTTP/1.1\nHost: a\nContent-Length: -5\n\n"), false},
		{crlf("GET / HTTP/1.1\nHost: a\nTransfer-Encoding: gzip\n\n"), false},
		{crlf("GET /a b HTTP/1.1\nHost: a\n\n"), false},
		{crlf("GET / HTTP/1.1\nHost: a\nX: \x00\n\n"), false},
		{crlf("GET / HTTP/1.1\nHost: a\nHost: b\n\n"), false},
		{crlf("GET / HTTP/1.1\nHost : a\n\n"), true},
		{crlf("PUT /p HTTP/1.1\nHost: a\nContent-Length: 3\nContent-Length: 3\nExpect: 100-continue\n\nabc"), true},
		{crlf("PUT /p HTTP/1.1\nHost: a\nContent-Length: 3, 3\n\nabc"), false},
		{crlf("POST /p HTTP/1.0\nContent-Length: 3\nContent-Length: 3\n\nabc"), true},
		{crlf("GET / HTTP/1.1\nAccept: */*\n\n"), true},
	} {
		var h RequestHead
		if err := ParseRequest([]byte(tt.in), Limits{}, &h); err == nil {
			t.Errorf("%q: wire accepts", tt.in)
		}
		_, err := http.ReadRequest(bufio.NewReader(strings.NewReader(tt.in)))
		if (err == nil) != tt.stdlibAccepts {
			t.Errorf("%q: net/http error %v", tt.in, err)
		}
	}
}

func TestStdlibResponses(t *testing.T) {
	for _, in := range []string{
		crlf("HTTP/1.1 200 OK\nContent-Length: 5\n\nhello"),
		"HTTP/1.1 404 Not Found\nContent-Type: text/plain\nContent-Length: 9\n\nnot found",
		crlf("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\nConnection: keep-alive, x-a\nX-A: 1\n\n5\nhello\n0\n\n"),
		crlf("HTTP/1.0 200 OK\nContent-Length: 2\n\nhi"),
		crlf("HTTP/1.0 200 OK\nContent-Length: 2\nConnection: keep-alive\n\nhi"),
		crlf("HTTP/1.1 200 OK\nConnection: close\nContent-Length: 2\n\nhi"),
		crlf("HTTP/1.1 500 Internal Server Error\n\nuntil close"),
		crlf("HTTP/1.1 204 No Content\n\n"),
	} {
		var h ResponseHead
		if err := ParseResponse([]byte(in), Limits{}, &h); err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(in)), &http.Request{Method: "GET"})
		if err != nil {
			t.Fatalf("%q: net/http: %v", in, err)
		}
		chunked := len(resp.TransferEncoding) == 1 && resp.TransferEncoding[0] == "chunked"
		if h.Status != resp.StatusCode || h.Chunked != chunked || h.KeepAlive == resp.Close ||
			h.Body(false) == Length && h.ContentLength != resp.ContentLength {
			t.Errorf("%q:\nwire     %d cl=%d chunked=%v ka=%v\nnet/http %d cl=%d chunked=%v close=%v",
				in, h.Status, h.ContentLength, h.Chunked, h.KeepAlive,
				resp.StatusCode, resp.ContentLength, chunked, resp.Close)
		}
		out := AppendResponse(nil, []byte(in), &h, closeIf(h.Body(false) == UntilClose))
		resp2, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(append(out, in[h.Len:]...))), &http.Request{Method: "GET"})
		if err != nil {
			t.Fatalf("%q: net/http on output %q: %v", in, out, err)
		}
		b1, err1 := io.ReadAll(resp.Body)
		b2, err2 := io.ReadAll(resp2.Body)
		if err1 != nil || err2 != nil || !bytes.Equal(b1, b2) || resp2.StatusCode != resp.StatusCode ||
			resp2.Status != "" && resp2.Status[4:] != resp.Status[4:] {
			t.Errorf("%q: %q %v / %q %v", in, b1, err1, b2, err2)
		}
		if resp2.Header.Get("Connection") != "" && !resp2.Close || resp2.Header.Get("X-A") != "" {
			t.Errorf("%q: hop-by-hop headers in %q", in, out)
		}
	}
}

// TestStdlibChunked checks that ChunkedScanner ends a body where net/http's
// chunked reader does, trailers included.
func TestStdlibChunked(t *testing.T) {
	const next = "HTTP/1.1 204 No Content\r\n\r\n"
	for _, tt := range validChunked {
		if strings.Contains(strings.ReplaceAll(tt.body, "\r\n", ""), "\n") || strings.HasPrefix(tt.body, "10000000000") ||
			strings.Contains(tt.body, " ;") {
			// net/http wants CRLF after chunk data, and no whitespace
			// before a chunk extension (RFC 9112 7.1.1 allows it).
			continue
		}
		in := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + tt.body + next
		br := bufio.NewReader(strings.NewReader(in))
		resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%q: net/http: %v", tt.body, err)
		}
		rest, _ := io.ReadAll(br)
		n, done, _, err := scanAll(t, tt.body+next, 0)
		if err != nil || !done || int64(len(b)) != tt.data || string(rest) != next || n != len(tt.body) {
			t.Errorf("%q: wire n=%d done=%v err=%v; net/http body %d bytes, rest %q", tt.body, n, done, err, len(b), rest)
		}
	}
}
