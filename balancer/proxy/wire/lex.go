package wire

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/bits"
)

const (
	defaultMaxHead = 64 << 10
	// maxHeaders is the most header lines a head may have.
	maxHeaders = 256
	// maxConnTokens is how many Connection tokens a head remembers; past
	// that the writers scan the Connection headers again (slower, still
	// without allocating).
	maxConnTokens = 16
)

// Limits bounds the work a parse may do.
type Limits struct {
	// MaxHead is the most bytes a head may take, leading empty lines and
	// the final empty line included. If <= 0, 64 KiB.
	MaxHead int
}

func (l Limits) max() int {
	if l.MaxHead <= 0 {
		return defaultMaxHead
	}
	return l.MaxHead
}

// short is the error for a buffer without a complete head: ErrHeadTooLarge
// once the buffer holds max bytes or more, ErrIncomplete before.
func short(n, max int) error {
	if n >= max {
		return ErrHeadTooLarge
	}
	return ErrIncomplete
}

// tchar marks the token characters of RFC 9110 5.6.2.
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// lowerTab maps ASCII upper case letters to lower case, and every other
// byte to itself.
var lowerTab = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
		if 'A' <= i && i <= 'Z' {
			t[i] = byte(i) + 'a' - 'A'
		}
	}
	return t
}()

// eqLower reports whether b equals lower, a lower case constant, ignoring
// ASCII case.
func eqLower(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lowerTab[b[i]] != lower[i] {
			return false
		}
	}
	return true
}

// eqFold reports whether a and b are equal ignoring ASCII case.
func eqFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerTab[a[i]] != lowerTab[b[i]] {
			return false
		}
	}
	return true
}

func isOWS(c byte) bool { return c == ' ' || c == '\t' }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// trimOWS returns b without leading and trailing spaces and tabs.
func trimOWS(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && isOWS(b[i]) {
		i++
	}
	for j > i && isOWS(b[j-1]) {
		j--
	}
	return b[i:j]
}

// nextLine finds the line that starts at w[i]. It returns the line without
// its LF or CRLF end, the index after the LF, and whether the line ended in
// CRLF; ok is false when w[i:] holds no LF.
func nextLine(w []byte, i int) (line []byte, next int, crlf, ok bool) {
	j := bytes.IndexByte(w[i:], '\n')
	if j < 0 {
		return nil, 0, false, false
	}
	line = w[i : i+j]
	if j > 0 && line[j-1] == '\r' {
		line = line[:j-1]
		crlf = true
	}
	return line, i + j + 1, crlf, true
}

// hdrLine is one header line of a head: name w[start:nameEnd], trimmed
// value w[vs:ve]; the next line starts at w[next].
type hdrLine struct {
	start, nameEnd, vs, ve, next int
	// canon reports a line already in the form "Name: value\r\n" (one
	// space, no trailing whitespace), which the writers may copy as it is.
	canon bool
}

func (l *hdrLine) name(w []byte) []byte  { return w[l.start:l.nameEnd] }
func (l *hdrLine) value(w []byte) []byte { return w[l.vs:l.ve] }

// step is what nextHeader found.
type step uint8

const (
	stepHeader step = iota // a header line, in l
	stepEnd                // the empty line that ends the head
	stepMore               // not enough bytes yet
	stepErr                // a malformed line
)

// nextHeader reads what starts at w[i] in a head's header section: a
// header line (into l, counted in *n) or the final empty line, whose end
// is returned as next.
func nextHeader(w []byte, i int, n *int, l *hdrLine) (st step, next int, code errCode) {
	if i >= len(w) {
		return stepMore, 0, eNone
	}
	if c := w[i]; c == '\r' || c == '\n' {
		next := i + 1
		if c == '\r' {
			if next == len(w) {
				return stepMore, 0, eNone
			}
			if w[next] != '\n' {
				return stepErr, 0, eHeaderLine
			}
			next++
		}
		return stepEnd, next, eNone
	}
	if *n++; *n > maxHeaders {
		return stepErr, 0, eTooMany
	}
	more, code := headerLine(w, i, l)
	switch {
	case more:
		return stepMore, 0, eNone
	case code != eNone:
		return stepErr, 0, code
	}
	return stepHeader, l.next, eNone
}

// headerLine reads the header line "name: value" that starts at w[i], which
// is not a line end, in one pass: the name's token characters, then the
// value up to the first control character, which must be the line end.
// more reports that w ends before the line does, with no error found yet.
func headerLine(w []byte, i int, l *hdrLine) (more bool, code errCode) {
	l.start = i
	j := i
	for j < len(w) && tchar[w[j]] {
		j++
	}
	if j == len(w) {
		return true, eNone
	}
	if w[j] != ':' || j == i {
		if j == i && isOWS(w[j]) {
			return false, eObsFold
		}
		return false, eHeaderLine
	}
	l.nameEnd = j
	j++
	for j < len(w) && isOWS(w[j]) {
		j++
	}
	l.vs = j
	crlf := false
	for {
		j = ctlIndex(w, j)
		if j == len(w) {
			return true, eNone
		}
		switch w[j] {
		case '\t':
			j++
			continue
		case '\n':
			l.next = j + 1
		case '\r':
			if j+1 == len(w) {
				return true, eNone
			}
			if w[j+1] != '\n' {
				return false, eCtl
			}
			l.next = j + 2
			crlf = true
		default:
			return false, eCtl
		}
		break
	}
	l.ve = j
	for l.ve > l.vs && isOWS(w[l.ve-1]) {
		l.ve--
	}
	l.canon = crlf && l.ve == j && l.vs == l.nameEnd+2 && w[l.nameEnd+1] == ' '
	return false, eNone
}

// ctlIndex returns the index of the first control character (a byte below
// 0x20, or 0x7F) in w at or after j, or len(w). It tests eight bytes at a
// time.
func ctlIndex(w []byte, j int) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	for ; j+8 <= len(w); j += 8 {
		x := binary.LittleEndian.Uint64(w[j:])
		d := x ^ (ones * 0x7f)
		// The high bit of the lowest byte below 0x20 or equal to 0x7F, and
		// maybe of higher bytes: the lowest bit set is exact.
		if m := ((x-ones*0x20)&^x | (d-ones)&^d) & highs; m != 0 {
			return j + bits.TrailingZeros64(m)/8
		}
	}
	for ; j < len(w); j++ {
		if c := w[j]; c < 0x20 || c == 0x7f {
			return j
		}
	}
	return len(w)
}

// validValue reports whether v has no control characters other than HTAB.
func validValue(v []byte) bool {
	for j := 0; ; j++ {
		j = ctlIndex(v, j)
		if j == len(v) {
			return true
		}
		if v[j] != '\t' {
			return false
		}
	}
}

// parseVersion reads "HTTP/1.0" or "HTTP/1.1".
func parseVersion(v []byte) (minor int, code errCode) {
	if len(v) != 8 || string(v[:5]) != "HTTP/" || !isDigit(v[5]) || v[6] != '.' || !isDigit(v[7]) {
		return 0, eStartLine
	}
	if v[5] != '1' || v[7] > '1' {
		return 0, eVersion
	}
	return int(v[7] - '0'), eNone
}

// hdrKind names the headers this package treats specially.
type hdrKind uint8

const (
	hOther hdrKind = iota
	hHost
	hTE
	hExpect
	hUpgrade
	hTrailer
	hConnection
	hKeepAlive
	hRequestID
	hContentLength
	hForwardedFor
	hForwardedHost
	hProxyConnection
	hForwardedProto
	hTransferEncoding
	hProxyAuthenticate
	hProxyAuthorization
)

// classify tells which header a name is, ignoring case.
func classify(name []byte) hdrKind {
	switch len(name) {
	case 2:
		if eqLower(name, "te") {
			return hTE
		}
	case 4:
		if eqLower(name, "host") {
			return hHost
		}
	case 6:
		if eqLower(name, "expect") {
			return hExpect
		}
	case 7:
		if eqLower(name, "upgrade") {
			return hUpgrade
		}
		if eqLower(name, "trailer") {
			return hTrailer
		}
	case 10:
		if eqLower(name, "connection") {
			return hConnection
		}
		if eqLower(name, "keep-alive") {
			return hKeepAlive
		}
	case 12:
		if eqLower(name, "x-request-id") {
			return hRequestID
		}
	case 14:
		if eqLower(name, "content-length") {
			return hContentLength
		}
	case 15:
		if eqLower(name, "x-forwarded-for") {
			return hForwardedFor
		}
	case 16:
		if eqLower(name, "x-forwarded-host") {
			return hForwardedHost
		}
		if eqLower(name, "proxy-connection") {
			return hProxyConnection
		}
	case 17:
		if eqLower(name, "x-forwarded-proto") {
			return hForwardedProto
		}
		if eqLower(name, "transfer-encoding") {
			return hTransferEncoding
		}
	case 18:
		if eqLower(name, "proxy-authenticate") {
			return hProxyAuthenticate
		}
	case 19:
		if eqLower(name, "proxy-authorization") {
			return hProxyAuthorization
		}
	}
	return hOther
}

// contentLength folds the value of one Content-Length header into *cl
// (-1 before the first): a number, or a comma separated list of the same
// number.
func contentLength(v []byte, cl *int64) errCode {
	for {
		i := bytes.IndexByte(v, ',')
		e := v
		if i >= 0 {
			e = v[:i]
		}
		n, ok := parseDigits(trimOWS(e))
		if !ok {
			return eBadCL
		}
		if *cl >= 0 && *cl != n {
			return eConflictCL
		}
		*cl = n
		if i < 0 {
			return eNone
		}
		v = v[i+1:]
	}
}

// parseDigits reads a non-empty decimal number that fits an int64.
func parseDigits(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// codings tallies the transfer codings of Transfer-Encoding headers.
type codings struct {
	seen      bool // a Transfer-Encoding header was present
	chunked   int  // how many times "chunked" was listed
	lastChunk bool // the last coding listed was chunked
	known     bool // a coding other than chunked that RFC 9110 registers
	unknown   bool // any other coding
	empty     bool // an empty list element ("chunked,", ",chunked", or no value)
	n         int  // codings listed
}

func (c *codings) add(v []byte) {
	c.seen = true
	for {
		i := bytes.IndexByte(v, ',')
		e := v
		if i >= 0 {
			e = v[:i]
		}
		if e = trimOWS(e); len(e) == 0 {
			// RFC 9110 5.6.1 lets a recipient skip empty elements, but
			// gunicorn up to 21.2 then reads no body and takes the chunk
			// data as the next request (issue 8): refused.
			c.empty = true
		} else {
			c.n++
			c.lastChunk = false
			switch {
			case eqLower(e, "chunked"):
				c.chunked++
				c.lastChunk = true
			case eqLower(e, "gzip"), eqLower(e, "x-gzip"), eqLower(e, "deflate"),
				eqLower(e, "compress"), eqLower(e, "x-compress"):
				c.known = true
			default:
				c.unknown = true
			}
		}
		if i < 0 {
			return
		}
		v = v[i+1:]
	}
}

// connTokens remembers the tokens of Connection headers as offsets into the
// buffer that was parsed, so that the writers can drop the headers they
// name.
type connTokens struct {
	// upgrade: a Connection header listed "upgrade".
	upgrade bool
	n       int
	more    bool // more tokens than fit tok: scan the Connection headers again
	tok     [maxConnTokens][2]int32
}

// add records the tokens of a Connection header value buf[s:e] and reports
// whether "close" or "keep-alive" is among them. "keep-alive" is not
// recorded: the Keep-Alive header is dropped anyway.
func (c *connTokens) add(buf []byte, s, e int) (closeTok, keepAlive bool) {
	for s <= e {
		j := bytes.IndexByte(buf[s:e], ',')
		end := e
		if j >= 0 {
			end = s + j
		}
		ts, te := s, end
		for ts < te && isOWS(buf[ts]) {
			ts++
		}
		for te > ts && isOWS(buf[te-1]) {
			te--
		}
		if ts < te {
			tok := buf[ts:te]
			switch {
			case eqLower(tok, "keep-alive"):
				keepAlive = true
			case eqLower(tok, "close"):
				closeTok = true
				fallthrough
			default:
				c.upgrade = c.upgrade || eqLower(tok, "upgrade")
				if c.n < len(c.tok) && te <= math.MaxInt32 {
					c.tok[c.n] = [2]int32{int32(ts), int32(te - ts)}
					c.n++
				} else {
					c.more = true
				}
			}
		}
		s = end + 1
	}
	return closeTok, keepAlive
}

// names reports whether a Connection header of the head buf[start:end]
// lists name.
func (c *connTokens) names(buf []byte, start, end int, name []byte) bool {
	for _, t := range c.tok[:c.n] {
		off, n := int(t[0]), int(t[1])
		if n == len(name) && off+n <= len(buf) && eqFold(buf[off:off+n], name) {
			return true
		}
	}
	if c.more {
		return connectionLists(buf[start:end], name)
	}
	return false
}

// connectionLists scans the header lines hdrs for a Connection header that
// lists name.
func connectionLists(hdrs []byte, name []byte) bool {
	for i := 0; i < len(hdrs); {
		line, next, _, ok := nextLine(hdrs, i)
		if !ok {
			line, next = hdrs[i:], len(hdrs)
		}
		i = next
		colon := bytes.IndexByte(line, ':')
		if colon < 0 || classify(line[:colon]) != hConnection {
			continue
		}
		v := line[colon+1:]
		for {
			j := bytes.IndexByte(v, ',')
			e := v
			if j >= 0 {
				e = v[:j]
			}
			if eqFold(trimOWS(e), name) {
				return true
			}
			if j < 0 {
				break
			}
			v = v[j+1:]
		}
	}
	return false
}

// Writer modes: flags for what appendHeaders drops.
const (
	forRequest         = 0
	forResponse        = 1 << iota // a response head; otherwise a request's
	forResponseNoCL                // a response whose Transfer-Encoding overrides its Content-Length
	forRequestNewHost              // a request whose Host is written anew (absolute-form target)
	forRequestNoExpect             // a request whose body is sent whole: Expect is dropped
	forResponseUpgrade             // a 101 answer to an upgrade: Upgrade is kept
)

// appendHeaders appends the header lines of buf[start:end] that are to be
// forwarded, each as "Name: value\r\n". Runs of lines already in that form
// are copied in one go.
func appendHeaders(dst, buf []byte, start, end int, conn *connTokens, mode int) []byte {
	if end > len(buf) {
		end = len(buf)
	}
	if start < 0 || start > end {
		return dst
	}
	w := buf[:end]
	run := start // first line of the run of lines to copy as they are
	i := start
	for i < end {
		var l hdrLine
		if more, code := headerLine(w, i, &l); more || code != eNone {
			break
		}
		keep := keepHeader(buf, start, end, l.name(w), l.value(w), conn, mode)
		if !keep || !l.canon {
			dst = append(dst, buf[run:i]...)
			if keep {
				dst = append(dst, l.name(w)...)
				dst = append(dst, ": "...)
				dst = append(dst, l.value(w)...)
				dst = append(dst, "\r\n"...)
			}
			run = l.next
		}
		i = l.next
	}
	return append(dst, buf[run:i]...)
}

// keepHeader tells whether a header is forwarded.
func keepHeader(buf []byte, start, end int, name, value []byte, conn *connTokens, mode int) bool {
	switch classify(name) {
	case hUpgrade:
		return mode&forResponseUpgrade != 0
	case hConnection, hKeepAlive, hProxyConnection, hProxyAuthenticate,
		hProxyAuthorization, hTrailer:
		return false
	case hTE:
		return eqLower(value, "trailers")
	case hForwardedFor, hForwardedProto, hForwardedHost, hRequestID:
		return mode&forResponse != 0
	case hContentLength:
		// Never dropped for a Connection token: that would change the
		// framing of the body forwarded after the head.
		return mode&forResponseNoCL == 0
	case hTransferEncoding:
		// A request's is written anew, as exactly "chunked".
		return mode&forResponse != 0
	case hHost:
		return mode&forRequestNewHost == 0
	case hExpect:
		return mode&forRequestNoExpect == 0
	}
	return !conn.names(buf, start, end, name)
}
