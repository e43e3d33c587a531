package main

import (
	"context"

	"github.com/hashicorp/go-hclog"

	"github.com/procbal/procbal/worker/store"
)

// deps are the worker's servers; nil when not configured.
type deps struct {
	db    *store.Postgres
	redis *store.Redis
}

// openDeps makes the PostgreSQL pool and migrates the schema (before the
// worker listens, so it is healthy only with its schema in place; when
// PostgreSQL is down it serves anyway, item routes answering 503, and keeps
// retrying until ctx ends), and makes the Redis client. A URL that does not
// parse is a bad setting.
func openDeps(ctx context.Context, cfg Config, log hclog.Logger) (*deps, error) {
	d := &deps{}
	if cfg.DatabaseURL != "" {
		db, err := store.OpenPostgres(store.PostgresOptions{URL: cfg.DatabaseURL, MaxConns: cfg.DBPoolMax,
			Timeout: cfg.DBQueryTimeout, Logger: log.Named("postgres")})
		if err != nil {
			return nil, badSetting("DATABASE_URL: %v", err)
		}
		d.db = db
		if _, err := db.Migrate(ctx); err != nil {
			log.Error("migrating the schema failed; item routes answer 503 until a retry succeeds", "error", err)
			go db.RetryMigrate(ctx)
		}
		log.Info("postgres configured", "pool_max", cfg.DBPoolMax, "query_timeout", cfg.DBQueryTimeout.String())
	}
	if cfg.RedisURL == "" {
		log.Warn("REDIS_URL is not set: sessions are kept in this worker's memory and not shared between workers")
		return d, nil
	}
	rd, err := store.OpenRedis(store.RedisOptions{URL: cfg.RedisURL, Timeout: cfg.RedisTimeout, Logger: log.Named("redis")})
	if err != nil {
		d.close()
		return nil, badSetting("REDIS_URL: %v", err)
	}
	d.redis = rd
	return d, nil
}

func (d *deps) close() {
	if d.db != nil {
		d.db.Close()
	}
	if d.redis != nil {
		d.redis.Close()
	}
}
