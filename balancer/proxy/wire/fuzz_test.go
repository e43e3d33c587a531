package wire

import (
	"bytes"
	"errors"
	"testing"
)

func FuzzParseRequest(f *testing.F) {
	for _, s := range validRequests {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\nhello",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: x, y, Content-Length, TE\r\nX: 1\r\nY: 2\r\nTE: trailers\r\nContent-Length: 0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: a\r\nX-Forwarded-For: b\r\nX-Request-Id:\r\n\r\n",
		"GET / HTTP/1.1\r\nX-Forwarded-For: a\r\n\r\n",
		"POST / HTTP/1.0\r\nContent-Length: 1\r\nConnection: close\r\nX-Forwarded-Host: x\r\n\r\na",
		"GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\x00\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
		"\r\n\n\r\nGET / HTTP/1.0\nConnection: keep-alive\n\n",
		"GET http://x/ HTTP/1.1\nHost:\t\n\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	const max = 4096
	fwd := Forward{ClientIP: []byte("10.1.2.3"), Proto: "http", RequestID: []byte("gen")}
	var dst []byte
	f.Fuzz(func(t *testing.T, data []byte) {
		var h RequestHead
		err := ParseRequest(data, Limits{MaxHead: max}, &h)
		switch {
		case err == ErrIncomplete:
			if len(data) >= max {
				t.Fatalf("ErrIncomplete with %d bytes", len(data))
			}
			return
		case err == ErrHeadTooLarge:
			if len(data) < max {
				t.Fatalf("ErrHeadTooLarge with %d bytes", len(data))
			}
			return
		case err != nil:
			var we *Error
			if !errors.As(err, &we) || we.Msg == "" || we.Status < 400 {
				t.Fatalf("bad error %#v", err)
			}
			return
		}
		if h.Len <= 0 || h.Len > len(data) || h.Len > max {
			t.Fatalf("Len %d of %d", h.Len, len(data))
		}
		if h.Host == nil && h.Minor != 0 {
			t.Fatalf("HTTP/1.1 without Host accepted: %q", data[:h.Len])
		}
		// The head alone parses the same; a shorter prefix is incomplete.
		var h1 RequestHead
		if err := ParseRequest(data[:h.Len], Limits{MaxHead: max}, &h1); err != nil || h1.Len != h.Len {
			t.Fatalf("head alone: %v, Len %d", err, h1.Len)
		}
		for _, n := range []int{h.Len - 1, h.Len / 2} {
			if err := ParseRequest(data[:n], Limits{MaxHead: max}, &h1); err != ErrIncomplete {
				t.Fatalf("prefix %d of %d: %v", n, h.Len, err)
			}
		}

		dst = AppendRequest(dst[:0], data, &h, fwd)
		line := string(h.Method) + " " + string(h.URI) + " HTTP/1.1\r\n"
		if h.Minor == 0 {
			line = string(h.Method) + " " + string(h.URI) + " HTTP/1.0\r\nConnection: keep-alive\r\n"
		}
		if !bytes.HasPrefix(dst, []byte(line)) {
			t.Fatalf("output does not start with %q: %q", line, dst)
		}
		var h2 RequestHead
		err = ParseRequest(dst, Limits{MaxHead: 1 << 20}, &h2)
		if err != nil {
			if bytes.Count(dst, []byte("\n")) > maxHeaders+2 {
				return // the added headers went past the count limit
			}
			t.Fatalf("output does not parse: %v\ninput  %q\noutput %q", err, data[:h.Len], dst)
		}
		if h2.Len != len(dst) {
			t.Fatalf("output Len %d of %d", h2.Len, len(dst))
		}
		// The version is kept; the upstream connection is always kept
		// open (HTTP/1.0 through the added "Connection: keep-alive").
		if !bytes.Equal(h2.Method, h.Method) || !bytes.Equal(h2.URI, h.URI) ||
			h2.ContentLength != h.ContentLength || h2.Chunked != h.Chunked || h2.Minor != h.Minor {
			t.Fatalf("output differs:\ninput  %q\noutput %q\n%+v\n%+v", data[:h.Len], dst, h, h2)
		}
		if !bytes.Equal(h2.Host, h.Host) || h2.ExpectContinue != h.ExpectContinue || h2.conn.n != 0 || !h2.KeepAlive {
			t.Fatalf("output differs:\ninput  %q\noutput %q", data[:h.Len], dst)
		}
		if bytes.Contains(dst, []byte("\r\nX-Forwarded-Host: ")) != (len(h.Host) > 0) {
			t.Fatalf("X-Forwarded-Host for Host %q: %q", h.Host, dst)
		}
		wantXFF := string(h.ForwardedFor)
		if wantXFF != "" {
			wantXFF += ", "
		}
		wantXFF += "10.1.2.3"
		if string(h2.ForwardedFor) != wantXFF {
			t.Fatalf("X-Forwarded-For %q, want %q", h2.ForwardedFor, wantXFF)
		}
		if id := h2.RequestID; !bytes.Equal(id, h.RequestID) && string(id) != "gen" {
			t.Fatalf("X-Request-Id %q", id)
		}
		// Forwarding again changes nothing but the added values.
		again := AppendRequest(nil, dst, &h2, Forward{Proto: "http"})
		if !bytes.Equal(again, dst) {
			t.Fatalf("second pass differs:\n%q\n%q", dst, again)
		}
		// Forward.Host is the Host of a request without one, with no
		// X-Forwarded-Host; it changes nothing for a request with one.
		fwdHost := fwd
		fwdHost.Host = []byte("proxy.test:80")
		withHost := AppendRequest(nil, data, &h, fwdHost)
		if h.Host != nil {
			if !bytes.Equal(withHost, dst) {
				t.Fatalf("Forward.Host used with Host %q:\n%q\n%q", h.Host, dst, withHost)
			}
			return
		}
		// It is the line right after the request line (and after
		// "Connection: keep-alive" for HTTP/1.0).
		want := line + "Host: proxy.test:80\r\n" + string(dst[len(line):])
		if string(withHost) != want {
			t.Fatalf("output with Forward.Host:\n%q\nwant\n%q", withHost, want)
		}
		var h3 RequestHead
		if err := ParseRequest(withHost, Limits{MaxHead: 1 << 20}, &h3); err != nil {
			if bytes.Count(withHost, []byte("\n")) > maxHeaders+2 {
				return
			}
			t.Fatalf("output with Forward.Host does not parse: %v\n%q", err, withHost)
		}
		if string(h3.Host) != "proxy.test:80" || h3.Minor != h.Minor || h3.ContentLength != h.ContentLength ||
			!h3.KeepAlive || bytes.Contains(withHost, []byte("\r\nX-Forwarded-Host: ")) {
			t.Fatalf("output with Forward.Host:\ninput  %q\noutput %q", data[:h.Len], withHost)
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	for _, s := range validResponses {
		f.Add([]byte(s))
	}
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\nConnection: x-a, Content-Length\r\nX-A: 1\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 101 Switching\nUpgrade: x\n\n"))
	const max = 4096
	var dst []byte
	f.Fuzz(func(t *testing.T, data []byte) {
		var h ResponseHead
		err := ParseResponse(data, Limits{MaxHead: max}, &h)
		switch {
		case err == ErrIncomplete:
			if len(data) >= max {
				t.Fatalf("ErrIncomplete with %d bytes", len(data))
			}
			return
		case err == ErrHeadTooLarge:
			if len(data) < max {
				t.Fatalf("ErrHeadTooLarge with %d bytes", len(data))
			}
			return
		case err != nil:
			var we *Error
			if !errors.As(err, &we) || we.Status != 502 {
				t.Fatalf("bad error %#v", err)
			}
			return
		}
		if h.Len <= 0 || h.Len > len(data) || h.Status < 100 || h.Status > 999 {
			t.Fatalf("Len %d Status %d", h.Len, h.Status)
		}
		dst = AppendResponse(dst[:0], data, &h, "close")
		var h2 ResponseHead
		if err := ParseResponse(dst, Limits{MaxHead: 1 << 20}, &h2); err != nil {
			t.Fatalf("output does not parse: %v\ninput  %q\noutput %q", err, data[:h.Len], dst)
		}
		if h2.Status != h.Status || h2.Chunked != h.Chunked || h2.ContentLength != h.ContentLength ||
			h2.Body(false) != h.Body(false) || h2.KeepAlive || h2.conn.n != 1 {
			t.Fatalf("output differs:\ninput  %q\noutput %q\n%+v\n%+v", data[:h.Len], dst, h, h2)
		}
	})
}

func FuzzChunked(f *testing.F) {
	for _, tt := range validChunked {
		f.Add([]byte(tt.body+"GET / HTTP/1.1\r\n"), uint16(3))
	}
	f.Add([]byte("5\r\nhel\r\n0\r\n\r\n"), uint16(1))
	f.Add([]byte("0\r\nX: 1\r\n 2\r\n\r\n"), uint16(7))
	f.Add([]byte("ffffffffff;a=b\r\n"), uint16(9))
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		var c ChunkedScanner
		n, done, err := c.Scan(data)
		data1 := c.Data()
		if err == nil && !done && n != len(data) {
			t.Fatalf("n = %d of %d, not done", n, len(data))
		}
		if n < 0 || n > len(data) {
			t.Fatalf("n = %d of %d", n, len(data))
		}
		// Byte by byte and in two pieces give the same answer.
		for _, step := range []int{1, int(split)%(len(data)+1) + 1} {
			var c2 ChunkedScanner
			total, done2, failed := 0, false, false
			for p := data; len(p) > 0; {
				k := min(step, len(p))
				m, d, err := c2.Scan(p[:k])
				total += m
				if err != nil {
					failed = true
					break
				}
				if d {
					done2 = true
					break
				}
				p = p[k:]
			}
			if done2 != done || failed != (err != nil) || (done && total != n) || c2.Data() != data1 {
				t.Fatalf("step %d: n=%d done=%v err=%v data=%d; whole: n=%d done=%v err=%v data=%d",
					step, total, done2, failed, c2.Data(), n, done, err, data1)
			}
		}
		if done {
			var c3 ChunkedScanner
			if m, d, err := c3.Scan(data[:n]); !d || err != nil || m != n {
				t.Fatalf("body alone: %d %v %v", m, d, err)
			}
		}
		// Filter reads as Scan does; its canonical output is no longer
		// than its input, reads as a complete body again and filters to
		// itself.
		var cf ChunkedScanner
		out, fn, fdone, ferr := cf.Filter(nil, data)
		if fn != n || fdone != done || (ferr != nil) != (err != nil) || len(out) > fn+FilterSlack {
			t.Fatalf("Filter: n=%d done=%v err=%v out=%d; Scan: n=%d done=%v err=%v", fn, fdone, ferr, len(out), n, done, err)
		}
		if done {
			var c4 ChunkedScanner
			again, m, d, err := c4.Filter(nil, out)
			if len(out) > n || !d || err != nil || m != len(out) || string(again) != string(out) {
				t.Fatalf("canonical %q of %q: %q %v %v", out, data[:n], again, d, err)
			}
		}
	})
}
