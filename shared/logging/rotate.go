package logging

import (
	"fmt"
	"os"
	"sync"
)

// Rotating is a log file that is renamed to name.1 (name.1 to name.2, and
// so on up to Keep) when a write would take it past MaxBytes. Safe for
// concurrent use.
type Rotating struct {
	// Name is the file's path.
	Name string
	// MaxBytes is the size that triggers rotation. If zero, 10 MiB.
	MaxBytes int64
	// Keep is the number of rotated files kept. If zero, 3.
	Keep int

	mu   sync.Mutex
	f    *os.File
	size int64
}

// OpenRotating opens (or creates) name for appending.
func OpenRotating(name string) (*Rotating, error) {
	r := &Rotating{Name: name}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Rotating) open() error {
	f, err := os.OpenFile(r.Name, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	r.f, r.size = f, st.Size()
	return nil
}

// Write implements io.Writer.
func (r *Rotating) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	max := r.MaxBytes
	if max <= 0 {
		max = 10 << 20
	}
	if r.size > 0 && r.size+int64(len(p)) > max {
		if err := r.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	return n, err
}

func (r *Rotating) rotate() error {
	keep := r.Keep
	if keep <= 0 {
		keep = 3
	}
	r.f.Close()
	for i := keep - 1; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", r.Name, i), fmt.Sprintf("%s.%d", r.Name, i+1))
	}
	if err := os.Rename(r.Name, r.Name+".1"); err != nil {
		return err
	}
	return r.open()
}

// Close closes the file.
func (r *Rotating) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Close()
}
