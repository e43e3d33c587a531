package main

// The WebSocket row: a -paths entry ws:<path> ("ws:/ws") opens -connections
// WebSockets to the path and echoes messages over them, whatever -load
// says, with the generator here: each tunnel sends a wsMessageBytes text
// message and waits for its echo, in a closed loop, so a row reads as
// echoed messages a second and latency per message.
//
// The reference worker has no WebSocket route, so behind every proxy a ws:
// path is measured on systems of its own, fronting N of this file's echo
// workers: the bench binary run again with PROCBAL_BENCH_ROLE=ws-echo-worker
// (a worker in the sense of docs/WORKERS.md: WORKER_SOCKET, or WORKER_ADDR
// for direct, 200 on /healthz and /api/health, exit 0 on SIGTERM). Both
// ends speak RFC 6455 by hand, a few dozen lines over net/http's hijacked
// connection, so the bench needs no WebSocket library and the generator
// allocates nothing per message.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// wsPrefix opens a WebSocket entry of -paths.
const wsPrefix = "ws:"

// wsMessageBytes is the size of every echoed message.
const wsMessageBytes = 64

// benchRoleEnv, set to wsEchoRole, makes the bench binary a WebSocket echo
// worker instead (main checks it first).
const (
	benchRoleEnv = "PROCBAL_BENCH_ROLE"
	wsEchoRole   = "ws-echo-worker"
)

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	wsText  = 0x1
	wsClose = 0x8
	wsPing  = 0x9
	wsPong  = 0xa
)

// wsMaxFrame bounds a frame's payload on both ends.
const wsMaxFrame = 1 << 20

// wsGUID is what a handshake's key is hashed with (RFC 6455 section 1.3).
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

var errWSFrameTooBig = errors.New("websocket frame over 1 MiB")

// wsAccept returns the Sec-WebSocket-Accept answer to key.
func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// wsAppendFrame appends one frame carrying payload to dst: final when fin,
// masked with key when mask (a client's frames must be, a server's must
// not).
func wsAppendFrame(dst []byte, op byte, fin bool, payload []byte, mask bool, key [4]byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	var mb byte
	if mask {
		mb = 0x80
	}
	dst = append(dst, b0)
	switch n := len(payload); {
	case n < 126:
		dst = append(dst, mb|byte(n))
	case n <= 0xffff:
		dst = append(dst, mb|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, mb|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	if !mask {
		return append(dst, payload...)
	}
	dst = append(dst, key[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	for i := range payload {
		dst[start+i] ^= key[i&3]
	}
	return dst
}

// wsReadFrame reads one frame, unmasked, its payload in buf when it fits
// (else in a new slice, which it returns for reuse).
func wsReadFrame(r *bufio.Reader, buf []byte) (op byte, fin bool, payload []byte, err error) {
	var h [8]byte
	if _, err = io.ReadFull(r, h[:2]); err != nil {
		return
	}
	fin, op = h[0]&0x80 != 0, h[0]&0x0f
	masked := h[1]&0x80 != 0
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		if _, err = io.ReadFull(r, h[:2]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(h[:2]))
	case 127:
		if _, err = io.ReadFull(r, h[:8]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(h[:8])
	}
	if n > wsMaxFrame {
		err = errWSFrameTooBig
		return
	}
	var key [4]byte
	if masked {
		if _, err = io.ReadFull(r, key[:]); err != nil {
			return
		}
	}
	if uint64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	payload = buf[:n]
	if _, err = io.ReadFull(r, payload); err != nil {
		return
	}
	if masked {
		for i := range payload {
			payload[i] ^= key[i&3]
		}
	}
	return
}

// headerHasToken reports whether a comma-separated header lists token, in
// any case (Connection: keep-alive, Upgrade).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// wsEchoHandler is the echo worker: /healthz and /api/health answer 200,
// and a WebSocket handshake on any other path becomes an echo of every
// frame it gets (pings answered with pongs, a close with a close).
func wsEchoHandler(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz", "/api/health":
		io.WriteString(w, "ok\n")
		return
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if !headerHasToken(r.Header, "Connection", "upgrade") || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || key == "" {
		http.Error(w, "a WebSocket echo: send a WebSocket handshake", http.StatusBadRequest)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		wsAccept(key) + "\r\n\r\n")
	if brw.Flush() != nil {
		return
	}
	wsEcho(conn, brw.Reader)
}

// wsEcho sends every frame read from r back on conn, unmasked, until a
// close or an error.
func wsEcho(conn net.Conn, r *bufio.Reader) {
	var in, out []byte
	for {
		op, fin, p, err := wsReadFrame(r, in)
		if err != nil {
			return
		}
		in = p[:0]
		switch op {
		case wsPing:
			op = wsPong
		case wsPong:
			continue
		}
		out = wsAppendFrame(out[:0], op, fin, p, false, [4]byte{})
		if _, err := conn.Write(out); err != nil || op == wsClose {
			return
		}
	}
}

// wsEchoWorker runs the echo worker on WORKER_SOCKET (under the balancer,
// nginx or HAProxy) or WORKER_ADDR (direct) until SIGTERM, then exits 0.
func wsEchoWorker() int {
	network, addr := "unix", os.Getenv("WORKER_SOCKET")
	if addr == "" {
		network, addr = "tcp", os.Getenv("WORKER_ADDR")
	} else {
		os.Remove(addr) // a stale socket file
	}
	if addr == "" {
		fmt.Fprintln(os.Stderr, "ws echo worker: set WORKER_SOCKET or WORKER_ADDR")
		return 2
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ws echo worker:", err)
		return 1
	}
	srv := &http.Server{Handler: http.HandlerFunc(wsEchoHandler), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go srv.Serve(ln)
	<-ctx.Done()
	// Hijacked connections are not the server's to wait for: they end
	// with the process.
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	return 0
}

// wsDial opens a WebSocket to path at addr (host:port) and returns the
// connection with its reader, which may hold bytes past the 101 already.
func wsDial(ctx context.Context, addr, path string) (net.Conn, *bufio.Reader, error) {
	d := net.Dialer{Timeout: goLoadTimeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	var nonce [16]byte
	rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	c.SetDeadline(time.Now().Add(goLoadTimeout))
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, nil, err
	}
	br := bufio.NewReaderSize(c, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("WebSocket handshake: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(key) {
		c.Close()
		return nil, nil, fmt.Errorf("WebSocket handshake: %s (Sec-WebSocket-Accept %q)", resp.Status, resp.Header.Get("Sec-WebSocket-Accept"))
	}
	c.SetDeadline(time.Time{})
	return c, br, nil
}

// runWSLoad opens o.Connections WebSockets to rawURL (http://host/path),
// then echoes messages over each in a closed loop for o.Duration, and
// reports like wrk: echoed messages, messages a second, latency
// percentiles per message, socket errors (a failed handshake, write or
// read; the tunnel is then opened again) and wrong echoes (BadStatus).
func runWSLoad(ctx context.Context, o wrkOptions, rawURL string) (wrkResult, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return wrkResult{}, err
	}
	if u.Scheme != "http" || u.Host == "" || o.Connections < 1 {
		return wrkResult{}, fmt.Errorf("WebSocket load %q with %d tunnels: want an http:// URL and at least 1", rawURL, o.Connections)
	}
	path := u.RequestURI()
	type tunnel struct {
		c  net.Conn
		br *bufio.Reader
	}
	tunnels := make([]tunnel, o.Connections)
	var wg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	for i := range tunnels {
		wg.Go(func() {
			c, br, err := wsDial(ctx, u.Host, path)
			if err != nil {
				errOnce.Do(func() { firstErr = err })
				return
			}
			tunnels[i] = tunnel{c, br}
		})
	}
	wg.Wait()
	if firstErr != nil {
		for _, t := range tunnels {
			if t.c != nil {
				t.c.Close()
			}
		}
		return wrkResult{}, fmt.Errorf("opening %d WebSockets to %s: %w", o.Connections, rawURL, firstErr)
	}
	var stop atomic.Bool
	timer := time.AfterFunc(o.Duration, func() { stop.Store(true) })
	defer timer.Stop()
	defer context.AfterFunc(ctx, func() { stop.Store(true) })()
	stats := make([]connStats, len(tunnels))
	msg := bytes.Repeat([]byte("x"), wsMessageBytes)
	start := time.Now()
	for i, t := range tunnels {
		wg.Go(func() { stats[i] = wsLoop(ctx, u.Host, path, t.c, t.br, msg, &stop) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return wrkResult{}, err
	}
	return mergeStats(stats, time.Since(start)), nil
}

// wsLoop echoes msg over one tunnel until stop is set; a tunnel that fails
// is counted and opened again. It closes the tunnel with a close frame.
func wsLoop(ctx context.Context, addr, path string, c net.Conn, br *bufio.Reader, msg []byte, stop *atomic.Bool) connStats {
	lat := make([]time.Duration, 0, initialSamples)
	var n, sockErrs, bad int64
	out := make([]byte, 0, len(msg)+14)
	in := make([]byte, 0, len(msg))
	var key [4]byte
	for !stop.Load() {
		if c == nil {
			var err error
			if c, br, err = wsDial(ctx, addr, path); err != nil {
				sockErrs++
				time.Sleep(10 * time.Millisecond)
				continue
			}
		}
		binary.LittleEndian.PutUint32(key[:], mrand.Uint32())
		out = wsAppendFrame(out[:0], wsText, true, msg, true, key)
		t0 := time.Now()
		c.SetDeadline(t0.Add(goLoadTimeout))
		_, err := c.Write(out)
		var op byte
		var p []byte
		if err == nil {
			op, _, p, err = wsReadFrame(br, in)
		}
		took := time.Since(t0)
		if err != nil {
			sockErrs++
			c.Close()
			c = nil
			continue
		}
		in = p[:0]
		n++
		lat = append(lat, took)
		if op != wsText || !bytes.Equal(p, msg) {
			bad++
		}
	}
	if c != nil {
		c.SetDeadline(time.Now().Add(time.Second))
		c.Write(wsAppendFrame(out[:0], wsClose, true, []byte{0x03, 0xe8}, true, key)) // 1000: normal closure
		c.Close()
	}
	return connStats{latencies: lat, requests: n, sockErrs: sockErrs, badStatus: bad}
}
