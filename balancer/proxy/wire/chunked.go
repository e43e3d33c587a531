package wire

import "strconv"

const (
	// maxChunkSize is the largest chunk size accepted.
	maxChunkSize = 1 << 40
	// maxChunkLine bounds a chunk-size line (size and extensions) and each
	// trailer line, line end excluded.
	maxChunkLine = 4 << 10
	// maxTrailers bounds the trailer section, line ends excluded.
	maxTrailers = 64 << 10
)

// Scanner states.
const (
	csSize         uint8 = iota // in the chunk size; digits counts its hex digits
	csSizeWS                    // whitespace after the chunk size
	csExt                       // in chunk extensions, skipped
	csSizeLF                    // CR seen at the end of the size line
	csData                      // in chunk data; size bytes are left
	csDataCR                    // after chunk data: CRLF expected
	csDataLF                    // CR seen after chunk data
	csTrailerStart              // at the start of a trailer line or of the final empty line
	csTrailerName               // in a trailer field name
	csTrailerValue              // in a trailer field value
	csTrailerLF                 // CR seen at the end of a trailer line
	csFinalLF                   // CR seen on the final empty line
	csDone
)

// maxHeldName is how much of a trailer name Filter holds back until its
// colon shows whether the field is dropped: longer names are never dropped.
const maxHeldName = 24

// ChunkedScanner follows a chunked body (RFC 9112 7.1), fed in pieces, to
// find where it ends. Scan only measures it; Filter also writes it out in
// one canonical form. The zero value is ready; Reset makes it ready again.
//
// Every line of the framing (chunk-size lines, the CRLF after chunk data,
// trailer lines and the final empty line) must end in CRLF: a bare LF or
// CR is an error, since a backend that ends lines only at CRLF would read
// such a body differently (request smuggling; Go's net/http made the same
// change for CVE-2025-22871). Chunk extensions are skipped. Trailer lines
// must look like header lines ("name:" then a value without control
// characters); each chunk-size line and trailer line may take at most
// 4 KiB and all trailers 64 KiB.
type ChunkedScanner struct {
	state   uint8
	digits  int   // hex digits of the chunk size so far
	line    int   // bytes of the current size or trailer line
	size    int64 // the chunk size being read, then the data bytes left
	data    int64 // sum of the chunk sizes seen
	trailer int   // bytes of trailer lines
	err     error

	// Filter's state for the trailer line being read.
	held     [maxHeldName]byte // the name so far, while it may be dropped
	nheld    int
	longName bool // the name outgrew held: it was written out, and is kept
	drop     bool // the line is dropped
}

// Reset makes c ready for a new body.
func (c *ChunkedScanner) Reset() { *c = ChunkedScanner{} }

// Data returns the sum of the chunk sizes read so far, counted as soon as a
// chunk-size line is complete: a caller can enforce a body limit before the
// chunk's data arrives.
func (c *ChunkedScanner) Data() int64 { return c.data }

// Scan consumes the next bytes of the body. It returns how many bytes of p
// belong to the body (len(p) unless the body ended inside p) and whether the
// body is complete: the last chunk and the trailer section with its final
// empty line were seen. A malformed body gives an *Error with Status 400,
// and so do all later calls; after the body is complete, Scan returns 0,
// true, nil. p may be split anywhere.
func (c *ChunkedScanner) Scan(p []byte) (n int, done bool, err error) {
	_, n, done, err = c.scan(nil, p, false)
	return n, done, err
}

// FilterSlack is the most by which Filter's output for one call may exceed
// the bytes it consumed in that call (a size line or a held trailer name
// completed by the call's first bytes).
const FilterSlack = maxHeldName + 24

// Filter is Scan that also appends to dst the body in canonical form:
// each chunk-size line as the size in lowercase hex without leading zeros,
// extensions and whitespace, then CRLF; chunk data as it is; trailer
// fields as sent ("name:value" CRLF) except those a backend must not take
// from a trailer (framing, routing and hop-by-hop fields: Content-Length,
// Transfer-Encoding, Host, Connection, Keep-Alive, Proxy-Connection, TE,
// Trailer, Upgrade),
// which are dropped; and the final CRLF. Its output for one call is at
// most n + FilterSlack bytes, and over a whole body never more than the
// input.
func (c *ChunkedScanner) Filter(dst, p []byte) (out []byte, n int, done bool, err error) {
	return c.scan(dst, p, true)
}

func (c *ChunkedScanner) scan(dst, p []byte, emit bool) ([]byte, int, bool, error) {
	if c.state == csDone {
		return dst, 0, true, nil
	}
	if c.err != nil {
		return dst, 0, false, c.err
	}
	i := 0
	for i < len(p) {
		if c.state == csData {
			k := len(p) - i
			if int64(k) > c.size {
				k = int(c.size)
			}
			if emit {
				dst = append(dst, p[i:i+k]...)
			}
			i += k
			if c.size -= int64(k); c.size == 0 {
				c.state = csDataCR
			}
			continue
		}
		b := p[i]
		i++
		var e *Error
		dst, e = c.step(dst, b, emit)
		if e != nil {
			c.err = e
			return dst, i - 1, false, e
		}
		if c.state == csDone {
			return dst, i, true, nil
		}
	}
	return dst, i, false, nil
}

// step takes one framing byte b (not chunk data).
func (c *ChunkedScanner) step(dst []byte, b byte, emit bool) ([]byte, *Error) {
	switch c.state {
	case csSize:
		if d := unhex(b); d >= 0 {
			c.size = c.size<<4 | int64(d)
			if c.size > maxChunkSize {
				return dst, errChunkTooLarge
			}
			c.digits++
			break
		}
		if c.digits == 0 {
			return dst, errChunkSize
		}
		fallthrough
	case csSizeWS:
		switch b {
		case ' ', '\t':
			c.state = csSizeWS
		case ';':
			c.state = csExt
		case '\r':
			c.state = csSizeLF
		default:
			return dst, errChunkSize
		}
	case csExt:
		switch {
		case b == '\r':
			c.state = csSizeLF
		case b < 0x20 && b != '\t' || b == 0x7f:
			return dst, errChunkExt
		}
	case csSizeLF:
		if b != '\n' {
			return dst, errChunkSize
		}
		dst = c.endSizeLine(dst, emit)
	case csDataCR:
		if b != '\r' {
			return dst, errChunkCRLF
		}
		c.state = csDataLF
	case csDataLF:
		if b != '\n' {
			return dst, errChunkCRLF
		}
		if emit {
			dst = append(dst, "\r\n"...)
		}
		c.nextChunk()
	default:
		return c.stepTrailer(dst, b, emit)
	}
	return dst, c.countLine()
}

// stepTrailer takes one byte of the trailer section.
func (c *ChunkedScanner) stepTrailer(dst []byte, b byte, emit bool) ([]byte, *Error) {
	switch c.state {
	case csTrailerStart:
		switch {
		case b == '\r':
			c.state = csFinalLF
		case tchar[b]:
			c.state = csTrailerName
			c.nheld, c.longName, c.drop = 0, false, false
			dst = c.holdName(dst, b, emit)
		default:
			return dst, errTrailer
		}
	case csTrailerName:
		switch {
		case b == ':':
			c.state = csTrailerValue
			if emit {
				dst = c.endName(dst)
			}
		case !tchar[b]:
			return dst, errTrailer
		default:
			dst = c.holdName(dst, b, emit)
		}
	case csTrailerValue:
		switch {
		case b == '\r':
			c.state = csTrailerLF
		case b < 0x20 && b != '\t' || b == 0x7f:
			return dst, errTrailer
		default:
			if emit && !c.drop {
				dst = append(dst, b)
			}
		}
	case csTrailerLF:
		if b != '\n' {
			return dst, errTrailer
		}
		if emit && !c.drop {
			dst = append(dst, "\r\n"...)
		}
		c.state = csTrailerStart
		c.line = 0
	case csFinalLF:
		if b != '\n' {
			return dst, errTrailer
		}
		if emit {
			dst = append(dst, "\r\n"...)
		}
		c.state = csDone
		return dst, nil
	}
	return dst, c.countLine()
}

// countLine bounds the size and trailer lines. Line ends are not counted:
// a CR either ends the line or is an error.
func (c *ChunkedScanner) countLine() *Error {
	switch c.state {
	case csSize, csSizeWS, csExt:
		if c.line++; c.line > maxChunkLine {
			return errChunkLine
		}
	case csTrailerName, csTrailerValue:
		if c.line++; c.line > maxChunkLine {
			return errChunkLine
		}
		if c.trailer++; c.trailer > maxTrailers {
			return errTrailerLarge
		}
	}
	return nil
}

// holdName keeps a trailer name byte back until the colon, while the name
// is short enough to be one that is dropped.
func (c *ChunkedScanner) holdName(dst []byte, b byte, emit bool) []byte {
	if !emit {
		return dst
	}
	if c.longName {
		return append(dst, b)
	}
	if c.nheld == len(c.held) {
		c.longName = true
		dst = append(dst, c.held[:c.nheld]...)
		return append(dst, b)
	}
	c.held[c.nheld] = b
	c.nheld++
	return dst
}

// endName decides, at a trailer name's colon, whether its line is kept.
func (c *ChunkedScanner) endName(dst []byte) []byte {
	if !c.longName {
		switch classify(c.held[:c.nheld]) {
		case hContentLength, hTransferEncoding, hHost, hConnection, hKeepAlive,
			hProxyConnection, hTE, hTrailer, hUpgrade:
			c.drop = true
			return dst
		}
		dst = append(dst, c.held[:c.nheld]...)
	}
	return append(dst, ':')
}

func (c *ChunkedScanner) endSizeLine(dst []byte, emit bool) []byte {
	c.data += c.size
	c.line = 0
	if emit {
		dst = strconv.AppendInt(dst, c.size, 16)
		dst = append(dst, "\r\n"...)
	}
	if c.size == 0 {
		c.state = csTrailerStart
	} else {
		c.state = csData
	}
	return dst
}

func (c *ChunkedScanner) nextChunk() {
	c.state = csSize
	c.digits = 0
	c.size = 0
	c.line = 0
}

// unhex returns the value of a hex digit, or -1.
func unhex(b byte) int {
	switch {
	case '0' <= b && b <= '9':
		return int(b - '0')
	case 'a' <= b && b <= 'f':
		return int(b-'a') + 10
	case 'A' <= b && b <= 'F':
		return int(b-'A') + 10
	}
	return -1
}
