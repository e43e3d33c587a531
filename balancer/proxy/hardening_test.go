//go:build linux

package proxy_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rawUpstream is an upstream on a unix socket whose connections are
// handled by serve, for answers no HTTP library would send.
func rawUpstream(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	sock := filepath.Join(sockDir(t), "raw.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				serve(conn)
			}()
		}
	}()
	return "unix:" + sock
}

// readHead reads a request head from br and returns it.
func readHead(br *bufio.Reader) (string, error) {
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		head.WriteString(line)
		if err != nil {
			return head.String(), err
		}
		if line == "\r\n" {
			return head.String(), nil
		}
	}
}

// headRecorder is a raw upstream that sends every request head it reads
// to heads and answers each with answer (nothing when empty).
func headRecorder(t *testing.T, answer string) (string, chan string) {
	heads := make(chan string, 16)
	addr := rawUpstream(t, func(conn net.Conn) {
		br := bufio.NewReader(conn)
		for {
			head, err := readHead(br)
			if err != nil {
				return
			}
			heads <- head
			_, _ = io.WriteString(conn, answer)
		}
	})
	return addr, heads
}

// Issue 8, item 2: a chunked request goes upstream as exactly
// "Transfer-Encoding: chunked" with its body in canonical form, and
// trailers that carry framing or routing never reach the upstream.
func TestChunkedRequestForwardedCanonical(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	addr := rawUpstream(t, func(conn net.Conn) {
		br := bufio.NewReader(conn)
		head, err := readHead(br)
		if err != nil {
			return
		}
		var body bytes.Buffer
		for !strings.HasSuffix(body.String(), "\r\n\r\n") {
			b, err := br.ReadByte()
			if err != nil {
				return
			}
			body.WriteByte(b)
		}
		got <- head + body.String()
		_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	p, _ := newPool(t, addr)
	front := startFront(t, p)
	c, br := dialFront(t, front)
	_, _ = io.WriteString(c, "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n"+
		"005;ext=1\r\nhello\r\n0\r\nContent-Length: 5\r\nHost: evil\r\nTransfer-Encoding: chunked\r\nX-Ok: 1\r\n\r\n")
	resp, body := readResp(t, br, "POST")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("answer %d %q", resp.StatusCode, body)
	}
	up := <-got
	head, rest, _ := strings.Cut(up, "\r\n\r\n")
	if n := strings.Count(head, "Transfer-Encoding"); n != 1 || !strings.Contains(head, "\r\nTransfer-Encoding: chunked\r\n") {
		t.Errorf("upstream head:\n%s", head)
	}
	if want := "5\r\nhello\r\n0\r\nX-Ok: 1\r\n\r\n"; rest != want {
		t.Errorf("upstream body %q, want %q", rest, want)
	}
}

// Issue 8, item 1: bare LF in chunked framing is refused with 400 and the
// upstream gets no second request out of it.
func TestChunkedBareLFRefused(t *testing.T) {
	t.Parallel()
	addr, heads := headRecorder(t, "")
	p, _ := newPool(t, addr)
	front := startFront(t, p)
	c, br := dialFront(t, front)
	smuggled := "0\r\n\r\nGET /sleep?smuggled=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n"
	_, _ = io.WriteString(c, "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"2;\n"+"xx\r\n"+"43\r\n"+smuggled+"\r\n0\r\n\r\n")
	resp, _ := readResp(t, br, "POST")
	if resp.StatusCode != 400 {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
	time.Sleep(100 * time.Millisecond)
	close(heads)
	for h := range heads {
		if strings.Contains(h, "smuggled") {
			t.Fatalf("upstream got the smuggled request:\n%s", h)
		}
	}
}

// Issue 8, item 5: an upstream that answers before it has read the whole
// body and closes (413 for a body over its limit) gets its answer relayed
// to the client, and is not counted as failing.
func TestEarlyAnswerRelayed(t *testing.T) {
	t.Parallel()
	addr := rawUpstream(t, func(conn net.Conn) {
		if _, err := readHead(bufio.NewReader(conn)); err != nil {
			return
		}
		_, _ = io.WriteString(conn, "HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big!")
		if uc, ok := conn.(*net.UnixConn); ok {
			_ = uc.CloseWrite()
		}
	})
	p, ups := newPool(t, addr)
	front := startFront(t, p)
	for i := range 3 {
		c, br := dialFront(t, front)
		go func() {
			_, _ = io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 8388608\r\n\r\n")
			chunk := bytes.Repeat([]byte("x"), 64<<10)
			for range 128 {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		}()
		resp, body := readResp(t, br, "POST")
		if resp.StatusCode != http.StatusRequestEntityTooLarge || body != "too big!" {
			t.Fatalf("round %d: answer %d %q, want the upstream's 413", i, resp.StatusCode, body)
		}
	}
	if f := ups[0].Failures(); f != 0 {
		t.Fatalf("upstream counted %d failures for answers the client caused", f)
	}
}

// Issue 8, item 6: request targets and Host are strict. An absolute-form
// target goes upstream in origin-form with Host from the URI; what is
// malformed, and CONNECT, never reaches the upstream.
func TestStrictRequestTargets(t *testing.T) {
	t.Parallel()
	addr, heads := headRecorder(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	p, _ := newPool(t, addr)
	front := startFront(t, p)

	c, br := dialFront(t, front)
	_, _ = io.WriteString(c, "GET http://Other.Example:8080/p?q=1 HTTP/1.1\r\nHost: evil\r\n\r\n")
	if resp, body := readResp(t, br, "GET"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("absolute form: %d %q", resp.StatusCode, body)
	}
	head := <-heads
	if !strings.HasPrefix(head, "GET /p?q=1 HTTP/1.1\r\n") || !strings.Contains(head, "\r\nHost: Other.Example:8080\r\n") ||
		strings.Contains(head, "evil") {
		t.Fatalf("absolute form forwarded as:\n%s", head)
	}

	for _, tt := range []struct {
		req    string
		status int
	}{
		{"GET foo HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost:\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", 400},
		{"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405},
	} {
		resp, _, closed := rawExchange(t, front, tt.req)
		if resp == nil || resp.StatusCode != tt.status || !closed {
			t.Errorf("%q: %v closed=%v, want %d and the connection closed", tt.req, resp, closed, tt.status)
		}
	}
	select {
	case h := <-heads:
		t.Fatalf("a refused request reached the upstream:\n%s", h)
	case <-time.After(100 * time.Millisecond):
	}
}
