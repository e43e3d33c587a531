package deploy

import (
	"context"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/go-units"
)

// stack is a compose invocation: its files and its --env-file.
type stack struct {
	files   []string
	envFile string
}

var (
	// devStack reads configs/.env.example itself, as the balancer's env_file.
	devStack        = stack{[]string{"docker-compose.yml"}, ""}
	prodStack       = stack{[]string{"docker-compose.prod.yml"}, "configs/.env.prod.example"}
	horizontalStack = stack{[]string{"docker-compose.prod.yml", "docker-compose.horizontal.yml"}, "configs/.env.prod.example"}
)

// secrets are what an operator fills into the prod example before use.
var secrets = []string{"ADMIN_TOKEN=t0ken", "POSTGRES_PASSWORD=pgpass", "REDIS_PASSWORD=redispass"}

// load loads s as `docker compose` would, with env in the place of the
// shell's environment (and nothing of this process's).
func load(t *testing.T, s stack, env ...string) (*types.Project, error) {
	t.Helper()
	wd, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range s.files {
		files = append(files, filepath.Join(wd, f))
	}
	opts := []cli.ProjectOptionsFn{cli.WithWorkingDirectory(wd), cli.WithEnv(env)}
	if envFile := s.envFile; envFile != "" {
		if !filepath.IsAbs(envFile) {
			envFile = filepath.Join(wd, envFile)
		}
		opts = append(opts, cli.WithEnvFiles(envFile), cli.WithDotEnv)
	}
	o, err := cli.NewProjectOptions(files, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return o.LoadProject(context.Background())
}

func mustLoad(t *testing.T, s stack, env ...string) *types.Project {
	t.Helper()
	p, err := load(t, s, env...)
	if err != nil {
		t.Fatalf("loading %v: %v", s.files, err)
	}
	return p
}

// environ is what a service's process gets: the variables with a value
// (compose drops those without one).
func environ(svc types.ServiceConfig) map[string]string {
	env := map[string]string{}
	for k, v := range svc.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	return env
}

// declared is every variable a service's environment names, with a value
// or passed through from the env file when set there.
func declared(svc types.ServiceConfig) []string {
	var out []string
	for k := range svc.Environment {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func serviceNames(p *types.Project) []string {
	out := p.ServiceNames()
	slices.Sort(out)
	return out
}

// checkHealthcheck: every service says how to tell it is healthy.
func checkHealthcheck(t *testing.T, svc types.ServiceConfig) {
	t.Helper()
	hc := svc.HealthCheck
	if hc == nil || hc.Disable || len(hc.Test) < 2 || (hc.Test[0] != "CMD" && hc.Test[0] != "CMD-SHELL") {
		t.Errorf("%s: healthcheck %+v, want a CMD or CMD-SHELL test", svc.Name, hc)
		return
	}
	if hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil || *hc.Timeout > *hc.Interval {
		t.Errorf("%s: healthcheck wants interval, timeout (at most the interval) and retries: %+v", svc.Name, hc)
	}
}

// checkProdService: restart policy, CPU and memory limits, bounded logs.
func checkProdService(t *testing.T, svc types.ServiceConfig) {
	t.Helper()
	checkHealthcheck(t, svc)
	if svc.Restart != types.RestartPolicyUnlessStopped && svc.Restart != types.RestartPolicyAlways {
		t.Errorf("%s: restart %q, want unless-stopped or always", svc.Name, svc.Restart)
	}
	if svc.Deploy == nil || svc.Deploy.Resources.Limits == nil ||
		svc.Deploy.Resources.Limits.NanoCPUs <= 0 || svc.Deploy.Resources.Limits.MemoryBytes <= 0 {
		t.Errorf("%s: want CPU and memory limits, got %+v", svc.Name, svc.Deploy)
	}
	lg := svc.Logging
	if lg == nil || lg.Driver != "json-file" {
		t.Errorf("%s: logging %+v, want the json-file driver", svc.Name, lg)
		return
	}
	size, err := units.FromHumanSize(lg.Options["max-size"])
	files, ferr := strconv.Atoi(lg.Options["max-file"])
	if err != nil || ferr != nil || size <= 0 || files < 1 || size*int64(files) > 1<<30 {
		t.Errorf("%s: log options %v, want max-size and max-file within 1 GiB in all", svc.Name, lg.Options)
	}
}

// checkBalancer: the image and its healthcheck, only variables the
// balancer (or its workers) read, the admin API on loopback only, time to
// drain before a SIGKILL.
func checkBalancer(t *testing.T, svc types.ServiceConfig) {
	t.Helper()
	img := image(t, "Dockerfile.balancer")
	if svc.Build == nil || svc.Build.Dockerfile != "Dockerfile.balancer" || svc.Build.Args["VERSION"] == nil {
		t.Errorf("balancer: build %+v, want Dockerfile.balancer with a VERSION argument", svc.Build)
	}
	if want := []string{"CMD", img.entrypoint, "healthcheck"}; svc.HealthCheck == nil || !slices.Equal(svc.HealthCheck.Test, want) {
		t.Errorf("balancer: healthcheck %v, want %v", svc.HealthCheck, want)
	}
	env := environ(svc)
	if bad := unread(declared(svc), balancerHandable(t)); len(bad) > 0 {
		t.Errorf("balancer is handed %v, which neither the balancer nor its workers read", bad)
	}
	checkAdminPort(t, svc, env)
	shutdown := 30 * time.Second
	if v, ok := env["SHUTDOWN_TIMEOUT"]; ok {
		shutdown, _ = time.ParseDuration(v)
	}
	if svc.StopGracePeriod == nil || time.Duration(*svc.StopGracePeriod) < shutdown+5*time.Second {
		t.Errorf("balancer: stop_grace_period %v, want SHUTDOWN_TIMEOUT (%s) and time to stop the workers", svc.StopGracePeriod, shutdown)
	}
}

// checkAdminPort: the admin port is published on the host's loopback only,
// and an admin listener on all interfaces inside the container has a token
// (without one the balancer refuses to start).
func checkAdminPort(t *testing.T, svc types.ServiceConfig, env map[string]string) {
	t.Helper()
	_, adminPort, err := net.SplitHostPort(env["ADMIN_ADDR"])
	if err != nil {
		t.Fatalf("balancer: ADMIN_ADDR %q: %v", env["ADMIN_ADDR"], err)
	}
	host, _, _ := net.SplitHostPort(env["ADMIN_ADDR"])
	if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && env["ADMIN_TOKEN"] == "" {
		t.Errorf("balancer: ADMIN_ADDR %s without ADMIN_TOKEN", env["ADMIN_ADDR"])
	}
	var client, admin bool
	for _, p := range svc.Ports {
		switch strconv.Itoa(int(p.Target)) {
		case adminPort:
			admin = true
			if p.HostIP != "127.0.0.1" {
				t.Errorf("balancer: admin port published on %q, want 127.0.0.1 only", p.HostIP)
			}
		case "3001":
			client = true
		}
	}
	if !client || !admin {
		t.Errorf("balancer: ports %+v, want the client port 3001 and the admin port %s", svc.Ports, adminPort)
	}
}

// Issue 12: the development stack: the balancer spawning its workers,
// PostgreSQL and Redis, with configs/.env.example as the balancer's env.
func TestComposeDev(t *testing.T) {
	p := mustLoad(t, devStack)
	if got := serviceNames(p); !slices.Equal(got, []string{"balancer", "postgres", "redis"}) {
		t.Fatalf("services %v", got)
	}
	for _, svc := range p.Services {
		checkHealthcheck(t, svc)
	}
	b := p.Services["balancer"]
	checkBalancer(t, b)
	if len(b.EnvFiles) == 0 || !strings.HasSuffix(b.EnvFiles[0].Path, "configs/.env.example") {
		t.Errorf("balancer env_file %+v, want configs/.env.example", b.EnvFiles)
	}
	env := environ(b)
	if env["MAX_WORKERS"] == "0" || env["UPSTREAMS"] != "" {
		t.Errorf("the dev balancer must spawn its workers: MAX_WORKERS=%q UPSTREAMS=%q", env["MAX_WORKERS"], env["UPSTREAMS"])
	}
	checkDataURLs(t, p, env)
	for _, dep := range []string{"postgres", "redis"} {
		if b.DependsOn[dep].Condition != types.ServiceConditionHealthy {
			t.Errorf("balancer starts before %s is healthy", dep)
		}
	}
}

// checkDataURLs: DATABASE_URL and REDIS_URL name the stack's own services.
func checkDataURLs(t *testing.T, p *types.Project, env map[string]string) {
	t.Helper()
	for v, svc := range map[string]string{"DATABASE_URL": "postgres", "REDIS_URL": "redis"} {
		u, err := url.Parse(env[v])
		if err != nil || u.Hostname() != svc || p.Services[svc].Name == "" {
			t.Errorf("%s=%q, want the %s service", v, env[v], svc)
		}
	}
}

// Issue 12: the production stack, every service bounded and healthy, no
// secret in the file.
func TestComposeProd(t *testing.T) {
	p := mustLoad(t, prodStack, secrets...)
	if got := serviceNames(p); !slices.Equal(got, []string{"balancer", "postgres", "redis"}) {
		t.Fatalf("services %v", got)
	}
	for _, svc := range p.Services {
		checkProdService(t, svc)
	}
	b := p.Services["balancer"]
	checkBalancer(t, b)
	env := environ(b)
	checkDataURLs(t, p, env)
	if env["ADMIN_TOKEN"] != "t0ken" || !strings.Contains(env["DATABASE_URL"], ":pgpass@") || !strings.Contains(env["REDIS_URL"], ":redispass@") {
		t.Errorf("secrets do not come from the env file: %v", env)
	}
	checkVolume(t, p, "postgres", "/var/lib/postgresql/data")
	checkVolume(t, p, "redis", "/data")
	if cmd := strings.Join(p.Services["redis"].Command, " "); !strings.Contains(cmd, "--appendonly yes") || strings.Contains(cmd, "redispass") {
		t.Errorf("redis command %q, want append-only and no password on the command line", cmd)
	}
}

func checkVolume(t *testing.T, p *types.Project, service, target string) {
	t.Helper()
	for _, v := range p.Services[service].Volumes {
		if v.Target == target && v.Type == types.VolumeTypeVolume {
			if _, ok := p.Volumes[v.Source]; ok {
				return
			}
		}
	}
	t.Errorf("%s: no named volume at %s: %+v", service, target, p.Services[service].Volumes)
}

// Issue 12: the horizontal variant: the balancer spawns nothing and fronts
// the replicas of the worker service through its DNS name.
func TestComposeHorizontal(t *testing.T) {
	p := mustLoad(t, horizontalStack, secrets...)
	if got := serviceNames(p); !slices.Equal(got, []string{"balancer", "postgres", "redis", "worker"}) {
		t.Fatalf("services %v", got)
	}
	for _, svc := range p.Services {
		checkProdService(t, svc)
	}
	b, w := p.Services["balancer"], p.Services["worker"]
	checkBalancer(t, b)
	benv, wenv := environ(b), environ(w)
	if benv["MAX_WORKERS"] != "0" {
		t.Errorf("MAX_WORKERS=%q, want 0", benv["MAX_WORKERS"])
	}
	host, port, err := net.SplitHostPort(benv["UPSTREAMS"])
	_, wport, _ := net.SplitHostPort(wenv["WORKER_ADDR"])
	if err != nil || host != "worker" || port != wport {
		t.Errorf("UPSTREAMS=%q, want the worker service's name and its WORKER_ADDR port (%q)", benv["UPSTREAMS"], wenv["WORKER_ADDR"])
	}
	if w.Deploy == nil || w.Deploy.Replicas == nil || *w.Deploy.Replicas < 2 {
		t.Errorf("worker: want replicas, got %+v", w.Deploy)
	}
	if bad := unread(declared(w), workerVars(t)); len(bad) > 0 {
		t.Errorf("worker is handed %v, which it does not read", bad)
	}
	img := image(t, "Dockerfile.worker")
	if want := []string{"CMD", img.entrypoint, "healthcheck"}; !slices.Equal(w.HealthCheck.Test, want) || w.Build.Dockerfile != "Dockerfile.worker" {
		t.Errorf("worker: healthcheck %v and build %+v, want %v from Dockerfile.worker", w.HealthCheck.Test, w.Build, want)
	}
	checkDataURLs(t, p, wenv)
	if b.DependsOn["worker"].Condition != types.ServiceConditionHealthy {
		t.Errorf("balancer starts before the workers are healthy")
	}
}

// Issue 12: a required secret left empty stops compose with its name.
func TestComposeProdRefusesMissingSecrets(t *testing.T) {
	for i, s := range secrets {
		name, _, _ := strings.Cut(s, "=")
		others := slices.Delete(slices.Clone(secrets), i, i+1)
		for _, st := range []stack{prodStack, horizontalStack} {
			_, err := load(t, st, others...)
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("%v without %s: %v, want an error naming it", st.files, name, err)
			}
		}
	}
}

var (
	secretKey  = regexp.MustCompile(`^\s*-?\s*"?([A-Z0-9_]*(?:TOKEN|PASSWORD|SECRET)[A-Z0-9_]*)"?\s*[:=]\s*(.*)$`)
	secretRef  = regexp.MustCompile(`\$\{([A-Z0-9_]*(?:TOKEN|PASSWORD|SECRET)[A-Z0-9_]*)([^}]*)\}`)
	requireRef = regexp.MustCompile(`^\$\{[A-Z0-9_]+:\?[^}]*\}$`)
)

// Issue 12: no secret is written in the production files: each is
// ${NAME:?...}, required from the env file, or passed through from it.
func TestComposeProdWritesNoSecret(t *testing.T) {
	for _, f := range horizontalStack.files {
		for i, line := range strings.Split(readFile(t, f), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			// NAME: alone passes NAME through from the env file: nothing written.
			if m := secretKey.FindStringSubmatch(line); m != nil && strings.TrimSpace(m[2]) != "" && !requireRef.MatchString(strings.TrimSpace(m[2])) {
				t.Errorf("%s:%d: %s is not ${%s:?...}: %s", f, i+1, m[1], m[1], line)
			}
			for _, m := range secretRef.FindAllStringSubmatch(line, -1) {
				if !strings.HasPrefix(m[2], ":?") {
					t.Errorf("%s:%d: ${%s%s} has a default or may be empty; want ${%s:?...}", f, i+1, m[1], m[2], m[1])
				}
			}
		}
	}
}

// Issue 12: each service's CPU and memory limits come from the env file.
func TestComposeLimitsFromEnv(t *testing.T) {
	prefix := map[string]string{"balancer": "BACKEND", "postgres": "POSTGRES", "redis": "REDIS", "worker": "REPLICA"}
	env := slices.Clone(secrets)
	for _, p := range prefix {
		env = append(env, p+"_CPU_LIMIT=3", p+"_MEMORY_LIMIT=3G")
	}
	proj := mustLoad(t, horizontalStack, env...)
	for name, svc := range proj.Services {
		if _, ok := prefix[name]; !ok {
			t.Errorf("service %s has no limit variables in this test", name)
			continue
		}
		l := svc.Deploy.Resources.Limits
		if l.NanoCPUs != 3 || l.MemoryBytes != 3<<30 {
			t.Errorf("%s: limits %v CPUs, %d bytes; want %s_CPU_LIMIT and %s_MEMORY_LIMIT (3, 3G)", name, l.NanoCPUs, l.MemoryBytes, prefix[name], prefix[name])
		}
	}
}
