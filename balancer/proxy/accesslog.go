//go:build linux

package proxy

import (
	"io"
	"strconv"
	"sync"
	"time"
)

// The access log: one line per request, as nginx's access_log. Each loop
// appends lines to a buffer of its own, with no lock and no allocation,
// and hands full buffers (or what it has at each sweep) to one writer
// goroutine, so the request path never waits on the disk.

// Access log formats (EngineOptions.AccessLog).
const (
	AccessLogOff  = "off"
	AccessLogText = "text"
	AccessLogJSON = "json"
)

const (
	logFlushAt = 32 << 10 // a loop's buffer is handed over past this
	logBuffers = 4        // buffers per loop, in use and in flight
	maxLogPath = 200      // bytes of method and target kept; the query is cut first
	maxLogID   = 64       // bytes of request id kept
)

// accessLog is the writer side, shared by the loops.
type accessLog struct {
	json bool
	out  io.Writer
	full chan []byte // buffers of lines to write
	free chan []byte // written buffers, for the loops to fill again
	wg   sync.WaitGroup
	once sync.Once
}

func newAccessLog(format string, out io.Writer, loops int) *accessLog {
	if format != AccessLogText && format != AccessLogJSON || out == nil {
		return nil
	}
	n := loops * logBuffers
	a := &accessLog{json: format == AccessLogJSON, out: out, full: make(chan []byte, n), free: make(chan []byte, n)}
	a.wg.Add(1)
	go a.write()
	return a
}

func (a *accessLog) write() {
	defer a.wg.Done()
	for b := range a.full {
		_, _ = a.out.Write(b)
		select {
		case a.free <- b[:0]:
		default:
		}
	}
}

// stop writes what was handed over and ends the writer; the loops must
// have flushed and stopped.
func (a *accessLog) stop() {
	if a == nil {
		return
	}
	a.once.Do(func() { close(a.full) })
	a.wg.Wait()
}

// logLine is what the access log records of one request, kept in the
// exchange: the head's bytes may be overwritten by the body before the
// request ends, so method, target and id are copied at its start.
type logLine struct {
	begin    int64 // unix nanoseconds, when the head was parsed
	target   [maxLogPath]byte
	ntarget  int
	id       [maxLogID]byte
	nid      int
	bytesIn  int64
	bytesOut int64
	upstream int // the last attempt's upstream id; 0: none
}

// note copies what the line needs from a request head.
func (ll *logLine) note(now int64, method, uri, id []byte) {
	ll.begin = now
	b := append(ll.target[:0], method...)
	b = append(b, ' ')
	path, query := uri, []byte(nil)
	for i, ch := range uri {
		if ch == '?' {
			path, query = uri[:i], uri[i:]
			break
		}
	}
	room := maxLogPath - len(b)
	if len(path) > room {
		path = path[:room]
	}
	b = append(b, path...)
	if room = maxLogPath - len(b); len(query) > room {
		query = query[:room]
	}
	b = append(b, query...)
	ll.ntarget = len(b)
	ll.nid = copy(ll.id[:], id)
}

// logRequest appends the line of the exchange that ends, if it noted one,
// to the loop's buffer. A request the client left before an answer is
// logged as 499, as nginx logs it.
func (c *clientConn) logRequest() {
	l := c.l
	a := l.e.alog
	if a == nil || c.x.log.begin == 0 {
		return
	}
	status := c.x.logStatus
	if status == 0 {
		status = 499
	}
	ll := &c.x.log
	if l.logBuf == nil {
		l.logBuf = a.takeBuf()
	}
	if a.json {
		l.logBuf = appendJSONLine(l.logBuf, ll, c.ip, status, c.x.tried.Len(), l.now)
	} else {
		l.logBuf = appendTextLine(l.logBuf, ll, c.ip, status, c.x.tried.Len(), l.now)
	}
	if len(l.logBuf) >= logFlushAt {
		l.flushLog()
	}
}

// takeBuf returns an empty buffer for a loop's lines: a written one when
// there is one (in the steady state, always), else a new one.
func (a *accessLog) takeBuf() []byte {
	select {
	case b := <-a.free:
		return b
	default:
		return make([]byte, 0, 2*logFlushAt)
	}
}

// flushLog hands the loop's lines to the writer.
func (l *loop) flushLog() {
	if l.e.alog == nil || len(l.logBuf) == 0 {
		return
	}
	b := l.logBuf
	l.logBuf = nil
	l.e.alog.full <- b
}

func appendTextLine(b []byte, ll *logLine, ip []byte, status, attempts int, now int64) []byte {
	b = time.Unix(0, ll.begin).UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, ' ')
	b = append(b, ip...)
	b = append(b, ' ')
	if ll.nid == 0 {
		b = append(b, '-')
	}
	b = append(b, ll.id[:ll.nid]...)
	b = append(b, " \""...)
	b = appendEscaped(b, ll.target[:ll.ntarget])
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, " in="...)
	b = strconv.AppendInt(b, ll.bytesIn, 10)
	b = append(b, " out="...)
	b = strconv.AppendInt(b, ll.bytesOut, 10)
	b = append(b, " upstream="...)
	b = strconv.AppendInt(b, int64(ll.upstream), 10)
	b = append(b, " attempts="...)
	b = strconv.AppendInt(b, int64(attempts), 10)
	b = append(b, " ms="...)
	b = appendMillis(b, now-ll.begin)
	return append(b, '\n')
}

func appendJSONLine(b []byte, ll *logLine, ip []byte, status, attempts int, now int64) []byte {
	b = append(b, `{"time":"`...)
	b = time.Unix(0, ll.begin).UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","request_id":"`...)
	b = appendEscaped(b, ll.id[:ll.nid])
	b = append(b, `","client":"`...)
	b = append(b, ip...)
	method, target := splitTarget(ll.target[:ll.ntarget])
	b = append(b, `","method":"`...)
	b = appendEscaped(b, method)
	b = append(b, `","path":"`...)
	b = appendEscaped(b, target)
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"bytes_in":`...)
	b = strconv.AppendInt(b, ll.bytesIn, 10)
	b = append(b, `,"bytes_out":`...)
	b = strconv.AppendInt(b, ll.bytesOut, 10)
	b = append(b, `,"upstream":`...)
	b = strconv.AppendInt(b, int64(ll.upstream), 10)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(attempts), 10)
	b = append(b, `,"duration_ms":`...)
	b = appendMillis(b, now-ll.begin)
	return append(b, "}\n"...)
}

func splitTarget(t []byte) (method, target []byte) {
	for i, ch := range t {
		if ch == ' ' {
			return t[:i], t[i+1:]
		}
	}
	return t, nil
}

// appendMillis appends d nanoseconds as milliseconds with three decimals.
func appendMillis(b []byte, d int64) []byte {
	if d < 0 {
		d = 0
	}
	us := d / 1000
	b = strconv.AppendInt(b, us/1000, 10)
	frac := us % 1000
	b = append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	return b
}

// appendEscaped appends s with '"', '\' and bytes outside printable ASCII
// escaped, so a line stays one line and valid JSON.
func appendEscaped(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	for _, ch := range s {
		switch {
		case ch == '"' || ch == '\\':
			b = append(b, '\\', ch)
		case ch < 0x20 || ch >= 0x7f:
			b = append(b, '\\', 'u', '0', '0', hex[ch>>4], hex[ch&15])
		default:
			b = append(b, ch)
		}
	}
	return b
}
