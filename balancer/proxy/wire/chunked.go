package wire

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
	csDataCR                    // after chunk data: CRLF or LF expected
	csDataLF                    // CR seen after chunk data
	csTrailerStart              // at the start of a trailer line or of the final empty line
	csTrailerName               // in a trailer field name
	csTrailerValue              // in a trailer field value
	csTrailerLF                 // CR seen at the end of a trailer line
	csFinalLF                   // CR seen on the final empty line
	csDone
)

// ChunkedScanner follows a chunked body (RFC 9112 7.1), fed in pieces, to
// find where it ends; it does not decode it. The zero value is ready; Reset
// makes it ready again.
//
// Chunk extensions are skipped. Trailer lines must look like header lines
// ("name:" then a value without control characters); each chunk-size line
// and trailer line may take at most 4 KiB and all trailers 64 KiB.
// Lines may end in CRLF or a bare LF.
type ChunkedScanner struct {
	state   uint8
	digits  int   // hex digits of the chunk size so far
	line    int   // bytes of the current size or trailer line
	size    int64 // the chunk size being read, then the data bytes left
	data    int64 // sum of the chunk sizes seen
	trailer int   // bytes of trailer lines
	err     error
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
	if c.state == csDone {
		return 0, true, nil
	}
	if c.err != nil {
		return 0, false, c.err
	}
	i := 0
	for i < len(p) {
		if c.state == csData {
			k := len(p) - i
			if int64(k) > c.size {
				k = int(c.size)
			}
			i += k
			if c.size -= int64(k); c.size == 0 {
				c.state = csDataCR
			}
			continue
		}
		b := p[i]
		i++
		switch c.state {
		case csSize:
			if d := unhex(b); d >= 0 {
				c.size = c.size<<4 | int64(d)
				if c.size > maxChunkSize {
					return c.fail(i-1, errChunkTooLarge)
				}
				c.digits++
				break
			}
			if c.digits == 0 {
				return c.fail(i-1, errChunkSize)
			}
			switch b {
			case ' ', '\t':
				c.state = csSizeWS
			case ';':
				c.state = csExt
			case '\r':
				c.state = csSizeLF
			case '\n':
				c.endSizeLine()
			default:
				return c.fail(i-1, errChunkSize)
			}
		case csSizeWS:
			switch b {
			case ' ', '\t':
			case ';':
				c.state = csExt
			case '\r':
				c.state = csSizeLF
			case '\n':
				c.endSizeLine()
			default:
				return c.fail(i-1, errChunkSize)
			}
		case csExt:
			switch {
			case b == '\r':
				c.state = csSizeLF
			case b == '\n':
				c.endSizeLine()
			case b < 0x20 && b != '\t' || b == 0x7f:
				return c.fail(i-1, errChunkExt)
			}
		case csSizeLF:
			if b != '\n' {
				return c.fail(i-1, errChunkSize)
			}
			c.endSizeLine()
		case csDataCR:
			switch b {
			case '\r':
				c.state = csDataLF
			case '\n':
				c.nextChunk()
			default:
				return c.fail(i-1, errChunkCRLF)
			}
		case csDataLF:
			if b != '\n' {
				return c.fail(i-1, errChunkCRLF)
			}
			c.nextChunk()
		case csTrailerStart:
			switch {
			case b == '\r':
				c.state = csFinalLF
			case b == '\n':
				c.state = csDone
				return i, true, nil
			case tchar[b]:
				c.state = csTrailerName
			default:
				return c.fail(i-1, errTrailer)
			}
		case csTrailerName:
			switch {
			case b == ':':
				c.state = csTrailerValue
			case !tchar[b]:
				return c.fail(i-1, errTrailer)
			}
		case csTrailerValue:
			switch {
			case b == '\r':
				c.state = csTrailerLF
			case b == '\n':
				c.endTrailerLine()
			case b < 0x20 && b != '\t' || b == 0x7f:
				return c.fail(i-1, errTrailer)
			}
		case csTrailerLF:
			if b != '\n' {
				return c.fail(i-1, errTrailer)
			}
			c.endTrailerLine()
		case csFinalLF:
			if b != '\n' {
				return c.fail(i-1, errTrailer)
			}
			c.state = csDone
			return i, true, nil
		}
		// Bound the size and trailer lines. Line ends are not counted: a
		// CR or LF either ends the line or is an error above.
		switch c.state {
		case csSize, csSizeWS, csExt:
			if c.line++; c.line > maxChunkLine {
				return c.fail(i-1, errChunkLine)
			}
		case csTrailerName, csTrailerValue:
			if c.line++; c.line > maxChunkLine {
				return c.fail(i-1, errChunkLine)
			}
			if c.trailer++; c.trailer > maxTrailers {
				return c.fail(i-1, errTrailerLarge)
			}
		}
	}
	return i, false, nil
}

func (c *ChunkedScanner) fail(n int, err *Error) (int, bool, error) {
	c.err = err
	return n, false, err
}

func (c *ChunkedScanner) endSizeLine() {
	c.data += c.size
	c.line = 0
	if c.size == 0 {
		c.state = csTrailerStart
	} else {
		c.state = csData
	}
}

func (c *ChunkedScanner) nextChunk() {
	c.state = csSize
	c.digits = 0
	c.size = 0
	c.line = 0
}

func (c *ChunkedScanner) endTrailerLine() {
	c.state = csTrailerStart
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
