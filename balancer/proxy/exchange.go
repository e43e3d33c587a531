//go:build linux

package proxy

import (
	"errors"
	"syscall"

	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/balancer/proxy/wire"
)

// exchange is one request's state on a client connection, from its head to
// the end of its answer: framing, the attempt in progress, and what is
// buffered for the upstream. endExchange resets it by assigning a fresh
// value, so no field can leak into the next request. The client's socket,
// buffers and deadline stay in clientConn.
type exchange struct {
	head      wire.RequestHead
	headGone  bool // head's slices no longer valid (the buffer was reused for the body)
	keepAlive bool
	att       attempt // the try on one upstream in progress
	up        *upConn
	tried     pool.Tried
	req       sendBuf // bytes for the upstream: the head, then streamed body
	replay    bool    // the whole request can be sent again
	reqDone   bool    // the whole request body is in req.b, c.body or sent
	// reqStopped: the upstream stopped reading the request and answered
	// early; nothing more of it is sent.
	reqStopped bool
	// buffering: the request body is being read whole into body before an
	// upstream is picked (EngineOptions.StreamRequests false).
	buffering bool
	stage     sendBuf // the next bytes of body for the upstream
	bodyEnd   int64   // when the whole request body must have arrived
	reqLeft   int64   // body bytes still to come; -1: chunked
	reqChunk  wire.ChunkedScanner
	resp      wire.ResponseHead
	respHead  bool // the final response head was passed on
	status    int
	respKind  wire.BodyKind
	respLeft  int64
	respChunk wire.ChunkedScanner
	// tunnel is the upstream of the tunnel the exchange became, counted
	// open on it and in the engine until the connection closes.
	tunnel           *pool.Upstream
	clientEOF, upEOF bool // a tunnel's directions that ended
	// place is where stickiness would put the request; setCookie, when
	// not nil, is the sticky cookie value the answer sets (a fresh pick).
	place     stickiness
	setCookie []byte
	log       logLine // what the access log records; log.begin 0: nothing
	logStatus int     // the status answered; 0: none (the client left first)
}

// startExchange begins relaying the request whose head was just parsed.
func (c *clientConn) startExchange() {
	l, h := c.l, &c.x.head
	c.x.keepAlive = h.KeepAlive && !l.closing
	switch {
	case h.Chunked:
		c.x.reqLeft = -1
		c.x.reqChunk.Reset()
	case h.ContentLength > l.e.opt.MaxBodyBytes:
		c.refuse(413, "request body too large")
		return
	case h.ContentLength > 0:
		c.x.reqLeft = h.ContentLength
	default:
		c.x.reqLeft = 0
	}
	c.x.reqDone = c.x.reqLeft == 0
	if h.Upgrade != nil && l.e.tunnels.Load() >= l.e.opt.MaxTunnels {
		c.refuse(503, "too many open tunnels")
		return
	}
	buffer := !c.x.reqDone && !l.e.opt.StreamRequests
	var id []byte
	if h.RequestID == nil {
		id = l.ids.next(l.idBuf[:0])
	}
	f := identity(h, c.ip, l.e.host, id, buffer)
	if l.e.sticky != stickyOff {
		c.x.place = place(l.e.pool, l.e.sticky, h, c.in[c.r:c.w], c.ip, l.e.opt.StickyCookie, l.e.stickyHdr)
	}
	if l.e.alog != nil {
		c.x.log.note(l.now, h.Method, h.URI, firstOf(h.RequestID, id))
		c.x.log.bytesIn = int64(h.Len)
	}
	c.x.req.b = wire.AppendRequest(l.getBuf(), c.in[c.r:c.w], h, f)
	c.x.req.off = 0
	c.r += h.Len
	c.state, c.x.headGone = stExchange, false
	c.x.tried = pool.Tried{}
	c.x.respHead, c.x.status, c.x.reqStopped = false, 0, false
	c.x.bodyEnd = l.now + int64(l.e.opt.ClientBodyTimeout)
	c.moveBody()
	if c.closed || c.state != stExchange {
		return
	}
	if buffer && !c.x.reqDone {
		// The body is read whole before an upstream is picked. A client
		// waiting for 100 Continue gets it from the balancer, as from
		// nginx: the upstream sees the whole request at once.
		c.x.buffering = true
		c.deadline = c.bodyDeadline()
		if h.ExpectContinue && h.Minor == 1 {
			c.out.b = append(c.outBuf(), "HTTP/1.1 100 Continue\r\n\r\n"...)
		}
		return
	}
	c.x.replay = c.x.reqDone
	c.connect(nil)
}

// bodyDeadline is when reading the request body times out: a stall of
// ReadHeaderTimeout, or the end of ClientBodyTimeout for the whole body.
func (c *clientConn) bodyDeadline() int64 {
	return min(c.l.now+int64(c.l.e.opt.ReadHeaderTimeout), c.x.bodyEnd)
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
	for c.r < c.w && !c.x.reqDone {
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
	if c.x.reqDone {
		c.x.buffering, c.x.replay = false, true
		c.connect(nil)
		return true
	}
	return moved
}

// connect sends the request to the next upstream the pool picks; last is
// the error of the previous attempt, if any.
func (c *clientConn) connect(last error) {
	l := c.l
	for c.x.tried.Len() < pool.MaxTries {
		if !c.x.att.pick(l.e.pool, &c.x.tried, &c.x.place, l.now) {
			break
		}
		c.x.log.upstream = c.x.att.u.ID
		c.x.setCookie = nil
		if c.x.place.mode == stickyCookie && c.x.att.u != c.x.place.to {
			c.x.setCookie = l.e.pool.Cookie(c.x.att.u) // a fresh pick: the client learns it
		}
		if l.e.noUpstream.Load() && l.e.noUpstream.CompareAndSwap(true, false) {
			l.e.log.Info("an upstream is available again")
		}
		up, err := l.upstream(c.x.att.u)
		if err != nil && isLocal(err) {
			c.endAttempt(notUpstream)
			c.answerError(err) // another upstream would fail alike
			return
		}
		if err != nil {
			c.endAttempt(upstreamFailed)
			last = err
			continue
		}
		c.x.up = up
		up.c = c
		c.x.req.off = 0
		c.body.rewind()
		c.x.stage.b, c.x.stage.off = c.x.stage.b[:0], 0
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

// endAttempt ends the attempt in progress, if any, with its outcome: the
// one place an attempt is released, reported and observed.
func (c *clientConn) endAttempt(outcome int) {
	c.x.att.end(c.l.e.pool, c.l.e.obs, outcome, c.x.status, c.l.now)
}

// moveBody moves request body bytes from the client's buffer to the
// upstream's, as much as framing and room allow. It reports whether any
// moved.
func (c *clientConn) moveBody() bool {
	if c.x.reqDone || c.r == c.w {
		return false
	}
	r := c.r
	var ok bool
	c.x.req.b, ok = c.takeBody(c.x.req.b)
	return ok && (c.r > r || c.x.reqDone)
}

// takeBody appends to dst, within its capacity, request body bytes from
// c.in, checking their framing and the body limit. It reports false when
// it refused the request instead.
func (c *clientConn) takeBody(dst []byte) ([]byte, bool) {
	room := cap(dst) - len(dst)
	avail := c.in[c.r:c.w]
	if c.x.reqLeft >= 0 {
		n := int(min(int64(len(avail)), int64(room), c.x.reqLeft))
		c.x.reqLeft -= int64(n)
		c.x.reqDone = c.x.reqLeft == 0
		c.r += n
		c.x.log.bytesIn += int64(n)
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
	dst, n, done, err := c.x.reqChunk.Filter(dst, avail)
	if err != nil {
		c.abortRequest(400, "malformed chunked body")
		return dst, false
	}
	if c.x.reqChunk.Data() > c.l.e.opt.MaxBodyBytes {
		c.abortRequest(413, "request body too large")
		return dst, false
	}
	c.x.reqDone = done
	c.r += n
	c.x.log.bytesIn += int64(n)
	return dst, true
}

func (c *clientConn) stepExchange() bool {
	if c.x.buffering {
		return c.stepBuffer()
	}
	moved := false
	up := c.x.up
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
	if c.x.reqStopped {
		return c.stepResponse()
	}
	c.fillStage()
	if c.state != stExchange {
		return true // refused: the answer waits in c.out
	}
	if (!c.x.req.empty() || !c.x.stage.empty()) && up.writable {
		// The head and the first of a buffered body go in one call.
		req, stage := &c.x.req, &c.x.stage
		n, errno := rawWritev(up.fd, req.b[req.off:], stage.b[stage.off:])
		if n > 0 {
			k := min(n, len(req.b)-req.off)
			req.off += k
			stage.off += n - k
			moved = true
			if !req.empty() || !stage.empty() {
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
	if !c.x.reqDone && c.x.req.empty() {
		c.x.req.b, c.x.req.off, c.x.replay = c.x.req.b[:0], 0, false
		if c.r == c.w && c.readable && c.readClient() {
			moved = true
			c.deadline = c.bodyDeadline()
		}
		if c.closed {
			return false
		}
		moved = c.moveBody() || moved
		if c.closed {
			return false
		}
		if c.state != stExchange {
			return true // refused: the answer waits in c.out
		}
		if c.x.reqDone {
			c.deadline = c.l.now + int64(c.l.e.opt.UpstreamTimeout)
		}
	}
	return c.stepResponse() || moved
}

// fillStage moves the next bytes of the buffered body into the empty
// c.x.stage, from which they go upstream after c.x.req.
func (c *clientConn) fillStage() {
	if c.x.stage.empty() && c.body.unread() > 0 {
		if c.x.stage.b == nil {
			c.x.stage.b = c.l.getBuf()
		}
		var err error
		c.x.stage.b, err = c.body.read(c.x.stage.b[:0])
		c.x.stage.off = 0
		if err != nil {
			c.l.e.log.Warn("reading a buffered request body failed", "error", err)
			c.abortRequest(503, "balancer out of resources")
		}
	}
}

// sentAll reports that the whole request reached the upstream.
func (c *clientConn) sentAll() bool {
	return c.x.reqDone && !c.x.reqStopped && c.x.req.empty() && c.x.stage.empty() && c.body.unread() == 0
}

// answeredEarly handles an upstream that stopped reading the request (it
// closed or reset the connection) after it began to answer, as a worker
// refusing a body over its limit with 413 does: the answer is relayed as
// nginx does, not turned into a 502 against the upstream. It reports
// whether there is such an answer; the client connection closes after it,
// since the rest of the request was never read.
func (c *clientConn) answeredEarly() bool {
	up := c.x.up
	if !c.x.respHead && up.r == up.w {
		if n, _ := rawPeek(up.fd); n <= 0 {
			return false
		}
	}
	c.x.reqStopped, c.x.keepAlive, c.x.replay = true, false, false
	c.x.req.b, c.x.req.off = c.x.req.b[:0], 0
	up.readable = true
	return true
}

// stepResponse relays the upstream's answer into c.out while there is room.
func (c *clientConn) stepResponse() bool {
	up := c.x.up
	if up == nil || up.connecting || !c.roomForAnswer() {
		return false
	}
	l := c.l
	moved := false
	if up.r < up.w {
		if !c.x.respHead {
			err := wire.ParseResponse(up.in[up.r:up.w], wire.Limits{MaxHead: l.e.opt.MaxHeaderBytes}, &c.x.resp)
			switch {
			case err == nil:
				c.passHead()
				moved = true
				if c.closed || c.x.up == nil || c.state != stExchange {
					return true // done, failed, or now a tunnel
				}
			case err == wire.ErrIncomplete:
			default:
				c.upstreamFailed(errBadResponse)
				return true
			}
		}
		if c.x.respHead && up.r < up.w {
			c.passBody()
			moved = true
		}
		if c.closed || c.x.up == nil {
			return true
		}
	}
	if up.readable && (up.r == up.w || !c.x.respHead) {
		moved = c.readUpstream() || moved
	}
	return moved
}

// passHead passes an interim (1xx) or the final response head on.
func (c *clientConn) passHead() {
	up, h := c.x.up, &c.x.resp
	head := up.in[up.r : up.r+h.Len]
	if h.Status < 200 {
		up.r += h.Len
		if h.Status == 101 {
			if c.x.head.Upgrade == nil {
				c.upstreamFailed(errBadResponse) // a switch the client did not ask for
				return
			}
			c.startTunnel(head, h)
			return
		}
		c.out.b = wire.AppendResponse(c.outBuf(), head, h, "")
		return
	}
	c.x.respKind = h.Body(c.x.head.Head)
	closeClient := !c.x.keepAlive || c.x.respKind == wire.UntilClose || !c.x.reqDone || c.l.closing
	c.x.keepAlive = !closeClient
	before := len(c.outBuf())
	c.out.b = wire.AppendResponse(c.out.b, head, h, c.connection(closeClient))
	c.addSetCookie()
	c.x.log.bytesOut += int64(len(c.out.b) - before)
	c.x.logStatus = h.Status
	up.r += h.Len
	c.x.respHead, c.x.status = true, h.Status
	c.x.respLeft = h.ContentLength
	if c.x.respKind == wire.Chunked {
		c.x.respChunk.Reset()
	}
	if c.x.respKind == wire.None || c.x.respKind == wire.Length && c.x.respLeft == 0 {
		c.finish()
	}
}

// connection is the Connection header of an answer: "close" when the
// connection closes after it, "keep-alive" when an HTTP/1.0 client's stays
// open (it would close without it), else none.
func (c *clientConn) connection(closeConn bool) string {
	return connectionHeader(closeConn, c.x.head.Minor)
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
	up, l := c.x.up, c.l
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
	switch c.x.respKind {
	case wire.Length:
		n = int(min(int64(n), c.x.respLeft))
		c.x.respLeft -= int64(n)
		done = c.x.respLeft == 0
	case wire.Chunked:
		var err error
		n, done, err = c.x.respChunk.Scan(avail)
		if err != nil {
			c.out.b = append(c.outBuf(), avail[:n]...)
			c.endAttempt(upstreamFailed)
			c.close() // mid-answer: the client sees it cut short, never wrong
			return
		}
	}
	c.x.log.bytesOut += int64(n)
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
	up, l := c.x.up, c.l
	switch l.read(&up.sock, !c.x.respHead) {
	case readGot:
		c.deadline = l.now + int64(l.e.opt.UpstreamTimeout)
		return true
	case readNone:
		return false
	case readFull:
		c.upstreamFailed(errBadResponse) // head too large for the parser
		return true
	}
	// EOF or a reset.
	switch {
	case c.x.respHead && c.x.respKind == wire.UntilClose:
		c.finish()
	case c.x.respHead:
		c.endAttempt(upstreamFailed)
		c.close() // mid-answer: the client sees it cut short, never wrong
	default:
		c.upstreamFailed(errUpstreamClosed)
	}
	return true
}

// finish ends an exchange whose response is complete (its last bytes may
// still be in c.out).
func (c *clientConn) finish() {
	l, up := c.l, c.x.up
	reusable := c.x.resp.KeepAlive && c.x.respKind != wire.UntilClose && c.sentAll() &&
		up.r == up.w && !l.pending(up)
	l.release(up, reusable)
	c.x.up = nil
	c.endAttempt(answered)
	c.endExchange()
}

// endExchange returns to reading the next request, or closes.
func (c *clientConn) endExchange() {
	l := c.l
	keepAlive := c.x.keepAlive && c.x.reqDone
	c.dropExchange()
	if keepAlive && !l.closing {
		c.state = stHead
		c.deadline = l.now + int64(l.e.opt.IdleTimeout)
		if c.r < c.w && c.outputDone() {
			c.deadline = l.now + int64(l.e.opt.ReadHeaderTimeout)
		}
		return
	}
	c.linger()
}

// dropExchange releases what the exchange holds (its upstream connection,
// attempt, buffers and buffered body) and resets it to a fresh value.
func (c *clientConn) dropExchange() {
	l := c.l
	c.logRequest()
	if c.x.up != nil {
		l.closeUp(c.x.up)
		c.x.up = nil
	}
	c.endAttempt(notUpstream)
	if c.x.tunnel != nil {
		c.x.tunnel.CloseTunnel()
		l.e.tunnels.Add(-1)
	}
	c.body.reset(l)
	for _, b := range [...][]byte{c.x.req.b, c.x.stage.b} {
		if b != nil {
			l.putBuf(b[:0])
		}
	}
	c.x = exchange{}
}

// upstreamFailed handles an attempt that ended before a response was
// passed on: the request goes to another upstream when that is safe, or
// the client gets an error.
func (c *clientConn) upstreamFailed(err error) {
	if c.dropUpstream(upstreamFailed) {
		return
	}
	if retryAllowed(err, c.x.head.Idempotent, c.x.replay) {
		c.connect(err)
		return
	}
	c.answerError(err)
}

// answerError answers a request that got no response: 503 when no
// upstream was available, 504 on a timeout, else 502.
func (c *clientConn) answerError(err error) {
	status, msg := errorAnswer(err)
	c.logError(status, err)
	if !c.x.reqDone {
		c.x.keepAlive = false
	}
	c.writeError(status, msg, !c.x.keepAlive)
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
	method, uri := string(c.x.head.Method), string(c.x.head.URI)
	if c.x.headGone {
		method, uri = "?", "? (request body read over its bytes)"
	}
	e.log.Warn("proxy error", "method", method, "uri", uri, "status", status, "error", err)
}

// abortRequest ends an exchange whose request body turned out bad or too
// large while it was being relayed.
func (c *clientConn) abortRequest(status int, msg string) {
	if !c.dropUpstream(notUpstream) {
		c.refuse(status, msg)
	}
}

// dropUpstream closes the exchange's upstream connection and ends its
// attempt with outcome. Once an answer was passed on, nothing else can be
// said to the client: it closes the client too (the client sees the
// answer cut short, never wrong) and reports true.
func (c *clientConn) dropUpstream(outcome int) bool {
	if c.x.up != nil {
		c.l.closeUp(c.x.up)
		c.x.up = nil
	}
	c.endAttempt(outcome)
	if c.x.respHead {
		c.close()
		return true
	}
	return false
}

// addSetCookie adds the sticky cookie of a fresh pick to the answer head
// just written to c.out (before its final CRLF): HttpOnly, SameSite=Lax,
// for the whole site.
func (c *clientConn) addSetCookie() {
	if c.x.setCookie == nil {
		return
	}
	b := c.out.b[:len(c.out.b)-2]
	b = append(b, "Set-Cookie: "...)
	b = append(b, c.l.e.opt.StickyCookie...)
	b = append(b, '=')
	b = append(b, c.x.setCookie...)
	c.out.b = append(b, "; Path=/; HttpOnly; SameSite=Lax\r\n\r\n"...)
}

// firstOf returns a, or b when a is empty.
func firstOf(a, b []byte) []byte {
	if len(a) > 0 {
		return a
	}
	return b
}
