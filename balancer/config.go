package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/caarlos0/env/v11"

	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/balancer/proxy"
	"github.com/procbal/procbal/shared/logging"
)

// Config is the balancer's environment (see the contract's settings table).
type Config struct {
	ListenAddr      string        `env:"LISTEN_ADDR" envDefault:":3001"`
	AdminAddr       string        `env:"ADMIN_ADDR" envDefault:"127.0.0.1:3002"`
	AdminToken      string        `env:"ADMIN_TOKEN"`
	ClusterMode     bool          `env:"CLUSTER_MODE" envDefault:"true"`
	MaxWorkers      *int          `env:"MAX_WORKERS"`
	WorkerLimit     int           `env:"WORKER_LIMIT" envDefault:"64"`
	Strategy        string        `env:"BALANCE_STRATEGY" envDefault:"round_robin"`
	WorkerCmd       string        `env:"WORKER_CMD"`
	WorkerArgs      []string      `env:"WORKER_ARGS" envSeparator:" "`
	WorkerEnvDeny   []string      `env:"WORKER_ENV_DENY" envSeparator:","`
	WorkerStartTime time.Duration `env:"WORKER_START_TIMEOUT" envDefault:"30s"`
	HealthPath      string        `env:"HEALTH_PATH" envDefault:"/healthz"`
	HealthInterval  time.Duration `env:"HEALTH_INTERVAL" envDefault:"2s"`
	HealthTimeout   time.Duration `env:"HEALTH_TIMEOUT" envDefault:"1s"`
	Unhealthy       int           `env:"UNHEALTHY_THRESHOLD" envDefault:"3"`
	Healthy         int           `env:"HEALTHY_THRESHOLD" envDefault:"2"`
	DrainTimeout    time.Duration `env:"DRAIN_TIMEOUT" envDefault:"30s"`
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"30s"`
	MemoryMonitor   bool          `env:"ENABLE_MEMORY_MONITORING" envDefault:"false"`
	MemoryThreshold int           `env:"MEMORY_THRESHOLD_MB" envDefault:"512"`
	MemoryInterval  time.Duration `env:"MEMORY_REPORT_INTERVAL" envDefault:"5s"`
	MaxMemoryMB     int           `env:"MAX_MEMORY_RESTART_MB" envDefault:"0"`
	MemoryLimitMB   int           `env:"WORKER_MEMORY_LIMIT_MB" envDefault:"0"`
	MaxRequests     int           `env:"MAX_REQUESTS" envDefault:"0"`
	Upstreams       []string      `env:"UPSTREAMS"`
	DNSRefresh      time.Duration `env:"DNS_REFRESH" envDefault:"10s"`
	DNSServer       []string      `env:"DNS_SERVER" envSeparator:","` // remotes.go: replaces resolv.conf's nameservers
	UpstreamsFile   string        `env:"UPSTREAMS_FILE"`
	DBMaxConns      int           `env:"DB_MAX_CONNS" envDefault:"20"`
	DatabaseURL     string        `env:"DATABASE_URL"` // the workers' (inherited); only whether it is set matters here
	SocketDir       string        `env:"SOCKET_DIR"`
	MaxHeaderBytes  ByteSize      `env:"MAX_HEADER_BYTES" envDefault:"64KiB"`
	MaxBodyBytes    ByteSize      `env:"MAX_BODY_BYTES" envDefault:"32MiB"`
	ReadTimeout     time.Duration `env:"READ_HEADER_TIMEOUT" envDefault:"10s"`
	IdleTimeout     time.Duration `env:"IDLE_TIMEOUT" envDefault:"60s"`
	UpstreamTimeout time.Duration `env:"UPSTREAM_TIMEOUT" envDefault:"60s"`
	ReqBuffering    bool          `env:"REQUEST_BUFFERING" envDefault:"true"`
	BodyTimeout     time.Duration `env:"CLIENT_BODY_TIMEOUT" envDefault:"120s"`
	ResponseBuffer  OptionalSize  `env:"RESPONSE_BUFFER" envDefault:"1GiB"`
	BufferMemory    ByteSize      `env:"BUFFER_MEMORY" envDefault:"64KiB"`
	MaxTunnels      int           `env:"MAX_TUNNELS" envDefault:"10000"`
	TunnelIdle      time.Duration `env:"TUNNEL_IDLE_TIMEOUT" envDefault:"1h"`
	Sticky          string        `env:"STICKY" envDefault:"off"`
	StickySecret    string        `env:"STICKY_SECRET"`
	StickyCookie    string        `env:"STICKY_COOKIE" envDefault:"procbal_sticky"`
	ProxyLoops      int           `env:"PROXY_LOOPS" envDefault:"0"`
	LogLevel        string        `env:"LOG_LEVEL" envDefault:"info"`
	LogFormat       string        `env:"LOG_FORMAT" envDefault:"text"`
	LogFile         string        `env:"LOG_FILE"`
	LogMaxSizeMB    int           `env:"LOG_MAX_SIZE_MB" envDefault:"100"`
	LogMaxFiles     int           `env:"LOG_MAX_FILES" envDefault:"5"`
	LogMaxAgeDays   int           `env:"LOG_MAX_AGE_DAYS" envDefault:"0"`
	AccessLog       string        `env:"ACCESS_LOG"` // off, text or json; unset: json with LOG_FORMAT=json, else text
	AccessLogFile   string        `env:"ACCESS_LOG_FILE"`

	// accessOut is where the access log goes (accessLogOutput); main sets
	// it. Nil with ACCESS_LOG=off.
	accessOut io.Writer
}

// maxLoops bounds PROXY_LOOPS, beyond any machine's cores.
const maxLoops = 1024

// ByteSize is a size such as 65536, 64KiB, 32MiB or 1GiB.
type ByteSize int

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *ByteSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	mult := 1
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000_000}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return fmt.Errorf("invalid size %q (want a positive number, optionally with KiB, MiB or GiB)", string(text))
	}
	*b = ByteSize(n * mult)
	return nil
}

// OptionalSize is a ByteSize, or "off" (also "0" or "false"): zero.
type OptionalSize int64

// UnmarshalText implements encoding.TextUnmarshaler.
func (o *OptionalSize) UnmarshalText(text []byte) error {
	switch strings.ToLower(strings.TrimSpace(string(text))) {
	case "off", "0", "false", "no":
		*o = 0
		return nil
	}
	var b ByteSize
	if err := b.UnmarshalText(text); err != nil {
		return fmt.Errorf("%w, or off", err)
	}
	*o = OptionalSize(b)
	return nil
}

// loadConfig reads and checks the environment. Its error names the variable.
func loadConfig() (*Config, error) {
	cfg, err := env.ParseAs[Config]()
	if err != nil {
		return nil, envError(err)
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return &cfg, nil
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
			return fmt.Errorf("%s: %v", f.Tag.Get("env"), pe.Err)
		}
	}
	return err
}

// Workers returns the number of local workers to start.
func (c *Config) Workers() int {
	if !c.ClusterMode {
		return 1
	}
	if c.MaxWorkers == nil {
		return runtime.NumCPU()
	}
	return *c.MaxWorkers
}

// loops is PROXY_LOOPS, or when unset: every core for a balancer with only
// remote upstreams (nothing else runs here), else 0, the engine's default of
// half the cores (the workers need the rest).
func (c *Config) loops() int {
	if c.ProxyLoops == 0 && c.Workers() == 0 {
		return runtime.GOMAXPROCS(0)
	}
	return c.ProxyLoops
}

// scaleLimit is the most local workers /admin/scale accepts: WORKER_LIMIT,
// or 1 when CLUSTER_MODE=false, which runs exactly one worker.
func (c *Config) scaleLimit() int {
	if !c.ClusterMode {
		return 1
	}
	return c.WorkerLimit
}

func (c *Config) check() error {
	for _, chk := range []func() error{c.checkWorkers, c.checkDurations, c.checkCounts, c.checkDBBudget, c.checkAddrs, c.checkMisc, c.checkEnvDeny, c.checkAccessLog} {
		if err := chk(); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) checkWorkers() error {
	if c.WorkerLimit < 1 {
		return fmt.Errorf("WORKER_LIMIT: must be at least 1, got %d", c.WorkerLimit)
	}
	if n := c.MaxWorkers; n != nil && (*n < 0 || *n > c.WorkerLimit) {
		return fmt.Errorf("MAX_WORKERS: must be in [0, WORKER_LIMIT=%d], got %d", c.WorkerLimit, *n)
	}
	if c.Workers() == 0 && !c.remotes() {
		return errors.New("MAX_WORKERS: 0 needs UPSTREAMS (or UPSTREAMS_FILE), or nothing would serve")
	}
	if _, err := pool.NewSelector(c.Strategy); err != nil {
		return fmt.Errorf("BALANCE_STRATEGY: %w", err)
	}
	return c.resolveWorkerCmd()
}

// resolveWorkerCmd defaults WORKER_CMD to the worker beside this binary and
// checks that it can be run.
func (c *Config) resolveWorkerCmd() error {
	if c.WorkerCmd == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("WORKER_CMD: unset, and finding this binary failed: %w", err)
		}
		c.WorkerCmd = filepath.Join(filepath.Dir(self), "worker")
	}
	if c.Workers() == 0 {
		return nil
	}
	path, err := exec.LookPath(c.WorkerCmd)
	if err != nil {
		return fmt.Errorf("WORKER_CMD: %q cannot be run: %w", c.WorkerCmd, err)
	}
	c.WorkerCmd, err = filepath.Abs(path)
	return err
}

func (c *Config) checkDurations() error {
	for _, d := range []struct {
		name     string
		v        time.Duration
		positive bool
	}{
		{"HEALTH_INTERVAL", c.HealthInterval, true}, {"HEALTH_TIMEOUT", c.HealthTimeout, true},
		{"WORKER_START_TIMEOUT", c.WorkerStartTime, true}, {"MEMORY_REPORT_INTERVAL", c.MemoryInterval, true},
		{"DNS_REFRESH", c.DNSRefresh, true}, {"READ_HEADER_TIMEOUT", c.ReadTimeout, true},
		{"IDLE_TIMEOUT", c.IdleTimeout, true}, {"UPSTREAM_TIMEOUT", c.UpstreamTimeout, true},
		{"CLIENT_BODY_TIMEOUT", c.BodyTimeout, true}, {"TUNNEL_IDLE_TIMEOUT", c.TunnelIdle, true},
		{"DRAIN_TIMEOUT", c.DrainTimeout, false}, {"SHUTDOWN_TIMEOUT", c.ShutdownTimeout, false},
	} {
		if d.v < 0 || (d.positive && d.v == 0) {
			return fmt.Errorf("%s: must be a positive duration such as 2s, got %s", d.name, d.v)
		}
	}
	return nil
}

func (c *Config) checkCounts() error {
	for _, n := range []struct {
		name string
		v    int
		min  int
	}{
		{"UNHEALTHY_THRESHOLD", c.Unhealthy, 1}, {"HEALTHY_THRESHOLD", c.Healthy, 1},
		{"MEMORY_THRESHOLD_MB", c.MemoryThreshold, 0}, {"MAX_MEMORY_RESTART_MB", c.MaxMemoryMB, 0},
		{"WORKER_MEMORY_LIMIT_MB", c.MemoryLimitMB, 0}, {"MAX_REQUESTS", c.MaxRequests, 0},
		{"DB_MAX_CONNS", c.DBMaxConns, 1}, {"PROXY_LOOPS", c.ProxyLoops, 0},
		{"MAX_TUNNELS", c.MaxTunnels, 1},
		{"LOG_MAX_SIZE_MB", c.LogMaxSizeMB, 1}, {"LOG_MAX_FILES", c.LogMaxFiles, 1}, {"LOG_MAX_AGE_DAYS", c.LogMaxAgeDays, 0},
	} {
		if n.v < n.min {
			return fmt.Errorf("%s: must be at least %d, got %d", n.name, n.min, n.v)
		}
	}
	return nil
}

// dbShares reports whether the workers have a database: DATABASE_URL is
// set and they inherit it. Then the balancer keeps the sum of their
// connection shares within DB_MAX_CONNS at run time.
func (c *Config) dbShares() bool {
	return c.DatabaseURL != "" && !slices.Contains(c.WorkerEnvDeny, "DATABASE_URL")
}

// checkDBBudget: with a database, DB_MAX_CONNS must give every local
// worker a connection and keep one for the replacement a rolling reload
// or a recycle starts.
func (c *Config) checkDBBudget() error {
	if n := c.Workers(); c.dbShares() && c.DBMaxConns < n+1 {
		return fmt.Errorf("DB_MAX_CONNS: must be at least %d with DATABASE_URL set (a connection for each of the %d local workers, MAX_WORKERS, and one for a replacement), got %d",
			n+1, n, c.DBMaxConns)
	}
	return nil
}

func (c *Config) checkAddrs() error {
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		return fmt.Errorf("LISTEN_ADDR: %w", err)
	}
	host, _, err := net.SplitHostPort(c.AdminAddr)
	if err != nil {
		return fmt.Errorf("ADMIN_ADDR: %w", err)
	}
	if c.AdminToken == "" && !isLoopback(host) {
		return fmt.Errorf("ADMIN_TOKEN: required when ADMIN_ADDR (%s) is not a loopback address", c.AdminAddr)
	}
	return c.checkRemotes() // remote.go
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkEnvDeny checks that WORKER_ENV_DENY is a comma-separated list of
// variable names: none empty, none holding '=', white space or a control
// character.
func (c *Config) checkEnvDeny() error {
	for _, name := range c.WorkerEnvDeny {
		bad := strings.ContainsFunc(name, func(r rune) bool { return r == '=' || unicode.IsSpace(r) || unicode.IsControl(r) })
		if name == "" || bad {
			return fmt.Errorf("WORKER_ENV_DENY: %q is not a variable name (want names such as FOO_SECRET, comma separated, no spaces)", name)
		}
	}
	return nil
}

func (c *Config) checkMisc() error {
	if err := proxy.ParseSticky(c.Sticky); err != nil {
		return fmt.Errorf("STICKY: %w", err)
	}
	if c.StickyCookie == "" || strings.ContainsAny(c.StickyCookie, " \t;,=\"\r\n") {
		return fmt.Errorf("STICKY_COOKIE: %q is not a cookie name", c.StickyCookie)
	}
	if c.ProxyLoops > maxLoops {
		return fmt.Errorf("PROXY_LOOPS: must be at most %d, got %d", maxLoops, c.ProxyLoops)
	}
	if !strings.HasPrefix(c.HealthPath, "/") {
		return fmt.Errorf("HEALTH_PATH: must start with /, got %q", c.HealthPath)
	}
	if _, err := logging.ParseLevel(c.LogLevel); err != nil {
		return fmt.Errorf("LOG_LEVEL: %w", err)
	}
	if _, err := logging.ParseFormat(c.LogFormat); err != nil {
		return fmt.Errorf("LOG_FORMAT: %w", err)
	}
	return nil
}
