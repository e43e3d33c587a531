// Package storetest starts throwaway PostgreSQL and Redis servers for
// tests: real servers on free loopback ports, with their files in a
// temporary directory that Close removes.
//
// PostgreSQL is initialized with initdb and run as an unprivileged user
// (postgres refuses root; when the tests run as root, as in CI, the
// servers run as "nobody", or a "procbal-test" user created with useradd
// when there is no nobody). The postmaster is run directly rather than
// daemonized by pg_ctl, with a parent-death signal, so that a test binary
// that is killed (a -timeout panic) takes its servers with it instead of
// leaving them running.
//
// A test binary shares one PostgreSQL and one Redis (Shared*, Database),
// started on first use and stopped by CloseShared, which TestMain calls
// after m.Run. Tests that stop a server start their own (NewPostgres,
// NewRedis). A server that cannot be started fails the test: it never
// skips.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// startTimeout bounds how long a server may take to accept connections.
const startTimeout = 30 * time.Second

// server is a child process serving on a loopback port.
type server struct {
	name   string
	Port   int
	dir    string
	cred   *syscall.Credential
	argv   func() []string
	sig    syscall.Signal // asks it to stop
	death  syscall.Signal // sent by the kernel if the test binary dies
	logf   string
	cmd    *exec.Cmd
	exited chan struct{}
	ready  func(context.Context) error
}

// start runs the server and waits until ready answers.
func (s *server) start() error {
	if s.cmd != nil {
		return fmt.Errorf("%s: already running", s.name)
	}
	argv := s.argv()
	logf, err := os.OpenFile(s.logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: s.death, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.name, err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(s.exited)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		err := s.ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			s.cmd = nil
			return fmt.Errorf("%s exited at start: %v\n%s", s.name, cmd.ProcessState, s.logTail())
		case <-ctx.Done():
			s.stop()
			return fmt.Errorf("%s not ready after %s: %v\n%s", s.name, startTimeout, err, s.logTail())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop asks the server to stop and waits for it, killing it after 10 s.
func (s *server) stop() error {
	if s.cmd == nil {
		return nil
	}
	s.cmd.Process.Signal(s.sig)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
	s.cmd = nil
	return nil
}

func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logf)
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(b)
}

// freePort returns a loopback port nothing listens on now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// tempDir makes a temporary directory the server's user owns.
func tempDir(prefix string, cred *syscall.Credential) (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

var (
	credOnce sync.Once
	cred     *syscall.Credential
	credErr  error
)

// serverUser returns the credential servers run under: nil when the tests
// do not run as root, else nobody's (or a user made for the purpose).
func serverUser() (*syscall.Credential, error) {
	credOnce.Do(func() {
		if os.Geteuid() != 0 {
			return
		}
		u, err := user.Lookup("nobody")
		if err != nil {
			u, err = user.Lookup("procbal-test")
		}
		if err != nil {
			out, uerr := exec.Command("useradd", "--system", "--no-create-home",
				"--shell", "/usr/sbin/nologin", "procbal-test").CombinedOutput()
			if uerr != nil {
				credErr = fmt.Errorf("no unprivileged user to run PostgreSQL as, and useradd failed: %v: %s", uerr, out)
				return
			}
			u, err = user.Lookup("procbal-test")
		}
		if err != nil {
			credErr = err
			return
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	})
	return cred, credErr
}

// pgBinDir finds PostgreSQL's server binaries: $PG_BIN, else the newest
// /usr/lib/postgresql/*/bin (15 here), else initdb's directory on $PATH.
func pgBinDir() (string, error) {
	if d := os.Getenv("PG_BIN"); d != "" {
		return d, nil
	}
	if _, err := os.Stat("/usr/lib/postgresql/15/bin/initdb"); err == nil {
		return "/usr/lib/postgresql/15/bin", nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL server binaries not found (install postgresql-15, or set PG_BIN)")
}

func versionOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// run runs a command as the server user and returns its error with output.
func run(c *syscall.Credential, dir string, argv ...string) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v\n%s", filepath.Base(argv[0]), err, out.String())
	}
	return nil
}
