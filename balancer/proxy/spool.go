//go:build linux

package proxy

import (
	"fmt"
	"os"
)

// spool holds bytes in order for one direction of one connection, as
// nginx's request and response buffering do: the first ones in memory, in
// the loop's buffers, up to a bound, the rest in a temporary file that is
// unlinked as soon as it is created (nothing is left behind, even after a
// crash). Bytes are read from the front; rewind makes them readable again
// from the start, so that a buffered request can be replayed on another
// upstream. A spool is touched only by its loop's goroutine.
type spool struct {
	mem   [][]byte // loop buffers; every one but the last is full (bufSize)
	memN  int64    // bytes in mem
	file  *os.File // the bytes after the memory part; nil until needed
	fileN int64    // bytes in the file
	rd    int64    // read position, over mem then the file
}

// size returns the bytes written since the spool was last emptied.
func (s *spool) size() int64 { return s.memN + s.fileN }

// unread returns the bytes written and not yet read.
func (s *spool) unread() int64 { return s.size() - s.rd }

// write appends p: to memory while the memory part is below memMax and no
// byte went to the file yet, then to a temporary file created in dir.
func (s *spool) write(l *loop, p []byte, memMax int64, dir string) error {
	for len(p) > 0 && s.fileN == 0 && s.memN < memMax {
		n := len(s.mem)
		if n == 0 || len(s.mem[n-1]) == bufSize {
			s.mem = append(s.mem, l.getBuf())
			n++
		}
		last := s.mem[n-1]
		k := min(len(p), bufSize-len(last))
		s.mem[n-1] = append(last, p[:k]...)
		s.memN += int64(k)
		p = p[k:]
	}
	if len(p) == 0 {
		return nil
	}
	if s.file == nil {
		f, err := os.CreateTemp(dir, "procbal-body-")
		if err != nil {
			return fmt.Errorf("buffering a body: %w", err)
		}
		_ = os.Remove(f.Name())
		s.file = f
	}
	if _, err := s.file.WriteAt(p, s.fileN); err != nil {
		return fmt.Errorf("buffering a body: %w", err)
	}
	s.fileN += int64(len(p))
	return nil
}

// read appends to dst, within its capacity, the next unread bytes, and
// marks them read.
func (s *spool) read(dst []byte) ([]byte, error) {
	room := int64(cap(dst) - len(dst))
	if room <= 0 || s.unread() == 0 {
		return dst, nil
	}
	if s.rd < s.memN {
		b := s.mem[s.rd/bufSize][s.rd%bufSize:]
		k := min(int64(len(b)), room)
		s.rd += k
		return append(dst, b[:k]...), nil
	}
	k := min(s.unread(), room)
	n, err := s.file.ReadAt(dst[len(dst):len(dst)+int(k)], s.rd-s.memN)
	s.rd += int64(n)
	if err != nil && int64(n) < k {
		return dst[:len(dst)+n], fmt.Errorf("reading a buffered body: %w", err)
	}
	return dst[:len(dst)+n], nil
}

// rewind makes every byte readable again.
func (s *spool) rewind() { s.rd = 0 }

// reset empties the spool: its buffers go back to the loop and its file is
// closed, which frees its disk space.
func (s *spool) reset(l *loop) {
	for i, b := range s.mem {
		l.putBuf(b[:0])
		s.mem[i] = nil
	}
	s.mem = s.mem[:0]
	if s.file != nil {
		_ = s.file.Close()
	}
	*s = spool{mem: s.mem}
}
