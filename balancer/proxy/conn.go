//go:build linux

package proxy

import (
	"errors"
	"syscall"

	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/balancer/proxy/wire"
)

// A client connection's states.
const (
	stHead     = iota // waiting for, or reading, a request head
	stExchange        // a request is being relayed
	stLinger          // answered and closing: discarding what the client still sends
	stTunnel          // switched protocols: bytes relayed both ways as they are
)

// sendBuf is bytes waiting to be written to a socket: b[off:].
type sendBuf struct {
	b   []byte
	off int
}

func (s *sendBuf) empty() bool { return s.off == len(s.b) }

// sock is what the client and upstream connections share: the socket,
// its readiness as the last events and calls left it, and a read buffer
// whose unread bytes are in[r:w].
type sock struct {
	fd       int
	in       []byte
	r, w     int
	readable bool
	writable bool
	hup      bool // the peer closed its side: read to EOF
}

// upConn is one connection to an upstream.
type upConn struct {
	sock
	u          *pool.Upstream
	c          *clientConn // the exchange using it; nil while idle
	connecting bool
	idleSince  int64
}

// clientConn is one client connection: its socket, buffers and deadline,
// and the exchange in progress on it.
type clientConn struct {
	sock
	l        *loop
	idx      int // in l.clients
	ip       []byte
	closed   bool
	state    int
	deadline int64
	out      sendBuf // bytes for the client
	// body is the request body read whole before an upstream is picked,
	// sent after x.req; rsp holds answer bytes for a client slower than
	// the upstream. Both are buffers kept for the connection's life.
	body spool
	rsp  spool
	x    exchange
}

// progress does everything the connection's readiness allows, until
// nothing more can move.
func (c *clientConn) progress() {
	for !c.closed {
		moved := c.flushOut()
		if c.closed {
			return
		}
		// A step that changes the state (a refusal, the end of an
		// exchange, a tunnel) has moved, whatever it returns: the new
		// state's work, such as flushing an answer, must get its turn.
		st := c.state
		switch c.state {
		case stHead:
			moved = c.stepHead() || moved
		case stExchange:
			moved = c.stepExchange() || moved
		case stLinger:
			if c.outputDone() {
				moved = c.stepLinger() || moved
			}
		case stTunnel:
			if c.out.empty() {
				moved = c.stepTunnel() || moved
			}
		}
		if !moved && c.state == st {
			c.releaseIdle()
			return
		}
	}
}

// flushOut writes pending client bytes, refilling c.out from the answer
// held in c.rsp.
func (c *clientConn) flushOut() bool {
	if !c.writable || c.out.empty() && !c.refillOut() {
		return false
	}
	n, errno := rawWrite(c.fd, c.out.b[c.out.off:])
	if n > 0 {
		c.out.off += n
		if c.out.empty() {
			c.out.b, c.out.off = c.out.b[:0], 0
		} else {
			c.writable = false
		}
		c.wrote()
		return true
	}
	switch errno {
	case syscall.EAGAIN, 0:
		c.writable = false
	case syscall.EINTR:
	default:
		c.close()
	}
	return false
}

// refillOut moves the next held answer bytes into the empty c.out; it
// reports whether there are any.
func (c *clientConn) refillOut() bool {
	if c.rsp.unread() == 0 {
		return false
	}
	var err error
	c.out.b, err = c.rsp.read(c.outBuf()[:0])
	c.out.off = 0
	if err != nil {
		c.l.e.log.Warn("reading a held answer failed, closing the connection", "error", err)
		c.close()
		return false
	}
	if c.rsp.unread() == 0 {
		c.rsp.reset(c.l) // its file and buffers go back at once
	}
	return !c.out.empty()
}

// outputDone reports that nothing is waiting to be written to the client.
func (c *clientConn) outputDone() bool { return c.out.empty() && c.rsp.unread() == 0 }

// wrote moves deadlines on after bytes reached the client. Between
// exchanges, output still waiting gets IdleTimeout per write (nginx's
// send_timeout), so a slow reader of a held answer is cut only when it
// stops reading; once it is all written, the usual timers start.
func (c *clientConn) wrote() {
	l := c.l
	switch {
	case c.state == stExchange, c.state == stTunnel: // their own timers
	case !c.outputDone():
		c.deadline = l.now + int64(l.e.opt.IdleTimeout)
	case c.state == stLinger:
		_ = syscall.Shutdown(c.fd, syscall.SHUT_WR)
		c.deadline = l.now + int64(min(lingerTimeout, l.e.opt.ReadHeaderTimeout))
	case c.r < c.w:
		c.deadline = l.now + int64(l.e.opt.ReadHeaderTimeout)
	default:
		c.deadline = l.now + int64(l.e.opt.IdleTimeout)
	}
}

// readClient reads into c.in; it reports whether bytes arrived. At EOF or
// on an error the connection is closed.
func (c *clientConn) readClient() bool {
	if c.state == stExchange {
		c.x.headGone = true // the head's bytes may be overwritten now
	}
	switch c.l.read(&c.sock, c.state == stHead) {
	case readGot:
		return true
	case readEnd: // the client is gone
		c.close()
	}
	return false // nothing now, or full: the parser decides
}

// Results of loop.read.
const (
	readGot  = iota // bytes arrived
	readNone        // none now: the socket is drained (or the call was interrupted)
	readFull        // the buffer is full and may not grow
	readEnd         // end of stream, or an error
)

// read reads from s's socket into its buffer, the one read helper of both
// sides. When the buffer is full, unread bytes move to its front or, with
// grow (a head that does not fit yet), it doubles up to MaxHeaderBytes. A
// short read drained the socket and clears readable, as nginx does, unless
// the peer hung up: then reads go on to EOF.
func (l *loop) read(s *sock, grow bool) int {
	if s.in == nil {
		s.in = l.getBuf()[:bufSize]
	}
	if s.r == s.w {
		s.r, s.w = 0, 0
	}
	if s.w == len(s.in) {
		switch {
		case s.r > 0:
			s.w = copy(s.in, s.in[s.r:s.w])
			s.r = 0
		case grow && len(s.in) < l.e.opt.MaxHeaderBytes:
			bigger := make([]byte, min(2*len(s.in), l.e.opt.MaxHeaderBytes))
			copy(bigger, s.in[:s.w])
			l.putBuf(s.in[:0])
			s.in = bigger
		default:
			return readFull
		}
	}
	space := len(s.in) - s.w
	n, errno := rawRead(s.fd, s.in[s.w:])
	if n > 0 {
		s.w += n
		if n < space && !s.hup {
			s.readable = false
		}
		return readGot
	}
	switch errno {
	case syscall.EAGAIN:
		s.readable = false
		return readNone
	case syscall.EINTR:
		return readNone
	}
	return readEnd
}

func (c *clientConn) stepHead() bool {
	l := c.l
	if c.rsp.unread() > 0 {
		return false // the next answer waits for the held one to be written
	}
	if c.r < c.w {
		err := wire.ParseRequest(c.in[c.r:c.w], wire.Limits{MaxHead: l.e.opt.MaxHeaderBytes}, &c.x.head)
		if err == nil {
			c.startExchange()
			return true
		}
		var we *wire.Error
		if err != wire.ErrIncomplete && l.e.alog != nil {
			// A refused head is logged too, with what could be read of it.
			c.x.log.note(l.now, c.x.head.Method, c.x.head.URI, nil)
			c.x.log.bytesIn = int64(c.w - c.r)
		}
		switch {
		case errors.As(err, &we):
			c.refuse(we.Status, we.Msg)
			return true
		case err == wire.ErrHeadTooLarge:
			c.refuse(431, "request header too large")
			return true
		}
	} else if l.closing && c.outputDone() {
		c.close()
		return false
	}
	if !c.readable {
		return false
	}
	wasEmpty := c.r == c.w
	if !c.readClient() {
		return false
	}
	if wasEmpty {
		c.deadline = l.now + int64(l.e.opt.ReadHeaderTimeout)
	}
	return true
}

func (c *clientConn) outBuf() []byte {
	if c.out.b == nil {
		c.out.b = c.l.getBuf()
	}
	return c.out.b
}

// refuse answers a request that cannot be relayed and closes the
// connection: after a framing error nothing more on it can be trusted.
func (c *clientConn) refuse(status int, msg string) {
	c.x.keepAlive = false
	c.writeError(status, msg, true)
	c.linger()
}

func (c *clientConn) writeError(status int, msg string, closeConn bool) {
	before := len(c.outBuf())
	c.out.b = appendErrorAnswer(c.out.b, status, msg, c.connection(closeConn))
	c.x.log.bytesOut += int64(len(c.out.b) - before)
	c.x.logStatus = status
}

// linger closes gracefully: the answer is flushed, the write side shut,
// and what the client still sends is read and dropped until it closes, so
// that unread input does not turn the close into a reset that could destroy
// the answer (nginx's lingering close).
func (c *clientConn) linger() {
	c.state = stLinger
	c.deadline = c.l.now + int64(min(lingerTimeout, c.l.e.opt.ReadHeaderTimeout))
	if c.outputDone() {
		_ = syscall.Shutdown(c.fd, syscall.SHUT_WR)
	} else {
		c.deadline = c.l.now + int64(c.l.e.opt.IdleTimeout)
	}
}

func (c *clientConn) stepLinger() bool {
	if !c.readable {
		return false
	}
	if c.in == nil {
		c.in = c.l.getBuf()[:bufSize]
	}
	c.r, c.w = 0, 0
	return c.readClient()
}

// expired acts on a passed deadline.
func (c *clientConn) expired() {
	switch {
	case c.state == stTunnel:
		c.close() // idle for TunnelIdleTimeout
	case c.state != stExchange && !c.outputDone():
		c.close() // the client stopped reading
	case c.state == stExchange && c.x.buffering:
		c.refuse(408, "request body timed out")
		c.progress()
	case c.state == stHead && c.r == c.w:
		c.close() // idle keep-alive connection
	case c.state == stHead:
		c.refuse(408, "request read timed out")
		c.progress()
	case c.state == stExchange && c.x.up != nil && c.x.up.connecting:
		c.upstreamFailed(&pool.DialError{Err: errDialTimeout})
		c.progress()
	case c.state == stExchange && !c.out.empty():
		c.close() // the client stopped reading
	case c.state == stExchange && !c.x.reqDone && !c.x.reqStopped && c.x.req.empty() && c.x.up != nil:
		c.abortRequest(408, "request read timed out")
		c.progress()
	case c.state == stExchange && c.x.up != nil:
		c.upstreamFailed(errUpstreamTime)
		c.progress()
	default:
		c.close()
	}
}

// close releases everything the connection holds.
func (c *clientConn) close() {
	if c.closed {
		return
	}
	l := c.l
	c.closed = true
	c.dropExchange()
	c.rsp.reset(l)
	l.unregister(c.fd)
	last := len(l.clients) - 1
	l.clients[c.idx] = l.clients[last]
	l.clients[c.idx].idx = c.idx
	l.clients[last] = nil
	l.clients = l.clients[:last]
	for _, b := range [...][]byte{c.in, c.out.b} {
		if b != nil {
			l.putBuf(b[:0])
		}
	}
	c.in, c.out = nil, sendBuf{}
	l.e.conns.Add(-1)
}

// releaseIdle gives back the buffers of a connection waiting for its next
// request, so idle keep-alive clients hold no memory beyond their state.
func (c *clientConn) releaseIdle() {
	if c.state != stHead || c.r != c.w || !c.outputDone() {
		return
	}
	if c.in != nil {
		c.l.putBuf(c.in[:0])
		c.in, c.r, c.w = nil, 0, 0
	}
	if c.out.b != nil {
		c.l.putBuf(c.out.b[:0])
		c.out = sendBuf{}
	}
}
