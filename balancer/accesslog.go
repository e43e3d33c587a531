//go:build linux

package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/procbal/procbal/balancer/proxy"
	"github.com/procbal/procbal/shared/logging"
)

// accessLogFormat is ACCESS_LOG: off, text or json; unset, json when
// LOG_FORMAT=json, else text.
func (c *Config) accessLogFormat() string {
	switch f := strings.ToLower(strings.TrimSpace(c.AccessLog)); f {
	case "":
		if json, _ := logging.ParseFormat(c.LogFormat); json {
			return proxy.AccessLogJSON
		}
		return proxy.AccessLogText
	default:
		return f
	}
}

// checkAccessLog refuses an ACCESS_LOG other than off, text or json.
// ACCESS_LOG=off with ACCESS_LOG_FILE set is no error: off wins, and the
// file is not opened.
func (c *Config) checkAccessLog() error {
	switch c.accessLogFormat() {
	case proxy.AccessLogOff, proxy.AccessLogText, proxy.AccessLogJSON:
		return nil
	}
	return fmt.Errorf("ACCESS_LOG: unknown value %q (want off, text or json)", c.AccessLog)
}

// accessLogOutput returns where the access log goes: ACCESS_LOG_FILE,
// rotated within LOG_MAX_SIZE_MB, LOG_MAX_FILES and LOG_MAX_AGE_DAYS as
// LOG_FILE is (and on SIGUSR1), or stdout without it; the balancer's own
// log is on stderr, so the two streams stay apart. The file is nil
// without ACCESS_LOG_FILE; the writer is nil with ACCESS_LOG=off.
func accessLogOutput(cfg *Config) (io.Writer, *logging.File, error) {
	if cfg.accessLogFormat() == proxy.AccessLogOff {
		return nil, nil, nil
	}
	if cfg.AccessLogFile == "" {
		return os.Stdout, nil, nil
	}
	f, err := logging.OpenFile(logging.FileOptions{
		Path:       cfg.AccessLogFile,
		MaxSizeMB:  cfg.LogMaxSizeMB,
		MaxFiles:   cfg.LogMaxFiles,
		MaxAgeDays: cfg.LogMaxAgeDays,
	})
	if err != nil {
		return nil, nil, err
	}
	return f, f, nil
}
