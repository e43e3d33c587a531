//go:build linux

package main

import (
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/procbal/procbal/shared/logging"
)

// logOutput returns where the balancer logs: stderr, and LOG_FILE as well
// when it is set, rotated within LOG_MAX_SIZE_MB, LOG_MAX_FILES and
// LOG_MAX_AGE_DAYS. The file is nil without LOG_FILE.
func logOutput(cfg *Config) (io.Writer, *logging.File, error) {
	if cfg.LogFile == "" {
		return os.Stderr, nil, nil
	}
	f, err := logging.OpenFile(logging.FileOptions{
		Path:       cfg.LogFile,
		MaxSizeMB:  cfg.LogMaxSizeMB,
		MaxFiles:   cfg.LogMaxFiles,
		MaxAgeDays: cfg.LogMaxAgeDays,
	})
	if err != nil {
		return nil, nil, err
	}
	return io.MultiWriter(os.Stderr, f), f, nil
}

// rotatable is a log file that SIGUSR1 rotates: f (nil when its setting
// is unset), its path, and the setting that names it.
type rotatable struct {
	f       *logging.File
	path    string
	setting string
}

// rotateOnSIGUSR1 rotates LOG_FILE and ACCESS_LOG_FILE on every SIGUSR1,
// for logrotate: after it has moved a file away, the signal opens a new
// one at its path; with the file in place, it is rotated as a size
// rotation would. The signal has its own channel rather than serve's, so
// it works before the first worker is ready and during shutdown too, and
// is never taken for a stop. Without either file it is logged and
// ignored: SIGUSR1's default action would kill the balancer.
func rotateOnSIGUSR1(log hclog.Logger, files ...rotatable) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1)
	go func() {
		for range sigs {
			rotated := 0
			for _, rf := range files {
				if rf.f == nil {
					continue
				}
				rotated++
				if err := rf.f.Rotate(); err != nil {
					log.Error("rotating a log file failed", "setting", rf.setting, "path", rf.path, "error", err)
					continue
				}
				log.Info("log file rotated", "setting", rf.setting, "path", rf.path)
			}
			if rotated == 0 {
				log.Info("SIGUSR1 received, no LOG_FILE to rotate (nor ACCESS_LOG_FILE)")
			}
		}
	}()
}
