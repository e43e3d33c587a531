// Package logging builds the root hclog logger of either binary from
// LOG_LEVEL and LOG_FORMAT, and the balancer's LOG_FILE, rotated by size
// and on demand (lumberjack).
package logging

import (
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// Options selects the level, the format and the output of the root logger.
type Options struct {
	// Name is the root logger's name.
	Name string
	// Level is trace, debug, info, warn or error. If empty, info.
	Level string
	// Format is text or json. If empty, text.
	Format string
	// Output receives the lines. If nil, stderr.
	Output io.Writer
}

// ParseLevel checks a LOG_LEVEL value.
func ParseLevel(s string) (hclog.Level, error) {
	if s == "" {
		return hclog.Info, nil
	}
	l := hclog.LevelFromString(s)
	if l == hclog.NoLevel {
		return l, fmt.Errorf("unknown level %q (want trace, debug, info, warn or error)", s)
	}
	return l, nil
}

// ParseFormat checks a LOG_FORMAT value and reports whether it asks for JSON.
func ParseFormat(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "", "text":
		return false, nil
	case "json":
		return true, nil
	}
	return false, fmt.Errorf("unknown format %q (want text or json)", s)
}

// New returns the root logger. It fails on an unknown level or format.
func New(o Options) (hclog.Logger, error) {
	level, err := ParseLevel(o.Level)
	if err != nil {
		return nil, fmt.Errorf("LOG_LEVEL: %w", err)
	}
	json, err := ParseFormat(o.Format)
	if err != nil {
		return nil, fmt.Errorf("LOG_FORMAT: %w", err)
	}
	l := hclog.New(&hclog.LoggerOptions{
		Name:       o.Name,
		Level:      level,
		JSONFormat: json,
		Output:     o.Output,
	})
	if json {
		l = withMillis(l) // durations in milliseconds (millis.go)
	}
	return l, nil
}
