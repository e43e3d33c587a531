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

// rotateOnSIGUSR1 rotates LOG_FILE on every SIGUSR1, for logrotate: after
// it has moved the file away, the signal opens a new one at LOG_FILE; with
// the file in place, it is rotated as a size rotation would. The signal
// has its own channel rather than serve's, so it works before the first
// worker is ready and during shutdown too, and is never taken for a stop.
// Without LOG_FILE it is logged and ignored: SIGUSR1's default action
// would kill the balancer.
func rotateOnSIGUSR1(f *logging.File, path string, log hclog.Logger) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1)
	go func() {
		for range sigs {
			if f == nil {
				log.Info("SIGUSR1 received, no LOG_FILE to rotate")
				continue
			}
			if err := f.Rotate(); err != nil {
				log.Error("rotating the log file failed", "path", path, "error", err)
				continue
			}
			log.Info("log file rotated", "path", path)
		}
	}()
}
