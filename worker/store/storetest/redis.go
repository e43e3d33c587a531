package storetest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Redis is a throwaway Redis server on 127.0.0.1:Port, without
// persistence. Not safe for concurrent Start and Stop.
type Redis struct {
	server
}

// NewRedis starts a Redis server with its files in a temporary directory.
func NewRedis() (*Redis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not found (make test-deps installs it, as root)")
	}
	c, err := serverUser()
	if err != nil {
		return nil, err
	}
	dir, err := tempDir("redistest", c)
	if err != nil {
		return nil, err
	}
	r := &Redis{server{name: "redis-server", dir: dir, cred: c, sig: syscall.SIGTERM,
		death: syscall.SIGKILL, logf: filepath.Join(dir, "redis.log")}}
	r.argv = func() []string {
		return []string{bin, "--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no",
			"--protected-mode", "no", "--loglevel", "warning"}
	}
	r.ready = r.ping
	for try := 0; ; try++ {
		if r.Port, err = freePort(); err == nil {
			if err = r.start(); err == nil {
				return r, nil
			}
		}
		if try == 2 {
			os.RemoveAll(dir)
			return nil, err
		}
	}
}

func (r *Redis) ping(ctx context.Context) error {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", r.Addr())
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("redis answered %q", line)
	}
	return nil
}

// Addr returns host:port.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// URL returns the server's redis:// URL, database db.
func (r *Redis) URL(db int) string { return fmt.Sprintf("redis://%s/%d", r.Addr(), db) }

// Start starts the server again after Stop, on the same port (empty).
func (r *Redis) Start() error { return r.start() }

// Stop stops the server and waits.
func (r *Redis) Stop() error { return r.stop() }

// Close stops the server and removes its files.
func (r *Redis) Close() {
	r.stop()
	os.RemoveAll(r.dir)
}
