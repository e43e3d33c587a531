//go:build linux

package proxy

import (
	"syscall"

	"github.com/procbal/procbal/balancer/proxy/wire"
)

// Tunnels: a client that asked to switch protocols (Connection: upgrade,
// Upgrade: websocket) and got 101 from its upstream keeps the connection
// to that upstream, and the engine relays bytes both ways as they come,
// with no parsing, until either side closes; a half-close is passed on.
// The attempt ends (and is observed) at the 101; the tunnel then counts as
// one request in flight on its upstream until it closes, so least_conn
// weighs it and a draining worker keeps it until DRAIN_TIMEOUT.

// startTunnel passes the 101 head h (head is its bytes) on and turns the
// exchange into a tunnel.
func (c *clientConn) startTunnel(head []byte, h *wire.ResponseHead) {
	l := c.l
	before := len(c.outBuf())
	c.out.b = wire.AppendResponse(c.out.b, head, h, "upgrade") // up.r is past head already
	c.addSetCookie()
	c.x.log.bytesOut += int64(len(c.out.b) - before)
	c.x.logStatus = h.Status
	c.x.respHead, c.x.status = true, h.Status
	u := c.x.att.u
	c.endAttempt(answered)
	u.OpenTunnel()
	l.e.tunnels.Add(1)
	c.x.tunnel = u
	c.state = stTunnel
	c.deadline = l.now + int64(l.e.opt.TunnelIdleTimeout)
}

// stepTunnel relays what either side sent to the other. Once both sides
// have ended, the connection closes.
func (c *clientConn) stepTunnel() bool {
	up := c.x.up
	toUp := c.pump(&c.sock, &up.sock, &c.x.clientEOF)
	if c.closed {
		return false
	}
	toClient := c.pump(&up.sock, &c.sock, &c.x.upEOF)
	if c.closed {
		return false
	}
	if c.x.clientEOF && c.x.upEOF {
		c.close()
		return false
	}
	if toUp || toClient {
		c.deadline = c.l.now + int64(c.l.e.opt.TunnelIdleTimeout)
	}
	return toUp || toClient
}

// pump writes what src's buffer holds to dst, then reads src again once
// the buffer is empty. At src's end of stream, everything before it having
// been written, dst's write side is shut: the half-close goes on. A write
// error closes the connection. It reports whether anything moved.
func (c *clientConn) pump(src, dst *sock, eof *bool) bool {
	moved := false
	if src.r < src.w && dst.writable {
		n, errno := rawWrite(dst.fd, src.in[src.r:src.w])
		switch {
		case n > 0:
			src.r += n
			moved = true
			if src.r < src.w {
				dst.writable = false
			}
		case errno == syscall.EAGAIN:
			dst.writable = false
		case errno != syscall.EINTR:
			c.close()
			return false
		}
	}
	if src.r == src.w && !*eof && src.readable {
		switch c.l.read(src, false) {
		case readGot:
			moved = true
		case readEnd:
			*eof, moved = true, true
			_ = syscall.Shutdown(dst.fd, syscall.SHUT_WR)
		}
	}
	return moved
}
