package wire

import (
	"strings"
	"testing"
)

// benchRequest is a typical browser-like request with a few headers the
// writer drops.
var benchRequest = []byte(crlf("GET /api/v1/items?id=42&sort=desc HTTP/1.1\n" +
	"Host: shop.example.com\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\n" +
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\n" +
	"Accept-Language: en-US,en;q=0.5\n" +
	"Accept-Encoding: gzip, deflate, br\n" +
	"Cookie: session=0123456789abcdef; theme=dark\n" +
	"X-Forwarded-For: 203.0.113.7\n" +
	"Connection: keep-alive\n" +
	"\n"))

// benchRequestPlain has no header to drop: the writer copies the header
// block in one go.
var benchRequestPlain = []byte(crlf("GET /api/v1/items?id=42&sort=desc HTTP/1.1\n" +
	"Host: shop.example.com\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\n" +
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\n" +
	"Accept-Language: en-US,en;q=0.5\n" +
	"Accept-Encoding: gzip, deflate, br\n" +
	"Cookie: session=0123456789abcdef; theme=dark\n" +
	"\n"))

var benchResponse = []byte(crlf("HTTP/1.1 200 OK\n" +
	"Date: Mon, 27 Jul 2009 12:28:53 GMT\n" +
	"Server: upstream/1.0\n" +
	"Content-Type: application/json; charset=utf-8\n" +
	"Content-Length: 1234\n" +
	"Cache-Control: no-cache\n" +
	"Keep-Alive: timeout=5\n" +
	"Connection: keep-alive\n" +
	"\n"))

var benchChunked = []byte("400;ext=1\r\n" + strings.Repeat("x", 1024) + "\r\n" +
	"10\r\n" + strings.Repeat("y", 16) + "\r\n" +
	"0\r\nX-Checksum: abc\r\n\r\n")

var benchForward = Forward{ClientIP: []byte("192.0.2.10"), Proto: "http", RequestID: []byte("a1b2c3d4e5f60718-2a")}

func TestZeroAllocs(t *testing.T) {
	dst := make([]byte, 0, 4096)
	var rh RequestHead
	var ph ResponseHead
	var c ChunkedScanner
	many := []byte("GET / HTTP/1.1\r\nHost: h\r\nConnection: " + strings.Repeat("x-a, ", 30) + "close\r\nX-A: 1\r\nX-B: 2\r\n\r\n")
	bad := []byte("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
	noHost := []byte("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n")
	http10 := []byte("GET /old HTTP/1.0\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n")
	fwd10 := benchForward
	fwd10.Host = []byte("shop.example.com")
	checks := []struct {
		name string
		f    func()
	}{
		{"ParseRequest+AppendRequest", func() {
			if ParseRequest(benchRequest, Limits{}, &rh) != nil {
				panic("parse")
			}
			dst = AppendRequest(dst[:0], benchRequest, &rh, benchForward)
		}},
		{"ParseRequest+AppendRequest plain", func() {
			if ParseRequest(benchRequestPlain, Limits{}, &rh) != nil {
				panic("parse")
			}
			dst = AppendRequest(dst[:0], benchRequestPlain, &rh, benchForward)
		}},
		{"ParseRequest+AppendRequest many Connection tokens", func() {
			if ParseRequest(many, Limits{}, &rh) != nil {
				panic("parse")
			}
			dst = AppendRequest(dst[:0], many, &rh, benchForward)
		}},
		{"ParseRequest incomplete", func() {
			if ParseRequest(benchRequest[:len(benchRequest)-1], Limits{}, &rh) != ErrIncomplete {
				panic("parse")
			}
		}},
		{"ParseRequest error", func() {
			if ParseRequest(bad, Limits{}, &rh) == nil {
				panic("parse")
			}
		}},
		{"ParseRequest missing Host", func() {
			if ParseRequest(noHost, Limits{}, &rh) == nil {
				panic("parse")
			}
		}},
		{"ParseRequest+AppendRequest http/1.0 with Forward.Host", func() {
			if ParseRequest(http10, Limits{}, &rh) != nil {
				panic("parse")
			}
			dst = AppendRequest(dst[:0], http10, &rh, fwd10)
		}},
		{"ParseResponse+AppendResponse", func() {
			if ParseResponse(benchResponse, Limits{}, &ph) != nil {
				panic("parse")
			}
			_ = ph.Body(false)
			dst = AppendResponse(dst[:0], benchResponse, &ph, "close")
		}},
		{"Scan", func() {
			c.Reset()
			if _, done, err := c.Scan(benchChunked); !done || err != nil {
				panic("scan")
			}
		}},
		{"Scan bytewise", func() {
			c.Reset()
			for i := range benchChunked {
				if _, _, err := c.Scan(benchChunked[i : i+1]); err != nil {
					panic("scan")
				}
			}
		}},
		{"Scan error", func() {
			c.Reset()
			if _, _, err := c.Scan([]byte("zz")); err == nil {
				panic("scan")
			}
		}},
	}
	for _, ch := range checks {
		if n := testing.AllocsPerRun(100, ch.f); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", ch.name, n)
		}
	}
}

func BenchmarkParseRequest(b *testing.B) {
	var h RequestHead
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRequest)))
	for b.Loop() {
		if err := ParseRequest(benchRequest, Limits{}, &h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendRequest(b *testing.B) {
	var h RequestHead
	if err := ParseRequest(benchRequest, Limits{}, &h); err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRequest)))
	for b.Loop() {
		dst = AppendRequest(dst[:0], benchRequest, &h, benchForward)
	}
}

// BenchmarkAppendRequestPlain measures the writer when no header is
// dropped or reformatted.
func BenchmarkAppendRequestPlain(b *testing.B) {
	var h RequestHead
	if err := ParseRequest(benchRequestPlain, Limits{}, &h); err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRequestPlain)))
	for b.Loop() {
		dst = AppendRequest(dst[:0], benchRequestPlain, &h, benchForward)
	}
}

func BenchmarkParseResponse(b *testing.B) {
	var h ResponseHead
	b.ReportAllocs()
	b.SetBytes(int64(len(benchResponse)))
	for b.Loop() {
		if err := ParseResponse(benchResponse, Limits{}, &h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendResponse(b *testing.B) {
	var h ResponseHead
	if err := ParseResponse(benchResponse, Limits{}, &h); err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchResponse)))
	for b.Loop() {
		dst = AppendResponse(dst[:0], benchResponse, &h, "")
	}
}

func BenchmarkChunkedScan(b *testing.B) {
	var c ChunkedScanner
	b.ReportAllocs()
	b.SetBytes(int64(len(benchChunked)))
	for b.Loop() {
		c.Reset()
		if _, done, err := c.Scan(benchChunked); !done || err != nil {
			b.Fatal(done, err)
		}
	}
}
