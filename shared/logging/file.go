package logging

import (
	"gopkg.in/natefinch/lumberjack.v2"
)

// Defaults of FileOptions, the balancer's LOG_MAX_SIZE_MB and LOG_MAX_FILES.
const (
	DefaultMaxSizeMB = 100
	DefaultMaxFiles  = 5
)

// FileOptions bounds a log file on disk.
type FileOptions struct {
	// Path is the file's path. Its directory is created when missing.
	Path string
	// MaxSizeMB is the size, in MiB, that a write may not take the file
	// past: the file is rotated first. If zero, DefaultMaxSizeMB.
	MaxSizeMB int
	// MaxFiles is the number of rotated files kept; older ones are
	// removed. If zero, DefaultMaxFiles.
	MaxFiles int
	// MaxAgeDays removes rotated files older than this many days. If zero,
	// no file is removed for its age.
	MaxAgeDays int
}

// File is a log file that lumberjack rotates: when a write would take it
// past MaxSizeMB, it is renamed name-<UTC time>.ext beside itself and a new
// file is opened at Path; rotated files beyond MaxFiles or MaxAgeDays are
// removed in the background. Safe for concurrent use.
type File struct {
	lj *lumberjack.Logger
}

// OpenFile opens (or creates) the log file now, so that a path that cannot
// be written is refused at start rather than at the first line.
func OpenFile(o FileOptions) (*File, error) {
	if o.MaxSizeMB <= 0 {
		o.MaxSizeMB = DefaultMaxSizeMB
	}
	if o.MaxFiles <= 0 {
		o.MaxFiles = DefaultMaxFiles
	}
	f := &File{lj: &lumberjack.Logger{
		Filename:   o.Path,
		MaxSize:    o.MaxSizeMB,
		MaxBackups: o.MaxFiles,
		MaxAge:     max(o.MaxAgeDays, 0),
	}}
	// An empty write opens the file, as the first line would.
	if _, err := f.lj.Write(nil); err != nil {
		return nil, err
	}
	return f, nil
}

// Write implements io.Writer. A single write larger than MaxSizeMB fails.
func (f *File) Write(p []byte) (int, error) { return f.lj.Write(p) }

// Rotate starts a new file at Path: the current one, if it is still there,
// is renamed as a size rotation would; if something else moved it away
// (logrotate without copytruncate), a new file is simply opened, so one
// signal serves both. Lines written meanwhile wait; none is lost.
func (f *File) Rotate() error { return f.lj.Rotate() }

// Close closes the file. A nil File is a no-op, so callers may defer it
// unconditionally.
func (f *File) Close() error {
	if f == nil {
		return nil
	}
	return f.lj.Close()
}
