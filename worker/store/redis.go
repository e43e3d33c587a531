package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// DefaultRedisTimeout is RedisOptions.Timeout when zero.
const DefaultRedisTimeout = 800 * time.Millisecond

// sessionPrefix namespaces the worker's keys in a shared Redis.
const sessionPrefix = "procbal:session:"

// RedisOptions configures OpenRedis.
type RedisOptions struct {
	// URL is REDIS_URL: redis://[user:password@]host:port[/db], or rediss://.
	URL string
	// Timeout is the deadline of every command, dialing included. If zero,
	// DefaultRedisTimeout.
	Timeout time.Duration
	// Logger receives go-redis's own lines (at debug). If nil, none.
	Logger hclog.Logger
}

// Redis keeps sessions in Redis, so every worker serves every session.
// Safe for concurrent use.
type Redis struct {
	c       *redis.Client
	timeout time.Duration
}

var _ Sessions = (*Redis)(nil)

// OpenRedis parses o.URL and makes the client. It opens no connection.
func OpenRedis(o RedisOptions) (*Redis, error) {
	opt, err := redis.ParseURL(o.URL)
	if err != nil {
		return nil, errors.New(redactURL(err.Error(), o.URL))
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultRedisTimeout
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = o.Timeout, o.Timeout, o.Timeout
	opt.PoolTimeout = o.Timeout
	opt.ContextTimeoutEnabled = true // the caller's deadline bounds socket waits too
	opt.MaxRetries = 1
	opt.DialerRetries = 1
	opt.DisableIdentity = true // no CLIENT SETINFO on every connect
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	if o.Logger != nil {
		redis.SetLogger(redisLogger{o.Logger})
	}
	return &Redis{c: redis.NewClient(opt), timeout: o.Timeout}, nil
}

// redactURL replaces raw in msg by raw without its user information, so
// that a password never reaches a log (url.Parse's errors quote the URL).
func redactURL(msg, raw string) string {
	i, j := strings.Index(raw, "://"), strings.LastIndex(raw, "@")
	if i < 0 || j < i {
		return msg
	}
	return strings.ReplaceAll(msg, raw, raw[:i+3]+"xxxxx"+raw[j:])
}

// redisLogger sends go-redis's lines (dial failures, pool notices) to
// hclog at debug: the failures they describe reach callers as errors.
type redisLogger struct{ log hclog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	if l.log.IsDebug() {
		l.log.Debug("redis: " + fmt.Sprintf(format, v...))
	}
}

// Close closes the client's connections.
func (r *Redis) Close() error { return r.c.Close() }

// Ping checks that Redis answers within d (at most the command deadline).
func (r *Redis) Ping(ctx context.Context, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, min(d, r.timeout))
	defer cancel()
	if err := r.c.Ping(ctx).Err(); err != nil {
		return unavailable("pinging redis", err)
	}
	return nil
}

// Put implements Sessions.
func (r *Redis) Put(ctx context.Context, id, user string, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.c.Set(ctx, sessionPrefix+id, user, ttl).Err(); err != nil {
		return unavailable("storing a session", err)
	}
	return nil
}

// User implements Sessions.
func (r *Redis) User(ctx context.Context, id string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	user, err := r.c.Get(ctx, sessionPrefix+id).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", unavailable("reading a session", err)
	}
	return user, nil
}

// Delete implements Sessions.
func (r *Redis) Delete(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	n, err := r.c.Del(ctx, sessionPrefix+id).Result()
	if err != nil {
		return unavailable("deleting a session", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// TTL returns the time session id has left (for tests and operators).
func (r *Redis) TTL(ctx context.Context, id string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	d, err := r.c.TTL(ctx, sessionPrefix+id).Result()
	if err != nil {
		return 0, unavailable("reading a session's ttl", err)
	}
	return d, nil
}
