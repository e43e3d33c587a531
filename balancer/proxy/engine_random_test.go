//go:build linux

package proxy_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// Randomized tests of the engine's relay: messages cut at random places in
// both directions, and garbage from clients. Each logs its seed; a failure
// is reproduced by setting it in place of the random one.

func seeded(t *testing.T) *rand.Rand {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	return rand.New(rand.NewPCG(seed, 0))
}

// randomRequest returns a request and the body the echo backend answers
// it with.
type sentRequest struct {
	raw  []byte
	uri  string
	body []byte
}

func randomRequests(r *rand.Rand, n int) []sentRequest {
	reqs := make([]sentRequest, n)
	for i := range reqs {
		uri := fmt.Sprintf("/r%d?x=%d", i, r.IntN(1000))
		body := make([]byte, []int{0, 1, 100, 5000, 40_000}[r.IntN(5)])
		for j := range body {
			body[j] = byte('a' + r.IntN(26))
		}
		var b bytes.Buffer
		switch {
		case len(body) == 0 && r.IntN(2) == 0:
			fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: x\r\nX-N: %d\r\n\r\n", uri, i)
		case r.IntN(2) == 0:
			fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", uri, len(body))
			b.Write(body)
		default:
			fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", uri)
			for rest := body; len(rest) > 0; {
				k := min(len(rest), 1+r.IntN(9000))
				fmt.Fprintf(&b, "%x\r\n%s\r\n", k, rest[:k])
				rest = rest[k:]
			}
			b.WriteString("0\r\n\r\n")
		}
		reqs[i] = sentRequest{raw: b.Bytes(), uri: uri, body: body}
	}
	return reqs
}

// writeInPieces writes b in random pieces with an occasional pause, so the
// engine sees heads and bodies cut anywhere.
func writeInPieces(w io.Writer, r *rand.Rand, b []byte) error {
	for len(b) > 0 {
		k := min(len(b), 1+r.IntN(3000))
		if _, err := w.Write(b[:k]); err != nil {
			return err
		}
		b = b[k:]
		if r.IntN(8) == 0 {
			time.Sleep(time.Duration(r.IntN(500)) * time.Microsecond)
		}
	}
	return nil
}

// Client side: pipelined requests of every framing, cut at random.
func TestEngineRequestsCutAnywhere(t *testing.T) {
	t.Parallel()
	r := seeded(t)
	b := startBackend(t, func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("X-URI", string(ctx.RequestURI()))
		ctx.SetBody(ctx.PostBody())
	})
	p, ups := newPool(t, b.addr)
	front := startFront(t, p)
	for range 3 {
		reqs := randomRequests(r, 25)
		c, br := dialFront(t, front)
		wr := rand.New(rand.NewPCG(r.Uint64(), 1))
		go func() {
			for _, q := range reqs {
				if writeInPieces(c, wr, q.raw) != nil {
					return
				}
			}
		}()
		for i, q := range reqs {
			resp, body := readResp(t, br, "GET")
			if resp.StatusCode != 200 || resp.Header.Get("X-URI") != q.uri || body != string(q.body) {
				t.Fatalf("answer %d: %d uri %q, %d bytes; want 200 %q and the %d bytes sent",
					i, resp.StatusCode, resp.Header.Get("X-URI"), len(body), q.uri, len(q.body))
			}
		}
		c.Close()
	}
	waitInflight(t, ups[0], 0)
}

// Upstream side: answers framed by length, chunked, or by closing, cut at
// random, from a raw upstream.
func TestEngineAnswersCutAnywhere(t *testing.T) {
	t.Parallel()
	r := seeded(t)
	sock := filepath.Join(sockDir(t), "raw.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for i := uint64(0); ; i++ {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go serveCut(conn, rand.New(rand.NewPCG(i, 2)))
		}
	}()
	p, ups := newPool(t, "unix:"+sock)
	c := client(t, startFront(t, p))
	for i := range 60 {
		n := []int{0, 7, 3000, 70_000}[r.IntN(4)]
		uri := "/a?n=" + strconv.Itoa(n) + "&i=" + strconv.Itoa(i)
		resp := do(t, c, "GET", uri, nil)
		want := strings.Repeat(strconv.Itoa(i%10), n)
		if resp.StatusCode() != 200 || string(resp.Body()) != want {
			t.Fatalf("%s: %d, %d bytes, want 200 and %d bytes", uri, resp.StatusCode(), len(resp.Body()), n)
		}
	}
	waitInflight(t, ups[0], 0)
}

// serveCut answers each request for n bytes of the digit i%10, framed at
// random, written in random pieces.
func serveCut(conn net.Conn, r *rand.Rand) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		n, _ := strconv.Atoi(req.URL.Query().Get("n"))
		i, _ := strconv.Atoi(req.URL.Query().Get("i"))
		body := strings.Repeat(strconv.Itoa(i%10), n)
		var b bytes.Buffer
		framing := r.IntN(3)
		switch framing {
		case 0:
			fmt.Fprintf(&b, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-A: 1\r\n\r\n%s", n, body)
		case 1:
			b.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
			for rest := body; len(rest) > 0; {
				k := min(len(rest), 1+r.IntN(5000))
				fmt.Fprintf(&b, "%x;e=1\r\n%s\r\n", k, rest[:k])
				rest = rest[k:]
			}
			b.WriteString("0\r\nX-Trailer: 1\r\n\r\n")
		default:
			fmt.Fprintf(&b, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n%s", body)
		}
		if writeInPieces(conn, r, b.Bytes()) != nil || framing == 2 {
			return
		}
	}
}

// Garbage never crashes the engine: each connection gets an error answer
// or is closed, and the engine serves normally afterwards.
func TestEngineGarbageFromClients(t *testing.T) {
	t.Parallel()
	r := seeded(t)
	b := startBackend(t, okHandler)
	p, ups := newPool(t, b.addr)
	front := startFront(t, p)
	valid := []byte("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: a, b\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	for i := range 300 {
		var msg []byte
		switch i % 3 {
		case 0: // random bytes
			msg = make([]byte, 1+r.IntN(200))
			for j := range msg {
				msg[j] = byte(r.IntN(256))
			}
		case 1: // a valid-looking request with bytes flipped
			msg = append([]byte(nil), valid...)
			for range 1 + r.IntN(4) {
				msg[r.IntN(len(msg))] = byte(r.IntN(256))
			}
		default: // a valid-looking request cut short, then random bytes
			msg = append(append([]byte(nil), valid[:r.IntN(len(valid))]...), byte(r.IntN(256)), '\r', '\n', '\r', '\n')
		}
		conn, err := net.Dial("tcp", front)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = conn.Write(msg)
		_ = conn.(*net.TCPConn).CloseWrite()
		out, err := io.ReadAll(conn)
		conn.Close()
		if err != nil && !isReset(err) {
			t.Fatalf("message %q: %v (want an answer or a close)", msg, err)
		}
		if len(out) > 0 && !bytes.HasPrefix(out, []byte("HTTP/1.1 ")) {
			t.Fatalf("message %q: answer %q", msg, out)
		}
	}
	if resp := do(t, client(t, front), "GET", "/after", nil); resp.StatusCode() != 200 {
		t.Fatalf("after the garbage: %d", resp.StatusCode())
	}
	waitInflight(t, ups[0], 0)
}

// Garbage from an upstream never crashes the engine: the client gets a 502
// (or what the garbage happened to frame) and the engine carries on.
func TestEngineGarbageFromUpstream(t *testing.T) {
	t.Parallel()
	r := seeded(t)
	answers := make(chan []byte, 1)
	addr := rawUpstream(t, func(conn net.Conn) {
		// One garbage answer, then the connection closes: an upstream
		// that stalls mid-head is the timeout's case.
		if _, err := http.ReadRequest(bufio.NewReader(conn)); err == nil {
			_, _ = conn.Write(<-answers)
		}
	})
	p, ups := newPool(t, addr)
	front := startFront(t, p)
	valid := []byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: x\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	for i := range 150 {
		var msg []byte
		if i%2 == 0 {
			msg = make([]byte, 1+r.IntN(300))
			for j := range msg {
				msg[j] = byte(r.IntN(256))
			}
		} else {
			msg = append([]byte(nil), valid...)
			for range 1 + r.IntN(4) {
				msg[r.IntN(len(msg))] = byte(r.IntN(256))
			}
		}
		answers <- msg
		conn, err := net.Dial("tcp", front)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(conn, "POST /j HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		out, err := io.ReadAll(conn)
		conn.Close()
		if err != nil && !isReset(err) {
			t.Fatalf("upstream answer %q: %v (want an answer or a close)", msg, err)
		}
		if len(out) > 0 && !bytes.HasPrefix(out, []byte("HTTP/1.1 ")) {
			t.Fatalf("upstream answer %q: client got %q", msg, out)
		}
		select {
		case <-answers: // the upstream never asked for it (the request failed first)
		default:
		}
	}
	waitInflight(t, ups[0], 0)
}
