package wire

import (
	"strings"
	"testing"
)

var validChunked = []struct {
	body string
	data int64
}{
	{"0\r\n\r\n", 0},
	{"5\r\nhello\r\n0\r\n\r\n", 5},
	{"A\r\n0123456789\r\n1\r\nx\r\n0\r\n\r\n", 11},
	{"a\r\n0123456789\r\n00000\r\n\r\n", 10},
	{"1F\r\n" + strings.Repeat("y", 31) + "\r\n0\r\n\r\n", 31},
	{"5;ext=1;q=\"a b\"\r\nhello\r\n0;last\r\n\r\n", 5},
	{"5 ;ext\r\nhello\r\n0\t\r\n\r\n", 5},
	{"5\r\nhello\r\n0\r\nX-Sum: abc\r\nX-Other:\tv 1\r\n\r\n", 5},
	{"3\r\n\r\n\r\r\n0\r\nx:\r\n\r\n", 3},
	{"10000000000\r\n", 1 << 40}, // not complete; the size is accepted
}

// scanAll feeds body to a fresh scanner in pieces of size step (0: whole)
// and returns the bytes it said belong to the body.
func scanAll(t *testing.T, body string, step int) (n int, done bool, data int64, err error) {
	t.Helper()
	var c ChunkedScanner
	p := []byte(body)
	if step <= 0 {
		step = len(p)
	}
	for len(p) > 0 {
		k := min(step, len(p))
		m, d, err := c.Scan(p[:k])
		n += m
		if err != nil {
			return n, false, c.Data(), err
		}
		if d {
			return n, true, c.Data(), nil
		}
		if m != k {
			t.Fatalf("Scan consumed %d of %d without finishing", m, k)
		}
		p = p[k:]
	}
	return n, false, c.Data(), nil
}

func TestChunkedValid(t *testing.T) {
	const next = "GET /next HTTP/1.1\r\n\r\n"
	for _, tt := range validChunked {
		complete := !strings.HasPrefix(tt.body, "10000000000")
		for _, step := range []int{0, 1, 2, 3, 7} {
			n, done, data, err := scanAll(t, tt.body+next, step)
			if err != nil {
				t.Fatalf("%q step %d: %v", tt.body, step, err)
			}
			wantN := len(tt.body)
			if !complete {
				wantN = len(tt.body + next)
			}
			if done != complete || n != wantN || data != tt.data {
				t.Errorf("%q step %d: n=%d done=%v data=%d; want n=%d done=%v data=%d",
					tt.body, step, n, done, data, wantN, complete, tt.data)
			}
		}
		// Split in two at every position.
		if !complete {
			continue
		}
		for cut := 0; cut <= len(tt.body); cut++ {
			var c ChunkedScanner
			in := []byte(tt.body + next)
			n1, d1, err := c.Scan(in[:cut])
			if err != nil || d1 && cut < len(tt.body) || n1 != cut && !d1 {
				t.Fatalf("%q cut %d: first %d %v %v", tt.body, cut, n1, d1, err)
			}
			if d1 {
				continue
			}
			n2, d2, err := c.Scan(in[cut:])
			if err != nil || !d2 || n1+n2 != len(tt.body) {
				t.Fatalf("%q cut %d: %d+%d %v %v", tt.body, cut, n1, n2, d2, err)
			}
		}
	}
}

func TestChunkedDoneAndReset(t *testing.T) {
	var c ChunkedScanner
	if n, done, err := c.Scan([]byte("2\r\nhi\r\n0\r\n\r\nrest")); n != 12 || !done || err != nil {
		t.Fatalf("Scan = %d %v %v", n, done, err)
	}
	if n, done, err := c.Scan([]byte("more")); n != 0 || !done || err != nil {
		t.Fatalf("after done: %d %v %v", n, done, err)
	}
	if n, done, err := c.Scan(nil); n != 0 || !done || err != nil {
		t.Fatalf("after done, empty: %d %v %v", n, done, err)
	}
	c.Reset()
	if c.Data() != 0 {
		t.Fatal("Data after Reset")
	}
	if n, done, err := c.Scan([]byte("zz")); n != 0 || done || err == nil {
		t.Fatalf("bad after Reset: %d %v %v", n, done, err)
	}
	// Errors stick.
	if _, _, err := c.Scan([]byte("0\r\n\r\n")); err == nil {
		t.Fatal("error not sticky")
	}
	c.Reset()
	if _, done, err := c.Scan([]byte("0\r\n\r\n")); !done || err != nil {
		t.Fatalf("after second Reset: %v %v", done, err)
	}
	// Empty input changes nothing.
	var z ChunkedScanner
	if n, done, err := z.Scan(nil); n != 0 || done || err != nil {
		t.Fatalf("empty: %d %v %v", n, done, err)
	}
}

func TestChunkedMalformed(t *testing.T) {
	tests := []struct {
		name, body, msg string
	}{
		{"empty size", "\r\n", "bad chunk size"},
		{"bad hex", "g\r\n", "bad chunk size"},
		{"sign", "-1\r\n", "bad chunk size"},
		{"0x prefix", "0x5\r\nhello\r\n", "bad chunk size"},
		{"leading space", " 5\r\nhello\r\n", "bad chunk size"},
		{"space in size", "5 5\r\nhello\r\n", "bad chunk size"},
		{"cr without lf", "5\rhello\r\n", "bad chunk size"},
		{"above 1<<40", "10000000001\r\n", "chunk size too large"},
		{"overflow", "ffffffffffffffffffff\r\n", "chunk size too large"},
		{"ctl in ext", "5;a\x00\r\nhello\r\n", "bad chunk extension"},
		{"data too long", "5\r\nhello!\r\n0\r\n\r\n", "missing CRLF after chunk data"},
		{"data cr without lf", "5\r\nhello\rx", "missing CRLF after chunk data"},
		{"data too short", "5\r\nhel\r\n0\r\n\r\n", "missing CRLF after chunk data"},
		{"long size line", "5;" + strings.Repeat("e", 5000) + "\r\n", "chunk line too long"},
		{"long zeros", strings.Repeat("0", 5000) + "1\r\n", "chunk line too long"},
		{"trailer obs fold", "0\r\nX: 1\r\n 2\r\n\r\n", "malformed trailer"},
		{"trailer no colon", "0\r\nX 1\r\n\r\n", "malformed trailer"},
		{"trailer ctl", "0\r\nX: \x01\r\n\r\n", "malformed trailer"},
		{"trailer cr without lf", "0\r\nX: 1\r\r\n\r\n", "malformed trailer"},
		{"final cr without lf", "0\r\n\rx", "malformed trailer"},
		{"long trailer line", "0\r\nX: " + strings.Repeat("v", 5000) + "\r\n\r\n", "chunk line too long"},
		// Bare LF anywhere in the framing: gunicorn ends these lines only
		// at CRLF, so a body read with LF is another body there (issue 8).
		{"bare lf after size", "5\nhello\r\n0\r\n\r\n", "bad chunk size"},
		{"bare lf after ext", "2;\nxx\r\n0\r\n\r\n", "bad chunk extension"},
		{"bare lf after size ws", "2 \nxx\r\n0\r\n\r\n", "bad chunk size"},
		{"bare lf after data", "5\r\nhello\n0\r\n\r\n", "missing CRLF after chunk data"},
		{"bare lf last chunk", "0\n\r\n", "bad chunk size"},
		{"bare lf trailer", "0\r\nX: 1\n\r\n", "malformed trailer"},
		{"bare lf final line", "0\r\n\n", "malformed trailer"},
		{"bare cr in ext", "2;a\rb\r\nxx\r\n0\r\n\r\n", "bad chunk size"},
		{"trailers too large", "0\r\n" + strings.Repeat("X: "+strings.Repeat("v", 4000)+"\r\n", 17) + "\r\n", "trailer section too large"},
	}
	for _, tt := range tests {
		for _, step := range []int{0, 1} {
			_, done, _, err := scanAll(t, tt.body, step)
			if done {
				t.Errorf("%s step %d: done", tt.name, step)
				continue
			}
			checkErr(t, err, e(400, tt.msg))
		}
	}
}

// TestChunkedLimitBoundaries checks that lines of exactly the limit pass.
func TestChunkedLimitBoundaries(t *testing.T) {
	size := "5;" + strings.Repeat("e", maxChunkLine-2)
	trailer := "X:" + strings.Repeat("v", maxChunkLine-2)
	body := size + "\r\nhello\r\n0\r\n" + strings.Repeat(trailer+"\r\n", maxTrailers/maxChunkLine) + "\r\n"
	if n, done, _, err := scanAll(t, body, 0); err != nil || !done || n != len(body) {
		t.Fatalf("n=%d done=%v err=%v", n, done, err)
	}
}

// TestChunkedFilterCanonical checks Filter's output for every split of the
// input: one canonical form, forbidden trailers dropped (issue 8).
func TestChunkedFilterCanonical(t *testing.T) {
	tests := []struct{ in, out string }{
		{"0\r\n\r\n", "0\r\n\r\n"},
		{"5\r\nhello\r\n0\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n"},
		{"0005;a=b ;c\r\nhello\r\n00 \r\n\r\n", "5\r\nhello\r\n0\r\n\r\n"},
		{"A\r\n0123456789\r\n0\r\n\r\n", "a\r\n0123456789\r\n0\r\n\r\n"},
		{"1\r\nx\r\n0\r\nContent-Length: 5\r\nX-Ok: 1\r\nHOST: evil\r\n" +
			"transfer-encoding: chunked\r\nTrailer: a\r\nX-Long-Trailer-Name-Beyond-Held: v\r\n\r\n",
			"1\r\nx\r\n0\r\nX-Ok: 1\r\nX-Long-Trailer-Name-Beyond-Held: v\r\n\r\n"},
	}
	for _, tt := range tests {
		for cut := 0; cut <= len(tt.in); cut++ {
			var c ChunkedScanner
			in := []byte(tt.in + "NEXT")
			out, n1, d1, err := c.Filter(nil, in[:cut])
			if err != nil || len(out) > n1+FilterSlack {
				t.Fatalf("%q cut %d: %v, %d bytes out for %d", tt.in, cut, err, len(out), n1)
			}
			n2 := 0
			if !d1 {
				before := len(out)
				out, n2, d1, err = c.Filter(out, in[cut:])
				if err != nil || len(out)-before > n2+FilterSlack {
					t.Fatalf("%q cut %d: %v", tt.in, cut, err)
				}
			}
			if !d1 || n1+n2 != len(tt.in) || string(out) != tt.out {
				t.Fatalf("%q cut %d: done=%v n=%d out %q; want %q", tt.in, cut, d1, n1+n2, out, tt.out)
			}
			// The canonical form reads the same, and filters to itself.
			var c2 ChunkedScanner
			if again, _, done, err := c2.Filter(nil, out); !done || err != nil || string(again) != tt.out {
				t.Fatalf("%q: canonical form not stable: %q %v", tt.in, again, err)
			}
		}
	}
}
