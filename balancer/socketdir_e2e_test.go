package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SOCKET_DIR names a directory the balancer makes its own private
// procbal-* directory in: SOCKET_DIR's mode and other files are left
// alone, and only the procbal-* directory is removed at exit.
func TestSocketDirLeftAlone(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	notes := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notes, []byte("not the balancer's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b := startBalancer(t, 2, "SOCKET_DIR="+dir)
	checkPrivateDir(t, b, dir)
	wantMode(t, dir, 0o755)
	sigtermAndWait(t, b)
	if data, err := os.ReadFile(notes); err != nil || string(data) != "not the balancer's\n" {
		t.Fatalf("notes.txt after exit: %q %v", data, err)
	}
	wantMode(t, dir, 0o755)
	if left := procbalDirs(t, dir); len(left) > 0 {
		t.Fatalf("left over after exit: %v", left)
	}
}

// Without SOCKET_DIR the private directory goes under $TMPDIR, and
// nothing is left there after exit.
func TestSocketDirDefaultUnderTMPDIR(t *testing.T) {
	t.Parallel()
	tmp := shortDir(t)
	b := startBalancer(t, 1, "MAX_WORKERS=1", "SOCKET_DIR=", "TMPDIR="+tmp)
	checkPrivateDir(t, b, tmp)
	sigtermAndWait(t, b)
	if left := procbalDirs(t, tmp); len(left) > 0 {
		t.Fatalf("left in $TMPDIR after exit: %v", left)
	}
}

// shortDir is a new directory with a short path (unix socket paths are
// limited to about 108 bytes), removed after the test.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// checkPrivateDir checks that every worker's socket is in one new 0700
// procbal-* directory under parent.
func checkPrivateDir(t *testing.T, b *bal, parent string) {
	t.Helper()
	dirs := procbalDirs(t, parent)
	if len(dirs) != 1 {
		t.Fatalf("procbal-* directories under %s: %v, want one", parent, dirs)
	}
	wantMode(t, dirs[0], 0o700)
	for _, w := range b.workers().Workers {
		if filepath.Dir(strings.TrimPrefix(w.Address, "unix:")) != dirs[0] {
			t.Fatalf("worker %d listens on %s, want a socket in %s", w.ID, w.Address, dirs[0])
		}
	}
}

// procbalDirs lists the procbal-* entries of dir; none when dir is gone.
func procbalDirs(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var found []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "procbal-") {
			found = append(found, filepath.Join(dir, e.Name()))
		}
	}
	return found
}

func wantMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != want {
		t.Fatalf("%s: mode %o, want %o", path, got, want)
	}
}

// sigtermAndWait sends SIGTERM and waits for a clean exit.
func sigtermAndWait(t *testing.T, b *bal) {
	t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := b.waitExit(15 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
}
