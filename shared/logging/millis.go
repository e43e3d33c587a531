package logging

import (
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// millisLogger gives durations in milliseconds in JSON logs: hclog would
// write a time.Duration as an integer of nanoseconds, which no reader
// takes for what it is. Each duration value becomes a number of
// milliseconds (three decimals) under its key with "_ms" appended, so
// "waited", 1500*time.Millisecond is "waited_ms":1500. Text logs keep
// Go's form (waited=1.5s), which people read as it is.
type millisLogger struct {
	hclog.Logger
}

// withMillis wraps l; only JSON loggers need it.
func withMillis(l hclog.Logger) hclog.Logger { return millisLogger{l} }

// millis rewrites the duration pairs of args, a key-value list; it
// allocates only when there is one to rewrite.
func millis(args []any) []any {
	var out []any
	for i := 0; i+1 < len(args); i += 2 {
		d, ok := args[i+1].(time.Duration)
		if !ok {
			continue
		}
		if out == nil {
			out = append([]any(nil), args...)
		}
		if k, isStr := args[i].(string); isStr && !strings.HasSuffix(k, "_ms") {
			out[i] = k + "_ms"
		}
		out[i+1] = float64(d.Microseconds()) / 1000
	}
	if out == nil {
		return args
	}
	return out
}

func (l millisLogger) Log(level hclog.Level, msg string, args ...any) {
	l.Logger.Log(level, msg, millis(args)...)
}
func (l millisLogger) Trace(msg string, args ...any) { l.Logger.Trace(msg, millis(args)...) }
func (l millisLogger) Debug(msg string, args ...any) { l.Logger.Debug(msg, millis(args)...) }
func (l millisLogger) Info(msg string, args ...any)  { l.Logger.Info(msg, millis(args)...) }
func (l millisLogger) Warn(msg string, args ...any)  { l.Logger.Warn(msg, millis(args)...) }
func (l millisLogger) Error(msg string, args ...any) { l.Logger.Error(msg, millis(args)...) }

func (l millisLogger) With(args ...any) hclog.Logger {
	return millisLogger{l.Logger.With(millis(args)...)}
}
func (l millisLogger) Named(name string) hclog.Logger { return millisLogger{l.Logger.Named(name)} }
func (l millisLogger) ResetNamed(name string) hclog.Logger {
	return millisLogger{l.Logger.ResetNamed(name)}
}
