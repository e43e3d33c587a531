package main

import (
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/caarlos0/env/v11"
)

// configError is a bad setting: its message names the variable, and the
// worker exits 2 on it, as the balancer does.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

func badSetting(format string, args ...any) error {
	return &configError{msg: fmt.Sprintf(format, args...)}
}

// loadConfig reads and checks the environment. Its error is one line
// naming the variable.
func loadConfig() (Config, error) {
	cfg, err := env.ParseAs[Config]()
	if err != nil {
		return cfg, envError(err)
	}
	return cfg, cfg.check()
}

// envError turns env's first parse error into "VARIABLE: problem".
func envError(err error) error {
	var agg env.AggregateError
	if errors.As(err, &agg) && len(agg.Errors) > 0 {
		err = agg.Errors[0]
	}
	var pe env.ParseError
	if errors.As(err, &pe) {
		if f, ok := reflect.TypeFor[Config]().FieldByName(pe.Name); ok {
			return badSetting("%s: %v", f.Tag.Get("env"), pe.Err)
		}
	}
	return badSetting("%v", err)
}

func (c *Config) check() error {
	switch {
	case c.DBPoolMax < 1:
		return badSetting("DB_POOL_MAX: must be at least 1, got %d", c.DBPoolMax)
	case c.DBQueryTimeout <= 0:
		return badSetting("DB_QUERY_TIMEOUT: must be positive, got %s", c.DBQueryTimeout)
	case c.RedisTimeout <= 0:
		return badSetting("REDIS_TIMEOUT: must be positive, got %s", c.RedisTimeout)
	case c.SessionTTL < time.Second:
		return badSetting("SESSION_TTL: must be at least 1s, got %s", c.SessionTTL)
	}
	return nil
}
