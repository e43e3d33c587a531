package logging

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// logFiles lists dir's files once the background removal of old rotated
// files has settled on at most want of them.
func logFiles(t *testing.T, dir string, want int) []string {
	t.Helper()
	var names []string
	for deadline := time.Now().Add(5 * time.Second); ; {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		names = names[:0]
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if len(names) <= want || time.Now().After(deadline) {
			return names
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Issue 12: LOG_FILE stays within LOG_MAX_SIZE_MB per file and
// LOG_MAX_FILES rotated files, each file holding whole lines, the newest
// lines kept in order.
func TestFileRotatesBySizeAndKeepsBoundedFiles(t *testing.T) {
	dir := t.TempDir()
	f, err := OpenFile(FileOptions{Path: filepath.Join(dir, "b.log"), MaxSizeMB: 1, MaxFiles: 2})
	if err != nil {
		t.Fatal(err)
	}
	const lineLen, lines = 64 << 10, 60 // 3.75 MiB: four rotations
	for i := range lines {
		line := fmt.Sprintf("%06d ", i) + strings.Repeat("x", lineLen-8) + "\n"
		if _, err := f.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
		// Rotated names carry the time to the millisecond: two rotations
		// within one would share a name, which no real log rate reaches.
		time.Sleep(time.Millisecond)
	}
	f.Close()
	names := logFiles(t, dir, 3)
	if len(names) != 3 || !slices.Contains(names, "b.log") {
		t.Fatalf("files %v, want b.log and 2 rotated ones", names)
	}
	var seq []int
	for _, name := range names { // rotated names sort by time, b.log last
		b := read(t, filepath.Join(dir, name))
		if len(b) > 1<<20 || len(b)%lineLen != 0 {
			t.Fatalf("%s holds %d bytes, want whole lines within 1 MiB", name, len(b))
		}
		for l := range strings.Lines(b) {
			var n int
			fmt.Sscanf(l, "%d", &n)
			seq = append(seq, n)
		}
	}
	if seq[len(seq)-1] != lines-1 {
		t.Fatalf("last line kept is %d, want %d", seq[len(seq)-1], lines-1)
	}
	for i := 1; i < len(seq); i++ {
		if seq[i] != seq[i-1]+1 {
			t.Fatalf("lines kept out of order or with a gap: %v", seq)
		}
	}
}

// Issue 12: SIGUSR1 after logrotate moved the file opens a new one at the
// path; the moved file keeps what was written before, and is not ours to
// remove.
func TestFileRotateReopensAfterLogrotate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "b.log")
	f, err := OpenFile(FileOptions{Path: path, MaxFiles: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write([]byte("before\n"))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("still the old file\n"))
	if err := f.Rotate(); err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("after\n"))
	if got := read(t, path); got != "after\n" {
		t.Fatalf("b.log = %q, want the line written after the rotation", got)
	}
	if got := read(t, path+".1"); got != "before\nstill the old file\n" {
		t.Fatalf("b.log.1 = %q", got)
	}
	if names := logFiles(t, dir, 2); len(names) != 2 {
		t.Fatalf("files %v", names)
	}
}

// Issue 12: SIGUSR1 with the file in place rotates it as a size rotation
// would.
func TestFileRotateRenamesInPlace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "b.log")
	f, err := OpenFile(FileOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write([]byte("one\n"))
	if err := f.Rotate(); err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("two\n"))
	rotated, _ := filepath.Glob(filepath.Join(dir, "b-*.log"))
	if len(rotated) != 1 || read(t, rotated[0]) != "one\n" || read(t, path) != "two\n" {
		t.Fatalf("rotated %v, b.log %q", rotated, read(t, path))
	}
}

// Issue 12: LOG_MAX_AGE_DAYS removes rotated files older than that.
func TestFileRemovesOldRotatedFiles(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "b-2001-02-03T04-05-06.000.log")
	if err := os.WriteFile(old, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(FileOptions{Path: filepath.Join(dir, "b.log"), MaxAgeDays: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write([]byte("new\n"))
	f.Rotate()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(old); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is older than a day and still there", old)
		}
	}
}

// A path that cannot be written is refused when the file is opened, not
// at the first line.
func TestOpenFileRefusesUnwritablePath(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o600)
	if _, err := OpenFile(FileOptions{Path: filepath.Join(notDir, "b.log")}); err == nil {
		t.Fatal("a path under a regular file was accepted")
	}
	var nilFile *File
	if err := nilFile.Close(); err != nil {
		t.Fatal(err)
	}
}
