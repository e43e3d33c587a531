//go:build linux

package proxy_test

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/procbal/procbal/balancer/pool"
)

// Issue 13: Upgrade requests become tunnels.

// echoUpgrader is a raw upstream that answers an Upgrade request with 101
// and then echoes every byte back until the client half-closes, when it
// writes "bye" and closes. It sends each head it reads to heads.
func echoUpgrader(t *testing.T, heads chan<- string) string {
	return rawUpstream(t, func(conn net.Conn) {
		br := bufio.NewReader(conn)
		head, err := readHead(br)
		if err != nil {
			return
		}
		heads <- head
		if !strings.Contains(head, "\r\nUpgrade: websocket\r\n") {
			_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno")
			return
		}
		_, _ = io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n")
		_, _ = io.Copy(conn, br) // until the client's half-close
		_, _ = io.WriteString(conn, "bye")
	})
}

const upgradeReq = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n"

func TestUpgradeTunnel(t *testing.T) {
	t.Parallel()
	heads := make(chan string, 4)
	p, ups := newPool(t, echoUpgrader(t, heads))
	c, br := dialFront(t, startFront(t, p))
	_, _ = io.WriteString(c, upgradeReq)
	resp, err := readStatus(br)
	if err != nil || !strings.HasPrefix(resp, "HTTP/1.1 101 ") || !strings.Contains(resp, "\r\nUpgrade: websocket\r\n") ||
		!strings.Contains(resp, "\r\nConnection: upgrade\r\n") || !strings.Contains(resp, "Sec-WebSocket-Accept: x") {
		t.Fatalf("answer %q (%v)", resp, err)
	}
	head := <-heads
	if !strings.Contains(head, "\r\nConnection: upgrade\r\n") || !strings.Contains(head, "\r\nUpgrade: websocket\r\n") ||
		!strings.Contains(head, "Sec-WebSocket-Key: k") {
		t.Fatalf("upstream got:\n%s", head)
	}
	if ups[0].Tunnels() != 1 || ups[0].Inflight() != 1 {
		t.Errorf("tunnels %d, in flight %d during the tunnel; want 1 and 1", ups[0].Tunnels(), ups[0].Inflight())
	}
	for i := range 50 {
		msg := strings.Repeat(string(rune('a'+i%26)), 1+i*700)
		_, _ = io.WriteString(c, msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
			t.Fatalf("echo %d: %v", i, err)
		}
	}
	_ = c.(*net.TCPConn).CloseWrite() // half-close goes on; the upstream still answers
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "bye" {
		t.Fatalf("after half-close: %q %v", rest, err)
	}
	waitInflight(t, ups[0], 0)
	if ups[0].Tunnels() != 0 {
		t.Errorf("tunnels %d after close", ups[0].Tunnels())
	}
}

// readStatus reads a head from br and returns it.
func readStatus(br *bufio.Reader) (string, error) {
	return readHead(br)
}

// An Upgrade with a body or on HTTP/1.0 is refused and never reaches the
// upstream; a 101 the client did not ask for is a 502.
func TestUpgradeRefusals(t *testing.T) {
	t.Parallel()
	heads := make(chan string, 4)
	addr := rawUpstream(t, func(conn net.Conn) {
		br := bufio.NewReader(conn)
		head, err := readHead(br)
		if err != nil {
			return
		}
		heads <- head
		_, _ = io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n")
	})
	p, _ := newPool(t, addr)
	front := startFront(t, p)
	for _, tt := range []struct {
		req    string
		status int
	}{
		{"POST /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\nContent-Length: 3\r\n\r\nabc", 400},
		{"POST /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"GET /ws HTTP/1.0\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", 400},
	} {
		resp, _, closed := rawExchange(t, front, tt.req)
		if resp == nil || resp.StatusCode != tt.status || !closed {
			t.Errorf("%q: %v closed=%v, want %d", tt.req, resp, closed, tt.status)
		}
	}
	select {
	case h := <-heads:
		t.Fatalf("a refused Upgrade reached the upstream:\n%s", h)
	case <-time.After(100 * time.Millisecond):
	}
	// Not asked: Upgrade without the Connection token is not an upgrade,
	// so the upstream's 101 is refused.
	resp, _, _ := rawExchange(t, front, "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n")
	if resp == nil || resp.StatusCode != 502 {
		t.Fatalf("unasked 101: %v, want 502", resp)
	}
	if h := <-heads; strings.Contains(h, "Upgrade:") {
		t.Fatalf("an Upgrade header without the Connection token went on:\n%s", h)
	}
}

// Beyond MaxTunnels an Upgrade gets 503; an idle tunnel closes after
// TunnelIdleTimeout.
func TestTunnelBounds(t *testing.T) {
	t.Parallel()
	heads := make(chan string, 8)
	p, ups := newPool(t, echoUpgrader(t, heads))
	o := testEngineOptions
	o.MaxTunnels = 1
	o.TunnelIdleTimeout = 400 * time.Millisecond
	front := startFrontWith(t, p, o)
	c, br := dialFront(t, front)
	_, _ = io.WriteString(c, upgradeReq)
	if resp, err := readStatus(br); err != nil || !strings.HasPrefix(resp, "HTTP/1.1 101 ") {
		t.Fatalf("first tunnel: %q %v", resp, err)
	}
	resp, _, _ := rawExchange(t, front, upgradeReq)
	if resp == nil || resp.StatusCode != 503 {
		t.Fatalf("second tunnel: %v, want 503", resp)
	}
	start := time.Now()
	if _, err := io.ReadAll(br); err != nil {
		t.Fatalf("idle tunnel: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("idle tunnel closed after %v, want about 400ms", d)
	}
	waitInflight(t, ups[0], 0)
	var _ = pool.Healthy
}
