package wire

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

type respWant struct {
	status, minor int
	cl            int64
	chunked, ka   bool
	body          BodyKind // for a GET request
}

func TestParseResponse(t *testing.T) {
	ok := respWant{200, 1, 5, false, true, Length}
	tests := []struct {
		name string
		in   string
		want respWant
		err  error
	}{
		{"simple", crlf("HTTP/1.1 200 OK\nContent-Length: 5\n\n"), ok, nil},
		{"lf only", "HTTP/1.1 200 OK\nContent-Length: 5\n\n", ok, nil},
		{"no reason", crlf("HTTP/1.1 200\nContent-Length: 5\n\n"), ok, nil},
		{"empty reason", crlf("HTTP/1.1 200 \nContent-Length: 5\n\n"), ok, nil},
		{"long reason", crlf("HTTP/1.1 200 Very\tOK indeed\nContent-Length: 5\n\n"), ok, nil},
		{"cl case and spaces", crlf("HTTP/1.1 200 OK\ncontent-LENGTH:\t5 \n\n"), ok, nil},
		{"cl same twice", crlf("HTTP/1.1 200 OK\nContent-Length: 5\nContent-Length: 5,5\n\n"), ok, nil},
		{"cl zero", crlf("HTTP/1.1 200 OK\nContent-Length: 0\n\n"), respWant{200, 1, 0, false, true, Length}, nil},
		{"http/1.0", crlf("HTTP/1.0 200 OK\nContent-Length: 5\n\n"), respWant{200, 0, 5, false, false, Length}, nil},
		{"http/1.0 keep-alive", crlf("HTTP/1.0 200 OK\nContent-Length: 5\nConnection: keep-alive\n\n"), respWant{200, 0, 5, false, true, Length}, nil},
		{"close", crlf("HTTP/1.1 200 OK\nContent-Length: 5\nConnection: Close\n\n"), respWant{200, 1, 5, false, false, Length}, nil},
		{"until close", crlf("HTTP/1.1 200 OK\n\n"), respWant{200, 1, -1, false, false, UntilClose}, nil},
		{"chunked", crlf("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n"), respWant{200, 1, -1, true, true, Chunked}, nil},
		{"gzip chunked", crlf("HTTP/1.1 200 OK\nTransfer-Encoding: gzip\nTransfer-Encoding: CHUNKED\n\n"), respWant{200, 1, -1, true, true, Chunked}, nil},
		{"gzip only", crlf("HTTP/1.1 200 OK\nTransfer-Encoding: gzip\n\n"), respWant{200, 1, -1, false, false, UntilClose}, nil},
		{"chunked not last", crlf("HTTP/1.1 200 OK\nTransfer-Encoding: chunked, gzip\n\n"), respWant{200, 1, -1, false, false, UntilClose}, nil},
		{"cl and chunked", crlf("HTTP/1.1 200 OK\nContent-Length: 5\nTransfer-Encoding: chunked\n\n"), respWant{200, 1, -1, true, false, Chunked}, nil},
		{"chunked and cl", crlf("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\nContent-Length: 5\n\n"), respWant{200, 1, -1, true, false, Chunked}, nil},
		{"chunked in http/1.0", crlf("HTTP/1.0 200 OK\nTransfer-Encoding: chunked\nConnection: keep-alive\n\n"), respWant{200, 0, -1, true, false, Chunked}, nil},
		{"204", crlf("HTTP/1.1 204 No Content\n\n"), respWant{204, 1, -1, false, true, None}, nil},
		{"304 with cl", crlf("HTTP/1.1 304 Not Modified\nContent-Length: 100\n\n"), respWant{304, 1, 100, false, true, None}, nil},
		{"100", crlf("HTTP/1.1 100 Continue\n\n"), respWant{100, 1, -1, false, true, None}, nil},
		{"103", crlf("HTTP/1.1 103 Early Hints\nLink: </s.css>\n\n"), respWant{103, 1, -1, false, true, None}, nil},
		{"999", crlf("HTTP/1.1 999 Odd\nContent-Length: 5\n\n"), respWant{999, 1, 5, false, true, Length}, nil},

		{"cl differing", crlf("HTTP/1.1 200 OK\nContent-Length: 5\nContent-Length: 6\n\n"), ok, e(502, "conflicting Content-Length")},
		{"cl list differing", crlf("HTTP/1.1 200 OK\nContent-Length: 5, 6\n\n"), ok, e(502, "conflicting Content-Length")},
		{"cl bad", crlf("HTTP/1.1 200 OK\nContent-Length: 5a\n\n"), ok, e(502, "bad Content-Length")},
		{"cl bad with chunked", crlf("HTTP/1.1 200 OK\nContent-Length: x\nTransfer-Encoding: chunked\n\n"), ok, e(502, "bad Content-Length")},
		{"cl overflow", crlf("HTTP/1.1 200 OK\nContent-Length: 99999999999999999999\n\n"), ok, e(502, "bad Content-Length")},
		{"te unknown", crlf("HTTP/1.1 200 OK\nTransfer-Encoding: br, chunked\n\n"), ok, e(502, "unsupported transfer coding")},
		{"te chunked twice", crlf("HTTP/1.1 200 OK\nTransfer-Encoding: chunked, chunked\n\n"), ok, e(502, "malformed Transfer-Encoding")},
		{"te empty", crlf("HTTP/1.1 200 OK\nTransfer-Encoding: \n\n"), ok, e(502, "malformed Transfer-Encoding")},
		{"http/2", crlf("HTTP/2.0 200 OK\n\n"), ok, e(502, "http version not supported")},
		{"http/1.2", crlf("HTTP/1.2 200 OK\n\n"), ok, e(502, "http version not supported")},
		{"lower http", crlf("http/1.1 200 OK\n\n"), ok, e(502, "malformed status line")},
		{"two digit status", crlf("HTTP/1.1 20 OK\n\n"), ok, e(502, "malformed status line")},
		{"four digit status", crlf("HTTP/1.1 2000 OK\n\n"), ok, e(502, "malformed status line")},
		{"status 099", crlf("HTTP/1.1 099 X\n\n"), ok, e(502, "malformed status line")},
		{"no space", crlf("HTTP/1.1200 OK\n\n"), ok, e(502, "malformed status line")},
		{"ctl in reason", crlf("HTTP/1.1 200 O\x00K\n\n"), ok, e(502, "malformed status line")},
		{"leading empty line", crlf("\nHTTP/1.1 200 OK\n\n"), ok, e(502, "malformed status line")},
		{"space before colon", crlf("HTTP/1.1 200 OK\nContent-Length : 5\n\n"), ok, e(502, "malformed header line")},
		{"obs fold", crlf("HTTP/1.1 200 OK\nX-A: 1\n 2\n\n"), ok, e(502, "obsolete line folding")},
		{"ctl in value", crlf("HTTP/1.1 200 OK\nX-A: 1\x0b2\n\n"), ok, e(502, "control character in header")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h ResponseHead
			buf := []byte(tt.in + "BODY")
			err := ParseResponse(buf, Limits{}, &h)
			checkErr(t, err, tt.err)
			if err != nil {
				return
			}
			got := respWant{h.Status, h.Minor, h.ContentLength, h.Chunked, h.KeepAlive, h.Body(false)}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			if h.Len != len(tt.in) {
				t.Errorf("Len = %d, want %d", h.Len, len(tt.in))
			}
			if h.Body(true) != None {
				t.Errorf("Body(HEAD) = %v", h.Body(true))
			}
		})
	}
}

func TestBodyKind(t *testing.T) {
	tests := []struct {
		status  int
		cl      int64
		chunked bool
		head    bool
		want    BodyKind
	}{
		{200, 5, false, false, Length},
		{200, 0, false, false, Length},
		{200, -1, false, false, UntilClose},
		{200, -1, true, false, Chunked},
		{200, 5, false, true, None},
		{200, -1, true, true, None},
		{200, -1, false, true, None},
		{100, -1, false, false, None},
		{101, -1, false, false, None},
		{199, 5, false, false, None},
		{204, 5, false, false, None},
		{204, -1, true, false, None},
		{304, 5, false, false, None},
		{205, 0, false, false, Length},
		{404, -1, true, false, Chunked},
		{500, -1, false, false, UntilClose},
	}
	for _, tt := range tests {
		h := ResponseHead{Status: tt.status, ContentLength: tt.cl, Chunked: tt.chunked}
		if got := h.Body(tt.head); got != tt.want {
			t.Errorf("%+v head=%v: %v, want %v", tt, tt.head, got, tt.want)
		}
	}
}

var validResponses = []string{
	crlf("HTTP/1.1 200 OK\nContent-Length: 5\n\n"),
	"HTTP/1.1 404 Not Found\nContent-Type: text/plain\nContent-Length: 9\n\n",
	crlf("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\nConnection: keep-alive, x-a\nX-A: 1\n\n"),
	crlf("HTTP/1.0 204\n\n"),
	crlf("HTTP/1.1 304 Not Modified\nETag: \"x\"\n\n"),
	crlf("HTTP/1.1 200 OK\nContent-Length: 5\nTransfer-Encoding: chunked\n\n"),
}

func TestParseResponsePrefixes(t *testing.T) {
	for _, in := range validResponses {
		buf := []byte(in)
		var h ResponseHead
		for n := 0; n < len(buf); n++ {
			if err := ParseResponse(buf[:n], Limits{}, &h); err != ErrIncomplete {
				t.Fatalf("%q: prefix %d: error %v, want ErrIncomplete", in, n, err)
			}
		}
		more := append(buf[:len(buf):len(buf)], "HTTP/1.1 200 OK\r\n"...)
		if err := ParseResponse(more, Limits{}, &h); err != nil || h.Len != len(buf) {
			t.Fatalf("%q: error %v, Len %d", in, err, h.Len)
		}
	}
}

func TestParseResponseLimits(t *testing.T) {
	head := crlf("HTTP/1.1 200 OK\nContent-Length: 5\n\n")
	var h ResponseHead
	if err := ParseResponse([]byte(head+"hello"), Limits{MaxHead: len(head)}, &h); err != nil {
		t.Fatal(err)
	}
	if err := ParseResponse([]byte(head+"hello"), Limits{MaxHead: len(head) - 1}, &h); err != ErrHeadTooLarge {
		t.Fatal(err)
	}
	if err := ParseResponse([]byte(head[:10]), Limits{MaxHead: 10}, &h); err != ErrHeadTooLarge {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("HTTP/1.1 200 OK\r\n")
	for i := range 257 {
		b.WriteString("X-" + strconv.Itoa(i) + ": v\r\n")
	}
	b.WriteString("\r\n")
	checkErr(t, ParseResponse([]byte(b.String()), Limits{}, &h), e(502, "too many headers"))
}

func TestAppendResponse(t *testing.T) {
	tests := []struct {
		name        string
		in          string
		closeClient bool
		want        string
	}{
		{"plain", "HTTP/1.1 200 OK\nContent-Length: 5\nContent-Type: text/plain\n\n", false,
			"HTTP/1.1 200 OK\nContent-Length: 5\nContent-Type: text/plain\n\n"},
		{"close client", "HTTP/1.1 200 OK\nContent-Length: 5\n\n", true,
			"HTTP/1.1 200 OK\nContent-Length: 5\nConnection: close\n\n"},
		{"http/1.0 upstream", "HTTP/1.0 404 Not Found\n\n", true,
			"HTTP/1.1 404 Not Found\nConnection: close\n\n"},
		{"no reason", "HTTP/1.1 204\nX-A: 1\n\n", false,
			"HTTP/1.1 204 \nX-A: 1\n\n"},
		{"reason as sent", "HTTP/1.1 200 Fine  thanks \n\n", true,
			"HTTP/1.1 200 Fine  thanks \nConnection: close\n\n"},
		{"hop-by-hop removed", "HTTP/1.1 200 OK\nConnection: keep-alive, X-Hop\nKeep-Alive: timeout=5\nX-Hop: 1\nx-hop: 2\n" +
			"Proxy-Authenticate: Basic\nProxy-Connection: x\nTrailer: X-T\nUpgrade: h2\nTE: deflate\nContent-Length: 0\n\n", false,
			"HTTP/1.1 200 OK\nContent-Length: 0\n\n"},
		{"upstream close dropped", "HTTP/1.1 200 OK\nConnection: close\nContent-Length: 1\n\n", false,
			"HTTP/1.1 200 OK\nContent-Length: 1\n\n"},
		{"forwarding headers kept", "HTTP/1.1 200 OK\nX-Request-Id: r\nX-Forwarded-For: 1\nContent-Length: 0\n\n", false,
			"HTTP/1.1 200 OK\nX-Request-Id: r\nX-Forwarded-For: 1\nContent-Length: 0\n\n"},
		{"values trimmed", "HTTP/1.1 200 OK\ncontent-length:5 \nX-A:\t\tb\n\n", false,
			"HTTP/1.1 200 OK\ncontent-length: 5\nX-A: b\n\n"},
		{"chunked kept", "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\nTrailer: X-T\n\n", false,
			"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n"},
		{"cl dropped with te", "HTTP/1.1 200 OK\nContent-Length: 5\nTransfer-Encoding: chunked\nX-A: 1\n\n", true,
			"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\nX-A: 1\nConnection: close\n\n"},
		{"connection cannot drop framing", "HTTP/1.1 200 OK\nConnection: Content-Length, transfer-encoding\nContent-Length: 3\n\n", false,
			"HTTP/1.1 200 OK\nContent-Length: 3\n\n"},
	}
	for _, tt := range tests {
		for _, lineEnd := range []string{"\r\n", "\n"} {
			in := strings.ReplaceAll(tt.in, "\n", lineEnd)
			t.Run(tt.name+"/"+strconv.Quote(lineEnd), func(t *testing.T) {
				var h ResponseHead
				buf := []byte(in + "body")
				if err := ParseResponse(buf, Limits{}, &h); err != nil {
					t.Fatal(err)
				}
				got := string(AppendResponse(nil, buf, &h, closeIf(tt.closeClient)))
				if want := crlf(tt.want); got != want {
					t.Errorf("got\n%q\nwant\n%q", got, want)
				}
			})
		}
	}
}

// An incomplete answer that cannot become a status line is refused at
// once; a prefix of one waits for more.
func TestParseResponseEarlyGarbage(t *testing.T) {
	var h ResponseHead
	for _, in := range []string{"H", "HTTP/", "HTTP/1.", "HTTP/1.1 200"} {
		if err := ParseResponse([]byte(in), Limits{}, &h); err != ErrIncomplete {
			t.Errorf("%q: %v, want ErrIncomplete", in, err)
		}
	}
	for _, in := range []string{"X", "http/", "HTTP/2", "<html>", "\x00\x01"} {
		var e *Error
		if err := ParseResponse([]byte(in), Limits{}, &h); !errors.As(err, &e) || e.Status != 502 {
			t.Errorf("%q: %v, want a 502 error", in, err)
		}
	}
}
