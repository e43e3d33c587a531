package supervisor

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"github.com/hashicorp/go-hclog"
)

// maxLine bounds one relayed line; the rest of a longer line is dropped.
const maxLine = 16 << 10

// relay re-emits each line a worker writes through its logger: JSON lines
// from hclog workers at their own level with their fields, other lines as
// they are, at info (go-plugin's logStderr).
func relay(r io.ReadCloser, log hclog.Logger, stream string) {
	defer r.Close()
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		truncated := errors.Is(err, bufio.ErrBufferFull)
		if len(line) > 0 {
			emit(log, stream, bytes.TrimRight(line, "\r\n"), truncated)
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
