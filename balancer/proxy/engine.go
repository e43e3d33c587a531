//go:build linux

package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procbal/procbal/balancer/pool"
)

// EngineOptions are the client-side bounds of the event-loop front end.
type EngineOptions struct {
	// Loops is the number of event loops. If zero, half of GOMAXPROCS, at
	// least one: the workers on the same machine need the other half
	// (measured in docs/TUNING.md).
	Loops int
	// MaxHeaderBytes bounds a request head (431 beyond it) and an upstream
	// response head (502). If zero, 64 KiB.
	MaxHeaderBytes int
	// MaxBodyBytes bounds a request body (413 beyond it). If zero, 32 MiB.
	MaxBodyBytes int64
	// ReadHeaderTimeout is how long a client has to send a request head,
	// and how long a request body may stall. If zero, 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive client connection idle this long. If
	// zero, 60s.
	IdleTimeout time.Duration
	// UpstreamTimeout bounds the wait for an upstream's answer, and any
	// stall while one is relayed (504, or the connection closed). If zero,
	// 60s.
	UpstreamTimeout time.Duration
	// UpstreamIdle closes pooled upstream connections idle this long. If
	// zero, 30s.
	UpstreamIdle time.Duration
	// StreamRequests sends request bodies upstream as they arrive. If
	// false (the default), a body is read whole before an upstream is
	// picked, as nginx's proxy_request_buffering does, so that a slow
	// client never holds a worker (a sync backend such as gunicorn's has
	// only a few) and a buffered request can be retried on another
	// upstream.
	StreamRequests bool
	// ClientBodyTimeout bounds the reading of one whole request body
	// (408 beyond it); a stall within it is bounded by ReadHeaderTimeout.
	// If zero, 120s.
	ClientBodyTimeout time.Duration
	// ResponseBuffer is the most of one answer held for a client that
	// reads slower than the upstream sends, so that the upstream is
	// released at once (nginx's proxy_buffering, up to its
	// proxy_max_temp_file_size). If zero, 1 GiB; if negative, nothing is
	// held beyond a buffer and the upstream waits for the client.
	ResponseBuffer int64
	// BufferMemory is how much of a buffered body, per connection and
	// direction, is held in memory; the rest goes to an unlinked
	// temporary file. If zero, 64 KiB.
	BufferMemory int64
	// TempDir holds the temporary files of buffered bodies. If empty,
	// os.TempDir().
	TempDir string
	// MaxTunnels bounds the connections switched to another protocol
	// (WebSocket and other Upgrade tunnels) across the engine; an Upgrade
	// beyond it gets 503. If zero, 10,000.
	MaxTunnels int64
	// TunnelIdleTimeout closes a tunnel with no byte either way for this
	// long. If zero, 1h.
	TunnelIdleTimeout time.Duration
	// Sticky keeps a client on one upstream: "cookie" (a cookie signed
	// with the pool's sticky secret names it), "ip" (the client address)
	// or "header:NAME" (that header's value) on a consistent-hash ring. If
	// empty, off.
	Sticky string
	// StickyCookie names the sticky cookie. If empty, "procbal_sticky".
	StickyCookie string
	// AccessLog is the access log's format: AccessLogText or
	// AccessLogJSON, one line per request written to AccessLogOut. If
	// empty or AccessLogOff, or AccessLogOut is nil, none.
	AccessLog    string
	AccessLogOut io.Writer
}

func (o *EngineOptions) defaults() {
	if o.Loops <= 0 {
		o.Loops = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 64 << 10
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 32 << 20
	}
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = 10 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 60 * time.Second
	}
	if o.UpstreamTimeout <= 0 {
		o.UpstreamTimeout = 60 * time.Second
	}
	if o.UpstreamIdle <= 0 {
		o.UpstreamIdle = 30 * time.Second
	}
	if o.ClientBodyTimeout <= 0 {
		o.ClientBodyTimeout = 120 * time.Second
	}
	if o.ResponseBuffer == 0 {
		o.ResponseBuffer = 1 << 30
	}
	if o.BufferMemory <= 0 {
		o.BufferMemory = 64 << 10
	}
	if o.TempDir == "" {
		o.TempDir = os.TempDir()
	}
	if o.MaxTunnels <= 0 {
		o.MaxTunnels = 10_000
	}
	if o.TunnelIdleTimeout <= 0 {
		o.TunnelIdleTimeout = time.Hour
	}
	if o.StickyCookie == "" {
		o.StickyCookie = "procbal_sticky"
	}
}

// Engine is the proxy's front end built the way nginx and HAProxy are: a
// few event loops, each a goroutine on its own epoll set, that accept
// clients, parse HTTP/1.1 heads in place, and relay bytes between client
// and upstream sockets without a goroutine, a lock or an allocation per
// request. Each loop pools its own keep-alive connections per upstream.
type Engine struct {
	pool *pool.Pool
	obs  Observer
	log  hclog.Logger
	opt  EngineOptions

	mu       sync.Mutex
	started  bool
	lnFile   *os.File
	lfd      int
	host     []byte // the listener's address: Host for requests without one
	loops    []*loop
	wg       sync.WaitGroup
	stopping atomic.Bool // no new clients; idle ones closed
	kill     atomic.Bool // close everything now
	conns    atomic.Int64
	// noUpstream: a 503 for want of an upstream was logged; cleared when
	// one is picked again.
	noUpstream atomic.Bool
	tunnels    atomic.Int64 // open tunnels, bounded by MaxTunnels
	sticky     int          // stickyOff, stickyCookie, ...
	stickyHdr  string       // the header of STICKY=header:NAME
	alog       *accessLog   // nil: no access log
}

// Tunnels returns the open Upgrade tunnels.
func (e *Engine) Tunnels() int64 { return e.tunnels.Load() }

// NewEngine returns an engine over p. obs may be nil.
func NewEngine(p *pool.Pool, obs Observer, log hclog.Logger, o EngineOptions) *Engine {
	o.defaults()
	mode, hdr, _ := stickyMode(o.Sticky) // checked with ParseSticky; a bad one is off
	return &Engine{pool: p, obs: obs, log: log, opt: o, lfd: -1, sticky: mode, stickyHdr: hdr,
		alog: newAccessLog(o.AccessLog, o.AccessLogOut, o.Loops)}
}

// Open returns the number of open client connections.
func (e *Engine) Open() int64 { return e.conns.Load() }

// Serve accepts clients on ln, a TCP or unix listener, until Shutdown. It
// takes over the listener's socket; ln itself is closed.
func (e *Engine) Serve(ln net.Listener) error {
	f, err := listenerFile(ln)
	host := []byte(ln.Addr().String())
	ln.Close()
	if err != nil {
		return err
	}
	e.mu.Lock()
	if e.stopping.Load() || e.started {
		e.mu.Unlock()
		f.Close()
		return errors.New("engine: already serving or shut down")
	}
	e.started = true
	e.lnFile, e.lfd, e.host = f, int(f.Fd()), host
	if err := syscall.SetNonblock(e.lfd, true); err != nil {
		e.mu.Unlock()
		return fmt.Errorf("engine: listener: %w", err)
	}
	for range e.opt.Loops {
		l, err := newLoop(e)
		if err != nil {
			e.mu.Unlock()
			e.kill.Store(true)
			e.stopping.Store(true)
			e.wg.Wait()
			return err
		}
		e.loops = append(e.loops, l)
		e.wg.Add(1)
		go l.run()
	}
	e.mu.Unlock()
	e.wg.Wait()
	e.alog.stop() // every loop flushed its lines on the way out
	return e.lnFile.Close()
}

func listenerFile(ln net.Listener) (*os.File, error) {
	fl, ok := ln.(interface{ File() (*os.File, error) })
	if !ok {
		return nil, fmt.Errorf("engine: cannot take over a %T", ln)
	}
	return fl.File()
}

// ShutdownWithContext stops accepting, closes idle connections, lets
// requests in flight finish until ctx ends, then closes the rest.
func (e *Engine) ShutdownWithContext(ctx context.Context) error {
	e.mu.Lock()
	e.stopping.Store(true)
	started := e.started
	e.mu.Unlock()
	if !started {
		return nil
	}
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
		e.alog.stop()
		return nil
	case <-ctx.Done():
		e.kill.Store(true)
		<-done
		e.alog.stop()
		return ctx.Err()
	}
}

// loop is one event loop. Everything it owns (its connections, buffers and
// upstream pools) is touched only by its goroutine.
type loop struct {
	e        *Engine
	ep       int
	now      int64 // unix nanoseconds, read once per wake-up
	gen      int32
	ents     []entry // by file descriptor
	clients  []*clientConn
	ups      map[*pool.Upstream]*upPool
	free     [][]byte
	ids      *idSource
	idBuf    [64]byte
	events   [256]syscall.EpollEvent
	logBuf   []byte // access log lines not yet handed to the writer
	sweepAt  int64
	acceptAt int64 // accepts paused until then; 0: not paused
	// acceptWarnAt is when an accept failure may be logged again.
	acceptWarnAt int64
	closing      bool // stopped accepting
}

// entry is what a descriptor is: a client or an upstream connection.
type entry struct {
	gen int32
	c   *clientConn
	up  *upConn
}

// upPool is a loop's idle connections to one upstream, most recent last.
type upPool struct {
	idle []*upConn
	sa   syscall.Sockaddr
	tcp  bool
}

const (
	bufSize       = 16 << 10
	sweepEvery    = 100 * time.Millisecond
	lingerTimeout = 2 * time.Second
	maxIdlePerUp  = 256
)

func newLoop(e *Engine) (*loop, error) {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("engine: epoll: %w", err)
	}
	l := &loop{e: e, ep: ep, ups: map[*pool.Upstream]*upPool{}, ids: newIDSource()}
	if err := l.watchListener(); err != nil {
		syscall.Close(ep)
		return nil, fmt.Errorf("engine: epoll: %w", err)
	}
	return l, nil
}

// watchListener adds the listening socket to the loop's set. Every loop
// waits on it; EPOLLEXCLUSIVE wakes one of them per new connection instead
// of all.
func (l *loop) watchListener() error {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | 1<<28, Fd: int32(l.e.lfd), Pad: -1}
	return syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_ADD, l.e.lfd, &ev)
}

func (l *loop) run() {
	defer l.e.wg.Done()
	defer syscall.Close(l.ep)
	l.now = time.Now().UnixNano()
	l.sweepAt = l.now + int64(sweepEvery)
	for {
		wait := int((l.sweepAt - l.now) / int64(time.Millisecond))
		n, err := syscall.EpollWait(l.ep, l.events[:], max(wait, 0))
		l.now = time.Now().UnixNano()
		if err != nil && err != syscall.EINTR {
			l.e.log.Error("epoll wait failed", "error", err)
			n = 0
		}
		for i := range n {
			l.dispatch(&l.events[i])
		}
		if l.now >= l.sweepAt {
			if l.sweep() {
				l.flushLog()
				return
			}
			l.flushLog()
			l.sweepAt = l.now + int64(sweepEvery)
		}
	}
}

func (l *loop) dispatch(ev *syscall.EpollEvent) {
	defer l.recoverEvent(ev)
	fd := int(ev.Fd)
	if ev.Pad == -1 {
		l.accept()
		return
	}
	if fd >= len(l.ents) || l.ents[fd].gen != ev.Pad {
		return // the descriptor was closed earlier in this batch
	}
	ent := &l.ents[fd]
	in := ev.Events&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0
	out := ev.Events&(syscall.EPOLLOUT|syscall.EPOLLHUP|syscall.EPOLLERR) != 0
	// The peer closed (its FIN may have come with the last data, in one
	// event): reads go on until EOF rather than stopping at a short read.
	hup := ev.Events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0
	if c := ent.c; c != nil {
		c.readable = c.readable || in
		c.writable = c.writable || out
		c.hup = c.hup || hup
		c.progress()
		return
	}
	up := ent.up
	up.readable = up.readable || in
	up.writable = up.writable || out
	up.hup = up.hup || hup
	if up.c != nil {
		up.c.progress()
		return
	}
	if in {
		// An idle connection became readable: the upstream closed it (or
		// spoke out of turn). Either way it is not reusable.
		l.dropIdle(up)
	}
}

// recoverEvent keeps a bug in the relay of one connection from taking
// every other connection down with the process: it logs the panic with its
// stack and closes the connection the event was about.
func (l *loop) recoverEvent(ev *syscall.EpollEvent) {
	r := recover()
	if r == nil {
		return
	}
	l.e.log.Error("proxy engine panic, closing the connection", "panic", r, "stack", string(debug.Stack()))
	fd := int(ev.Fd)
	if ev.Pad == -1 || fd >= len(l.ents) || l.ents[fd].gen != ev.Pad {
		return
	}
	ent := l.ents[fd]
	defer func() { _ = recover() }() // the state may be too broken to close cleanly
	switch {
	case ent.c != nil:
		ent.c.close()
	case ent.up.c != nil:
		ent.up.c.close()
	default:
		l.dropIdle(ent.up)
	}
}

func (l *loop) accept() {
	for range 64 {
		fd, sa, err := syscall.Accept4(l.e.lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		switch err {
		case nil:
		case syscall.EAGAIN, syscall.ECONNABORTED, syscall.EINTR:
			return
		default:
			// Out of descriptors (EMFILE, ENFILE) or memory: the listener
			// stays readable, so stop watching it until the next sweep
			// rather than spin (nginx waits 500 ms); the connections being
			// served meanwhile give descriptors back. Logged once a second.
			if l.now >= l.acceptWarnAt {
				l.e.log.Warn("accept failed, pausing accepts", "error", err, "for", sweepEvery)
				l.acceptWarnAt = l.now + int64(time.Second)
			}
			_ = syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_DEL, l.e.lfd, nil)
			l.acceptAt = l.now + int64(sweepEvery)
			return
		}
		if l.e.stopping.Load() {
			syscall.Close(fd)
			continue
		}
		var ip []byte
		switch a := sa.(type) {
		case *syscall.SockaddrInet4:
			_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
			ip = appendIP(nil, a.Addr[:])
		case *syscall.SockaddrInet6:
			_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
			ip = appendIP(nil, a.Addr[:])
		default:
			ip = []byte("unix")
		}
		c := &clientConn{sock: sock{fd: fd, writable: true}, l: l, ip: ip}
		if !l.register(fd, entry{c: c}) {
			continue
		}
		c.idx = len(l.clients)
		l.clients = append(l.clients, c)
		l.e.conns.Add(1)
		c.deadline = l.now + int64(l.e.opt.ReadHeaderTimeout)
		// The request usually arrived with the connection: serve it now
		// rather than after another wait (and, out of descriptors, give
		// this one back before accepting the next).
		c.readable = true
		c.progress()
	}
}

// register adds fd to the loop's epoll set as ent; on failure it closes fd.
func (l *loop) register(fd int, ent entry) bool {
	l.gen++
	if l.gen < 0 {
		l.gen = 0
	}
	ent.gen = l.gen
	if fd >= len(l.ents) {
		l.ents = append(l.ents, make([]entry, fd+1-len(l.ents)+64)...)
	}
	l.ents[fd] = ent
	if err := epollAdd(l.ep, fd, eventMask, ent.gen); err != nil {
		l.e.log.Warn("epoll add failed", "error", err)
		l.ents[fd] = entry{}
		syscall.Close(fd)
		return false
	}
	return true
}

func (l *loop) unregister(fd int) {
	l.ents[fd] = entry{}
	syscall.Close(fd)
}

// sweep runs every sweepEvery: it applies deadlines, closes stale idle
// upstream connections, and handles shutdown. It reports whether the loop
// is done.
func (l *loop) sweep() bool {
	e := l.e
	if e.kill.Load() {
		for len(l.clients) > 0 {
			l.clients[len(l.clients)-1].close()
		}
		l.closeAllIdle()
		return true
	}
	if l.acceptAt != 0 && l.now >= l.acceptAt && !l.closing {
		l.acceptAt = 0
		if err := l.watchListener(); err != nil {
			l.e.log.Error("listening again failed", "error", err)
		}
	}
	if e.stopping.Load() && !l.closing {
		l.closing = true
		_ = syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_DEL, e.lfd, nil)
	}
	for i := 0; i < len(l.clients); {
		c := l.clients[i]
		switch {
		case l.closing && c.state == stHead && c.r == c.w && c.outputDone():
			c.close()
		case c.deadline != 0 && l.now >= c.deadline:
			c.expired()
		}
		if i < len(l.clients) && l.clients[i] == c {
			i++
		}
	}
	l.sweepIdle()
	if l.closing && len(l.clients) == 0 {
		l.closeAllIdle()
		return true
	}
	return false
}

// sweepIdle closes pooled connections idle longer than UpstreamIdle, and
// forgets upstreams the pool no longer lists (a replaced worker, a remote
// address DNS no longer gives), closing their idle connections at once.
func (l *loop) sweepIdle() {
	limit := l.now - int64(l.e.opt.UpstreamIdle)
	published := l.e.pool.Upstreams()
	for u, p := range l.ups {
		gone := !slices.Contains(published, u)
		keep := p.idle[:0]
		for _, up := range p.idle {
			if gone || up.idleSince < limit {
				l.unregister(up.fd)
				continue
			}
			keep = append(keep, up)
		}
		clear(p.idle[len(keep):])
		p.idle = keep
		if gone && len(p.idle) == 0 {
			delete(l.ups, u)
		}
	}
}

func (l *loop) closeAllIdle() {
	for u, p := range l.ups {
		for _, up := range p.idle {
			l.unregister(up.fd)
		}
		delete(l.ups, u)
	}
}

// getBuf returns an empty buffer of bufSize capacity.
func (l *loop) getBuf() []byte {
	if n := len(l.free); n > 0 {
		b := l.free[n-1]
		l.free = l.free[:n-1]
		return b
	}
	return make([]byte, 0, bufSize)
}

// putBuf keeps b for reuse when it has the standard size; grown ones are
// left to the collector.
func (l *loop) putBuf(b []byte) {
	if cap(b) == bufSize && len(l.free) < 4096 {
		l.free = append(l.free, b[:0])
	}
}

// upstream returns a connection to u: the most recently used idle one, or
// a new one. A failure to connect is a *pool.DialError.
func (l *loop) upstream(u *pool.Upstream) (*upConn, error) {
	p := l.ups[u]
	if p == nil {
		sa, tcp, err := sockaddr(u.Address)
		if err != nil {
			return nil, &pool.DialError{Err: err}
		}
		p = &upPool{sa: sa, tcp: tcp}
		l.ups[u] = p
	}
	if n := len(p.idle); n > 0 {
		up := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		return up, nil
	}
	family := syscall.AF_UNIX
	switch p.sa.(type) {
	case *syscall.SockaddrInet4:
		family = syscall.AF_INET
	case *syscall.SockaddrInet6:
		family = syscall.AF_INET6
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, &localError{err}
	}
	up := &upConn{sock: sock{fd: fd, writable: true}, u: u}
	if p.tcp {
		_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	}
	switch err := syscall.Connect(fd, p.sa); err {
	case nil:
	case syscall.EINPROGRESS:
		up.connecting, up.writable = true, false
	default:
		syscall.Close(fd)
		return nil, &pool.DialError{Err: &net.OpError{Op: "dial", Net: "upstream", Err: err}}
	}
	if !l.register(fd, entry{up: up}) {
		return nil, &pool.DialError{Err: errors.New("epoll registration failed")}
	}
	return up, nil
}

// release returns up to its upstream's idle pool when reusable, else
// closes it.
func (l *loop) release(up *upConn, reusable bool) {
	up.c = nil
	if up.in != nil && up.r == up.w {
		l.putBuf(up.in[:0])
		up.in, up.r, up.w = nil, 0, 0
	}
	p := l.ups[up.u]
	if !reusable || up.in != nil || p == nil || len(p.idle) >= maxIdlePerUp || l.closing ||
		up.u.State() == pool.Stopped {
		l.closeUp(up)
		return
	}
	up.idleSince = l.now
	p.idle = append(p.idle, up)
}

// pending reports whether an upstream connection whose answer is complete
// still has bytes the balancer cannot account for: bytes beyond the
// answer's length, or its close. Pooled, such a connection would hand the
// stray bytes to the next client as its answer (nginx and HAProxy close
// it too). Only a connection whose last read filled the buffer, or whose
// peer closed, can hold them unseen (any other read was short and drained
// the socket), so the common path pays no system call.
func (l *loop) pending(up *upConn) bool {
	if up.hup {
		return true
	}
	if !up.readable {
		return false
	}
	n, errno := rawPeek(up.fd)
	if errno == syscall.EAGAIN {
		up.readable = false
		return false
	}
	if n > 0 {
		l.e.log.Warn("upstream sent bytes after its answer, closing the connection",
			"upstream", up.u.ID, "address", up.u.Address)
	}
	return true
}

func (l *loop) closeUp(up *upConn) {
	up.c = nil
	if up.in != nil {
		l.putBuf(up.in[:0])
		up.in = nil
	}
	l.unregister(up.fd)
}

// dropIdle closes an idle connection the upstream closed.
func (l *loop) dropIdle(up *upConn) {
	if p := l.ups[up.u]; p != nil {
		for i, x := range p.idle {
			if x == up {
				copy(p.idle[i:], p.idle[i+1:])
				p.idle[len(p.idle)-1] = nil
				p.idle = p.idle[:len(p.idle)-1]
				break
			}
		}
	}
	l.closeUp(up)
}

// sockaddr parses an upstream address: "unix:/path" or "ip:port" (the
// supervisor resolves DNS names to addresses before publishing them).
func sockaddr(address string) (syscall.Sockaddr, bool, error) {
	if path, ok := strings.CutPrefix(address, "unix:"); ok {
		return &syscall.SockaddrUnix{Name: path}, false, nil
	}
	ap, err := net.ResolveTCPAddr("tcp", address)
	if err != nil {
		return nil, false, err
	}
	if ip4 := ap.IP.To4(); ip4 != nil {
		sa := &syscall.SockaddrInet4{Port: ap.Port}
		copy(sa.Addr[:], ip4)
		return sa, true, nil
	}
	sa := &syscall.SockaddrInet6{Port: ap.Port}
	copy(sa.Addr[:], ap.IP.To16())
	return sa, true, nil
}
