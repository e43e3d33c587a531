package supervisor

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// maxLine bounds one relayed line; the rest of a longer line is dropped.
const maxLine = 16 << 10

// maxShown bounds the last output line kept for /admin/workers.
const maxShown = 512

// relayWait bounds how long a reaped worker's exit waits for the relays to
// reach the end of its output: a helper it left running may hold the
// pipes open.
const relayWait = 200 * time.Millisecond

// lastLine holds the latest line a process wrote; safe for concurrent use.
type lastLine struct{ p atomic.Pointer[string] }

func (l *lastLine) set(line []byte) {
	s := string(line[:min(len(line), maxShown)])
	l.p.Store(&s)
}

// String returns the line, empty before the first.
func (l *lastLine) String() string {
	if s := l.p.Load(); s != nil {
		return *s
	}
	return ""
}

// relayOutput relays the process's stdout and stderr and returns a
// channel closed once both have ended.
func relayOutput(p *proc, stdout, stderr *os.File) <-chan struct{} {
	var wg sync.WaitGroup
	wg.Add(2)
	relayTo := func(r *os.File, stream string, last *lastLine) {
		defer wg.Done()
		relay(r, p.log, stream, last)
	}
	go relayTo(stdout, "stdout", &p.stdout)
	go relayTo(stderr, "stderr", &p.stderr)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	return done
}

// wait waits for the process to exit and for its last lines, then hands
// the exit to the loop (reap), as fasthttp prefork's children do. The loop
// returns only once every child is reaped, so the send always lands.
func (s *Supervisor) wait(p *proc, relayed <-chan struct{}) {
	err := p.cmd.Wait()
	select {
	case <-relayed:
	case <-time.After(relayWait):
	}
	s.exits <- exit{slot: p.slot.id, pid: p.pid, err: err}
}

// relay re-emits each line a worker writes through its logger: JSON lines
// from hclog workers at their own level with their fields, other lines as
// they are, at info (go-plugin's logStderr). The last line not empty goes
// to last, when not nil.
func relay(r io.ReadCloser, log hclog.Logger, stream string, last *lastLine) {
	defer r.Close()
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		truncated := errors.Is(err, bufio.ErrBufferFull)
		if line = bytes.TrimRight(line, "\r\n"); len(line) > 0 {
			emit(log, stream, line, truncated)
			if last != nil {
				last.set(line)
			}
		}
		if truncated {
			skipRest(br)
			continue
		}
		if err != nil {
			return
		}
	}
}

// skipRest drops the remainder of an over-long line.
func skipRest(br *bufio.Reader) {
	for {
		_, err := br.ReadSlice('\n')
		if !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

func emit(log hclog.Logger, stream string, line []byte, truncated bool) {
	if len(line) == 0 {
		return
	}
	if level, msg, args, ok := parseJSONLine(line); ok {
		if truncated {
			args = append(args, "truncated", true)
		}
		log.Log(level, msg, args...)
		return
	}
	args := []any{"stream", stream}
	if truncated {
		args = append(args, "truncated", true)
	}
	log.Info(string(line), args...)
}

// parseJSONLine reads an hclog JSON line: @level, @message and the fields.
func parseJSONLine(line []byte) (hclog.Level, string, []any, bool) {
	if len(line) == 0 || line[0] != '{' {
		return 0, "", nil, false
	}
	var m map[string]any
	if json.Unmarshal(line, &m) != nil {
		return 0, "", nil, false
	}
	msg, _ := m["@message"].(string)
	lvl, _ := m["@level"].(string)
	level := hclog.LevelFromString(lvl)
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	var args []any
	for k, v := range m {
		if k == "@message" || k == "@level" || k == "@timestamp" || k == "@module" {
			continue
		}
		args = append(args, k, v)
	}
	return level, msg, args, true
}
