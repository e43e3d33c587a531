//go:build linux

package proxy

import (
	"errors"
	"strconv"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/balancer/proxy/wire"
)

// A client connection's states.
const (
	stHead     = iota // waiting for, or reading, a request head
	stExchange        // a request is being relayed
	stLinger          // answered and closing: discarding what the client still sends
)

// sendBuf is bytes waiting to be written to a socket: b[off:].
type sendBuf struct {
	b   []byte
	off int
}

func (s *sendBuf) empty() bool { return s.off == len(s.b) }

// upConn is one connection to an upstream.
type upConn struct {
	fd         int
	u          *pool.Upstream
	c          *clientConn // the exchange using it; nil while idle
	in         []byte      // read buffer: unread bytes are in[r:w]
	r, w       int
	readable   bool
	writable   bool
	hup        bool // the upstream closed its side: read to EOF
	connecting bool
	idleSince  int64
}

// clientConn is one client connection and the exchange in progress on it.
type clientConn struct {
	l        *loop
	fd       int
	idx      int // in l.clients
	ip       []byte
	closed   bool
	readable bool
	writable bool
	hup      bool // the client closed its side: read to EOF
	state    int
	deadline int64

	in   []byte // read buffer: unread bytes are in[r:w]
	r, w int
	out  sendBuf // bytes for the client

	// The exchange.
	head      wire.RequestHead
	headGone  bool // head's slices no longer valid (the buffer was reused for the body)
	keepAlive bool
	u         *pool.Upstream // acquired from the pool, released once
	up        *upConn
	tried     pool.Tried
	start     int64
	req       sendBuf // bytes for the upstream
	replay    bool    // req.b is the whole request: it may be sent again
	reqDone   bool    // the whole request body is in req.b or sent
	// reqStopped: the upstream stopped reading the request and answered
	// early; nothing more of it is sent.
	reqStopped bool
	// buffering: the request body is being read whole into body before an
	// upstream is picked (EngineOptions.StreamRequests false).
	buffering bool
	body      spool   // the buffered request body, sent after req
	stage     sendBuf // the next bytes of body for the upstream
	bodyEnd   int64   // when the whole request body must have arrived
	rsp       spool   // answer bytes held for a client slower than the upstream
	reqLeft   int64   // body bytes still to come; -1: chunked
	reqChunk  wire.ChunkedScanner
	resp      wire.ResponseHead
	respHead  bool // the final response head was passed on
	status    int
	respKind  wire.BodyKind
	respLeft  int64
	respChunk wire.ChunkedScanner
}

var (
	errUpstreamClosed = errors.New("upstream closed the connection before answering")
	errBadResponse    = errors.New("upstream sent a malformed response")
	errUpstreamTime   = errors.New("upstream timed out")
	errDialTimeout    = errors.New("connecting timed out")
)

// progress does everything the connection's readiness allows, until
// nothing more can move.
func (c *clientConn) progress() {
	for !c.closed {
		moved := c.flushOut()
		if c.closed {
			return
		}
		switch c.state {
		case stHead:
			moved = c.stepHead() || moved
		case stExchange:
			moved = c.stepExchange() || moved
		case stLinger:
			if c.outputDone() {
				moved = c.stepLinger() || moved
			}
		}
		if !moved {
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
	case c.state == stExchange:
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
	l := c.l
	if c.in == nil {
		c.in = l.getBuf()[:bufSize]
	}
	if c.state == stExchange {
		c.headGone = true // the head's bytes may be overwritten now
	}
	if c.r == c.w {
		c.r, c.w = 0, 0
	}
	if c.w == len(c.in) {
		if c.r > 0 {
			c.w = copy(c.in, c.in[c.r:c.w])
			c.r = 0
		} else if c.state == stHead && len(c.in) < l.e.opt.MaxHeaderBytes {
			bigger := make([]byte, min(2*len(c.in), l.e.opt.MaxHeaderBytes))
			copy(bigger, c.in[:c.w])
			l.putBuf(c.in[:0])
			c.in = bigger
		} else {
			return false // full: the parser decides
		}
	}
	space := len(c.in) - c.w
	n, errno := rawRead(c.fd, c.in[c.w:])
	if n > 0 {
		c.w += n
		if n < space && !c.hup {
			c.readable = false // a short read drained the socket (nginx does the same)
		}
		return true
	}
	switch errno {
	case syscall.EAGAIN:
		c.readable = false
	case syscall.EINTR:
	default: // EOF or an error: the client is gone
		c.close()
	}
	return false
}

func (c *clientConn) stepHead() bool {
	l := c.l
	if c.rsp.unread() > 0 {
		return false // the next answer waits for the held one to be written
	}
	if c.r < c.w {
		err := wire.ParseRequest(c.in[c.r:c.w], wire.Limits{MaxHead: l.e.opt.MaxHeaderBytes}, &c.head)
		if err == nil {
			c.startExchange()
			return true
		}
		var we *wire.Error
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

// startExchange begins relaying the request whose head was just parsed.
func (c *clientConn) startExchange() {
	l, h := c.l, &c.head
	c.keepAlive = h.KeepAlive && !l.closing
	switch {
	case h.Chunked:
		c.reqLeft = -1
		c.reqChunk.Reset()
	case h.ContentLength > l.e.opt.MaxBodyBytes:
		c.refuse(413, "request body too large")
		return
	case h.ContentLength > 0:
		c.reqLeft = h.ContentLength
	default:
		c.reqLeft = 0
	}
	c.reqDone = c.reqLeft == 0
	buffer := !c.reqDone && !l.e.opt.StreamRequests
	f := wire.Forward{ClientIP: c.ip, Proto: "http", Host: l.e.host, NoExpect: buffer}
	if h.RequestID == nil {
		f.RequestID = l.ids.next(l.idBuf[:0])
	}
	c.req.b = wire.AppendRequest(l.getBuf(), c.in[c.r:c.w], h, f)
	c.req.off = 0
	c.r += h.Len
	c.state, c.headGone = stExchange, false
	c.tried = pool.Tried{}
	c.respHead, c.status, c.reqStopped = false, 0, false
	c.bodyEnd = l.now + int64(l.e.opt.ClientBodyTimeout)
	c.moveBody()
	if c.closed || c.state != stExchange {
		return
	}
	if buffer && !c.reqDone {
		// The body is read whole before an upstream is picked. A client
		// waiting for 100 Continue gets it from the balancer, as from
		// nginx: the upstream sees the whole request at once.
		c.buffering = true
		c.deadline = c.bodyDeadline()
		if h.ExpectContinue && h.Minor == 1 {
			c.out.b = append(c.outBuf(), "HTTP/1.1 100 Continue\r\n\r\n"...)
		}
		return
	}
	c.replay = c.reqDone
	c.connect(nil)
}

// bodyDeadline is when reading the request body times out: a stall of
// ReadHeaderTimeout, or the end of ClientBodyTimeout for the whole body.
func (c *clientConn) bodyDeadline() int64 {
	return min(c.l.now+int64(c.l.e.opt.ReadHeaderTimeout), c.bodyEnd)
}

// stepBuffer reads the request body into c.body; once it is whole, the
// request goes to an upstream, and may go to another one if that fails.
func (c *clientConn) stepBuffer() bool {
	l := c.l
	moved := false
	if c.r == c.w {
		if !c.readable || !c.readClient() {
			return false
		}
		moved = true
		c.deadline = c.bodyDeadline()
	}
	for c.r < c.w && !c.reqDone {
		buf := l.getBuf()
		buf, ok := c.takeBody(buf)
		if !ok {
			l.putBuf(buf)
			return true
		}
		err := c.body.write(l, buf, l.e.opt.BufferMemory, l.e.opt.TempDir)
		l.putBuf(buf)
		if err != nil {
			l.e.log.Warn("buffering a request body failed", "error", err)
			c.abortRequest(503, "balancer out of resources")
			return true
		}
		moved = true
	}
	if c.reqDone {
		c.buffering, c.replay = false, true
		c.connect(nil)
		return true
	}
	return moved
}

// connect sends the request to the next upstream the pool picks; last is
// the error of the previous attempt, if any.
func (c *clientConn) connect(last error) {
	l := c.l
	for c.tried.Len() < pool.MaxTries {
		u := l.e.pool.Pick(c.tried)
		if u == nil {
			break
		}
		if l.e.noUpstream.Load() && l.e.noUpstream.CompareAndSwap(true, false) {
			l.e.log.Info("an upstream is available again")
		}
		c.tried.Add(u)
		up, err := l.upstream(u)
		if err != nil && isLocal(err) {
			u.Release(0)
			c.answerError(err) // another upstream would fail alike
			return
		}
		if err != nil {
			l.e.pool.ReportFailure(u)
			u.Release(0)
			c.observe(u, 0, l.now)
			last = err
			continue
		}
		c.u, c.up = u, up
		up.c = c
		c.start = l.now
		c.req.off = 0
		c.body.rewind()
		c.stage.b, c.stage.off = c.stage.b[:0], 0
		c.deadline = l.now + int64(l.e.opt.UpstreamTimeout)
		if up.connecting {
			c.deadline = l.now + int64(pool.DialTimeout(l.e.opt.UpstreamTimeout))
		}
		return
	}
	if last == nil {
		last = pool.ErrNoUpstream
	}
	c.answerError(last)
}

// isLocal reports a failure on the balancer's side. Only error paths call
// it: errors.As moves its target to the heap.
func isLocal(err error) bool {
	var le *localError
	return errors.As(err, &le)
}

func (c *clientConn) observe(u *pool.Upstream, status int, start int64) {
	if obs := c.l.e.obs; obs != nil {
		obs.Observe(u, status, time.Duration(c.l.now-start))
	}
}

// moveBody moves request body bytes from the client's buffer to the
// upstream's, as much as framing and room allow. It reports whether any
// moved.
func (c *clientConn) moveBody() bool {
	if c.reqDone || c.r == c.w {
		return false
	}
	r := c.r
	var ok bool
	c.req.b, ok = c.takeBody(c.req.b)
	return ok && (c.r > r || c.reqDone)
}

// takeBody appends to dst, within its capacity, request body bytes from
// c.in, checking their framing and the body limit. It reports false when
// it refused the request instead.
func (c *clientConn) takeBody(dst []byte) ([]byte, bool) {
	room := cap(dst) - len(dst)
	avail := c.in[c.r:c.w]
	if c.reqLeft >= 0 {
		n := int(min(int64(len(avail)), int64(room), c.reqLeft))
		c.reqLeft -= int64(n)
		c.reqDone = c.reqLeft == 0
		c.r += n
		return append(dst, avail[:n]...), true
	}
	// A chunked body goes on in canonical form (wire.ChunkedScanner.Filter),
	// never as the client framed it: a backend that reads framing its own
	// way sees only what the balancer read.
	if room -= wire.FilterSlack; room <= 0 {
		return dst, true
	}
	if len(avail) > room {
		avail = avail[:room]
	}
	dst, n, done, err := c.reqChunk.Filter(dst, avail)
	if err != nil {
		c.abortRequest(400, "malformed chunked body")
		return dst, false
	}
	if c.reqChunk.Data() > c.l.e.opt.MaxBodyBytes {
		c.abortRequest(413, "request body too large")
		return dst, false
	}
	c.reqDone = done
	c.r += n
	return dst, true
}

func (c *clientConn) stepExchange() bool {
	if c.buffering {
		return c.stepBuffer()
	}
	moved := false
	up := c.up
	if up == nil {
		return false
	}
	if up.connecting {
		if !up.writable {
			return false
		}
		up.connecting = false
		if err := sockError(up.fd); err != nil {
			c.upstreamFailed(&pool.DialError{Err: err})
			return true
		}
		c.deadline = c.l.now + int64(c.l.e.opt.UpstreamTimeout)
	}
	// Request: upstream-bound bytes first, then more body.
	if c.reqStopped {
		return c.stepResponse()
	}
	if out := c.upOut(); out != nil && up.writable {
		n, errno := rawWrite(up.fd, out.b[out.off:])
		if n > 0 {
			out.off += n
			moved = true
			if !out.empty() {
				up.writable = false
			}
		} else if errno == syscall.EAGAIN {
			up.writable = false
		} else if errno != syscall.EINTR {
			if !c.answeredEarly() {
				c.upstreamFailed(errUpstreamClosed)
			}
			return true
		}
	}
	if !c.reqDone && c.req.empty() {
		c.req.b, c.req.off, c.replay = c.req.b[:0], 0, false
		if c.r == c.w && c.readable && c.readClient() {
			moved = true
			c.deadline = c.bodyDeadline()
		}
		if c.closed {
			return false
		}
		moved = c.moveBody() || moved
		if c.closed || c.state != stExchange {
			return false
		}
		if c.reqDone {
			c.deadline = c.l.now + int64(c.l.e.opt.UpstreamTimeout)
		}
	}
	return c.stepResponse() || moved
}

// upOut returns the bytes to send upstream next: the rest of c.req, then
// the buffered body through c.stage; nil when none is waiting.
func (c *clientConn) upOut() *sendBuf {
	if !c.req.empty() {
		return &c.req
	}
	if c.stage.empty() && c.body.unread() > 0 {
		if c.stage.b == nil {
			c.stage.b = c.l.getBuf()
		}
		var err error
		c.stage.b, err = c.body.read(c.stage.b[:0])
		c.stage.off = 0
		if err != nil {
			c.l.e.log.Warn("reading a buffered request body failed", "error", err)
			c.abortRequest(503, "balancer out of resources")
			return nil
		}
	}
	if c.stage.empty() {
		return nil
	}
	return &c.stage
}

// sentAll reports that the whole request reached the upstream.
func (c *clientConn) sentAll() bool {
	return c.reqDone && !c.reqStopped && c.req.empty() && c.stage.empty() && c.body.unread() == 0
}

// answeredEarly handles an upstream that stopped reading the request (it
// closed or reset the connection) after it began to answer, as a worker
// refusing a body over its limit with 413 does: the answer is relayed as
// nginx does, not turned into a 502 against the upstream. It reports
// whether there is such an answer; the client connection closes after it,
// since the rest of the request was never read.
func (c *clientConn) answeredEarly() bool {
	up := c.up
	if !c.respHead && up.r == up.w {
		if n, _ := rawPeek(up.fd); n <= 0 {
			return false
		}
	}
	c.reqStopped, c.keepAlive, c.replay = true, false, false
	c.req.b, c.req.off = c.req.b[:0], 0
	up.readable = true
	return true
}

// stepResponse relays the upstream's answer into c.out while there is room.
func (c *clientConn) stepResponse() bool {
	up := c.up
	if up == nil || up.connecting || !c.roomForAnswer() {
		return false
	}
	l := c.l
	moved := false
	if up.r < up.w {
		if !c.respHead {
			err := wire.ParseResponse(up.in[up.r:up.w], wire.Limits{MaxHead: l.e.opt.MaxHeaderBytes}, &c.resp)
			switch {
			case err == nil:
				c.passHead()
				moved = true
				if c.closed || c.up == nil {
					return true
				}
			case err == wire.ErrIncomplete:
			default:
				c.upstreamFailed(errBadResponse)
				return true
			}
		}
		if c.respHead && up.r < up.w {
			c.passBody()
			moved = true
		}
		if c.closed || c.up == nil {
			return true
		}
	}
	if up.readable && (up.r == up.w || !c.respHead) {
		moved = c.readUpstream() || moved
	}
	return moved
}

// passHead passes an interim (1xx) or the final response head on.
func (c *clientConn) passHead() {
	up, h := c.up, &c.resp
	head := up.in[up.r : up.r+h.Len]
	if h.Status < 200 {
		up.r += h.Len
		if h.Status == 101 {
			c.upstreamFailed(errBadResponse) // Upgrade is never forwarded
			return
		}
		c.out.b = wire.AppendResponse(c.outBuf(), head, h, "")
		return
	}
	c.respKind = h.Body(c.head.Head)
	closeClient := !c.keepAlive || c.respKind == wire.UntilClose || !c.reqDone || c.l.closing
	c.keepAlive = !closeClient
	c.out.b = wire.AppendResponse(c.outBuf(), head, h, c.connection(closeClient))
	up.r += h.Len
	c.respHead, c.status = true, h.Status
	c.respLeft = h.ContentLength
	if c.respKind == wire.Chunked {
		c.respChunk.Reset()
	}
	if c.respKind == wire.None || c.respKind == wire.Length && c.respLeft == 0 {
		c.finish()
	}
}

// connection is the Connection header of an answer: "close" when the
// connection closes after it, "keep-alive" when an HTTP/1.0 client's stays
// open (it would close without it), else none.
func (c *clientConn) connection(closeConn bool) string {
	switch {
	case closeConn:
		return "close"
	case c.head.Minor == 0:
		return "keep-alive"
	}
	return ""
}

func (c *clientConn) outBuf() []byte {
	if c.out.b == nil {
		c.out.b = c.l.getBuf()
	}
	return c.out.b
}

// roomForAnswer reports whether more of the answer can be taken: into
// c.out, or, once the client falls behind, into c.rsp up to ResponseBuffer.
func (c *clientConn) roomForAnswer() bool {
	if c.rsp.unread() == 0 && len(c.out.b) < bufSize {
		return true
	}
	return c.l.e.opt.ResponseBuffer > 0 && c.rsp.size() < c.l.e.opt.ResponseBuffer
}

// passBody moves response body bytes to c.out, or to c.rsp for a client
// that falls behind.
func (c *clientConn) passBody() {
	up, l := c.up, c.l
	avail := up.in[up.r:up.w]
	hold := c.rsp.unread() > 0 || len(c.out.b) >= bufSize
	room := bufSize - len(c.out.b)
	if hold {
		room = int(min(l.e.opt.ResponseBuffer-c.rsp.size(), bufSize))
	}
	if len(avail) > room {
		avail = avail[:max(room, 0)]
	}
	n, done := len(avail), false
	switch c.respKind {
	case wire.Length:
		n = int(min(int64(n), c.respLeft))
		c.respLeft -= int64(n)
		done = c.respLeft == 0
	case wire.Chunked:
		var err error
		n, done, err = c.respChunk.Scan(avail)
		if err != nil {
			c.out.b = append(c.outBuf(), avail[:n]...)
			c.close() // mid-answer: the client sees it cut short, never wrong
			return
		}
	}
	if hold {
		if err := c.rsp.write(l, avail[:n], l.e.opt.BufferMemory, l.e.opt.TempDir); err != nil {
			l.e.log.Warn("holding an answer for a slow client failed, closing the connection", "error", err)
			c.close()
			return
		}
	} else {
		c.out.b = append(c.outBuf(), avail[:n]...)
	}
	up.r += n
	if done {
		c.finish()
	}
}

// readUpstream reads the upstream's answer; EOF ends an until-close body
// and fails anything else.
func (c *clientConn) readUpstream() bool {
	up, l := c.up, c.l
	if up.in == nil {
		up.in = l.getBuf()[:bufSize]
	}
	if up.r == up.w {
		up.r, up.w = 0, 0
	}
	if up.w == len(up.in) {
		switch {
		case up.r > 0:
			up.w = copy(up.in, up.in[up.r:up.w])
			up.r = 0
		case !c.respHead && len(up.in) < l.e.opt.MaxHeaderBytes:
			bigger := make([]byte, min(2*len(up.in), l.e.opt.MaxHeaderBytes))
			copy(bigger, up.in[:up.w])
			l.putBuf(up.in[:0])
			up.in = bigger
		default:
			c.upstreamFailed(errBadResponse) // head too large for the parser
			return true
		}
	}
	space := len(up.in) - up.w
	n, errno := rawRead(up.fd, up.in[up.w:])
	if n > 0 {
		up.w += n
		if n < space && !up.hup {
			up.readable = false
		}
		c.deadline = l.now + int64(l.e.opt.UpstreamTimeout)
		return true
	}
	switch errno {
	case syscall.EAGAIN:
		up.readable = false
		return false
	case syscall.EINTR:
		return false
	}
	// EOF or a reset.
	switch {
	case c.respHead && c.respKind == wire.UntilClose:
		c.finish()
	case c.respHead:
		c.close() // mid-answer: the client sees it cut short, never wrong
	default:
		c.upstreamFailed(errUpstreamClosed)
	}
	return true
}

// finish ends an exchange whose response is complete (its last bytes may
// still be in c.out).
func (c *clientConn) finish() {
	l, up, u := c.l, c.up, c.u
	reusable := c.resp.KeepAlive && c.respKind != wire.UntilClose && c.sentAll() &&
		up.r == up.w && !l.pending(up)
	l.release(up, reusable)
	c.up, c.u = nil, nil
	u.Release(c.status)
	l.e.pool.ReportSuccess(u)
	c.observe(u, c.status, c.start)
	c.endExchange()
}

// endExchange returns to reading the next request, or closes.
func (c *clientConn) endExchange() {
	l := c.l
	if c.req.b != nil {
		l.putBuf(c.req.b[:0])
		c.req = sendBuf{}
	}
	c.dropBody()
	if c.keepAlive && c.reqDone && !l.closing {
		c.state = stHead
		c.deadline = l.now + int64(l.e.opt.IdleTimeout)
		if c.r < c.w && c.outputDone() {
			c.deadline = l.now + int64(l.e.opt.ReadHeaderTimeout)
		}
		return
	}
	c.linger()
}

// dropBody releases the buffered request body.
func (c *clientConn) dropBody() {
	c.buffering = false
	c.body.reset(c.l)
	if c.stage.b != nil {
		c.l.putBuf(c.stage.b[:0])
		c.stage = sendBuf{}
	}
}

// upstreamFailed handles an attempt that ended before a response was
// passed on: the request goes to another upstream when that is safe, or
// the client gets an error.
func (c *clientConn) upstreamFailed(err error) {
	l, u := c.l, c.u
	l.closeUp(c.up)
	c.up, c.u = nil, nil
	l.e.pool.ReportFailure(u)
	u.Release(0)
	c.observe(u, 0, c.start)
	if c.respHead {
		c.close() // mid-answer: the client sees it cut short, never wrong
		return
	}
	var de *pool.DialError
	dial := errors.As(err, &de)
	if dial || c.head.Idempotent && c.replay && err != errUpstreamTime {
		c.connect(err)
		return
	}
	c.answerError(err)
}

// answerError answers a request that got no response: 503 when no
// upstream was available, 504 on a timeout, else 502.
func (c *clientConn) answerError(err error) {
	status, msg := 502, "upstream unreachable"
	switch {
	case errors.Is(err, pool.ErrNoUpstream):
		status, msg = 503, "no healthy upstream"
	case isLocal(err):
		status, msg = 503, "balancer out of resources"
	case err == errUpstreamTime:
		status, msg = 504, "upstream timed out"
	}
	c.logError(status, err)
	if !c.reqDone {
		c.keepAlive = false
	}
	c.writeError(status, msg, !c.keepAlive)
	c.endExchange()
}

// logError logs a request that got no answer from an upstream. With no
// upstream in rotation every request would log the same: that is logged
// once, until one is picked again.
func (c *clientConn) logError(status int, err error) {
	e := c.l.e
	if errors.Is(err, pool.ErrNoUpstream) {
		if e.noUpstream.CompareAndSwap(false, true) {
			e.log.Warn("no upstream in rotation: answering 503 until one is", "error", err)
		}
		return
	}
	method, uri := string(c.head.Method), string(c.head.URI)
	if c.headGone {
		method, uri = "?", "? (request body read over its bytes)"
	}
	e.log.Warn("proxy error", "method", method, "uri", uri, "status", status, "error", err)
}

// refuse answers a request that cannot be relayed and closes the
// connection: after a framing error nothing more on it can be trusted.
func (c *clientConn) refuse(status int, msg string) {
	c.keepAlive = false
	c.writeError(status, msg, true)
	c.linger()
}

// abortRequest ends an exchange whose request body turned out bad or too
// large while it was being relayed.
func (c *clientConn) abortRequest(status int, msg string) {
	if c.up != nil {
		c.l.closeUp(c.up)
		c.up = nil
	}
	if c.u != nil {
		c.u.Release(0)
		c.u = nil
	}
	if c.respHead {
		c.close() // mid-answer: the client sees it cut short, never wrong
		return
	}
	c.refuse(status, msg)
}

func (c *clientConn) writeError(status int, msg string, closeConn bool) {
	body := appendJSONError(nil, msg)
	b := c.outBuf()
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, fasthttp.StatusMessage(status)...)
	b = append(b, "\r\nContent-Type: application/json\r\n"...)
	if status == 503 {
		b = append(b, "Retry-After: 1\r\n"...)
	}
	if conn := c.connection(closeConn); conn != "" {
		b = append(b, "Connection: "...)
		b = append(b, conn...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	c.out.b = append(b, body...)
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
	case c.state != stExchange && !c.outputDone():
		c.close() // the client stopped reading
	case c.state == stExchange && c.buffering:
		c.refuse(408, "request body timed out")
		c.progress()
	case c.state == stHead && c.r == c.w:
		c.close() // idle keep-alive connection
	case c.state == stHead:
		c.refuse(408, "request read timed out")
		c.progress()
	case c.state == stExchange && c.up != nil && c.up.connecting:
		c.upstreamFailed(&pool.DialError{Err: errDialTimeout})
		c.progress()
	case c.state == stExchange && !c.out.empty():
		c.close() // the client stopped reading
	case c.state == stExchange && !c.reqDone && !c.reqStopped && c.req.empty() && c.up != nil:
		c.abortRequest(408, "request read timed out")
		c.progress()
	case c.state == stExchange && c.up != nil:
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
	if c.up != nil {
		l.closeUp(c.up)
		c.up = nil
	}
	if c.u != nil {
		c.u.Release(0)
		c.u = nil
	}
	c.dropBody()
	c.rsp.reset(l)
	l.unregister(c.fd)
	last := len(l.clients) - 1
	l.clients[c.idx] = l.clients[last]
	l.clients[c.idx].idx = c.idx
	l.clients[last] = nil
	l.clients = l.clients[:last]
	for _, b := range [][]byte{c.in, c.out.b, c.req.b} {
		if b != nil {
			l.putBuf(b[:0])
		}
	}
	c.in, c.out, c.req = nil, sendBuf{}, sendBuf{}
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
