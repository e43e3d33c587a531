package deploy

// Issue 12: the production topology run as processes: the balancer and the
// workers built as the images build them, with the environment compose
// hands them (docker-compose.prod.yml and configs/.env.prod.example, paths
// and addresses adapted to the test), against real PostgreSQL and Redis
// (storetest's throwaway servers), and the README's smoke commands.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/procbal/procbal/worker/store/storetest"
)

// built holds the binaries, built once as the Dockerfiles build them.
var built struct {
	once sync.Once
	dir  string
	err  error
}

// binaries builds the balancer and the worker as the images do (cgo off,
// the version stamped) into one directory, as in the balancer image.
func binaries(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "prodstack-bin")
		if built.err != nil {
			return
		}
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-X main.version=prod-test", "-o", built.dir+"/", "./balancer", "./worker")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatalf("building: %v", built.err)
	}
	return built.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	storetest.CloseShared()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// testData is a real PostgreSQL database and a real Redis with the stack's
// password, and how the stack's service names map onto them.
type testData struct {
	db    string // database name
	hosts map[string]string
}

// startData makes a database on the test binary's PostgreSQL and starts a
// Redis that requires password, for t.
func startData(t *testing.T, password string) testData {
	t.Helper()
	rd := storetest.PrivateRedis(t) // its own: the password is set on it
	u, err := url.Parse(storetest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", rd.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONFIG SET requirepass %s\r\n", password)
	if line, _ := bufio.NewReader(c).ReadString('\n'); line != "+OK\r\n" {
		t.Fatalf("setting Redis's password: %q", line)
	}
	return testData{db: strings.TrimPrefix(u.Path, "/"), hosts: map[string]string{
		"postgres:5432": u.Host, "redis:6379": rd.Addr(),
	}}
}

// adapt rewrites a service's environment for processes on this host: the
// stack's service names become the test servers' addresses, and listen
// addresses free loopback ports.
func (d testData) adapt(t *testing.T, env map[string]string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, v := range env {
		for svc, addr := range d.hosts {
			v = strings.ReplaceAll(v, "@"+svc+"/", "@"+addr+"/")
		}
		out[k] = v
	}
	for _, k := range []string{"LISTEN_ADDR", "ADMIN_ADDR", "WORKER_ADDR"} {
		if _, ok := out[k]; ok {
			out[k] = freeAddr(t)
		}
	}
	out["SOCKET_DIR"] = filepath.Join(t.TempDir(), "s")
	return out
}

func envList(env map[string]string) []string {
	var out []string
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// proc is a process of the stack.
type proc struct {
	cmd    *exec.Cmd
	out    *strings.Builder
	mu     sync.Mutex
	exited chan struct{}
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// startProc runs bin with exactly env, as a container would, until t ends.
func startProc(t *testing.T, bin string, env map[string]string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin), out: &strings.Builder{}, exited: make(chan struct{})}
	p.cmd.Env = envList(env)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), p.output())
		}
	})
	return p
}

// stop sends SIGTERM, as docker stop does, and wants exit 0 within grace.
func (p *proc) stop(t *testing.T, grace time.Duration) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		t.Fatalf("still running %s after SIGTERM", grace)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

// healthcheck runs a service's compose healthcheck (["CMD", program,
// args...]) with the built binary for program, until it passes.
func healthcheck(t *testing.T, test []string, bin string, env map[string]string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		cmd := exec.Command(filepath.Join(bin, filepath.Base(test[1])), test[2:]...)
		cmd.Env = envList(env)
		out, err := cmd.CombinedOutput()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthcheck %v: %v %s", test, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// smokeCommand is one curl line of the README's "Try it" block.
type smokeCommand struct {
	line, method, target, body string
	ctl                        []string // ./bin/balancer ctl's arguments, instead of a curl
}

var (
	curlLine = regexp.MustCompile(`^curl\s+(?:-X\s+(\w+)\s+)?(\S+)(?:\s+-d\s+'([^']*)')?\s*(?:#.*)?$`)
	ctlLine  = regexp.MustCompile(`^\./bin/balancer\s+ctl\s+([^#]+?)\s*(?:#.*)?$`)
)

// readmeSmoke parses the curl commands of the README's "Try it" block.
func readmeSmoke(t *testing.T) []smokeCommand {
	t.Helper()
	_, block, ok := strings.Cut(readFile(t, "README.md"), "Try it:\n\n```sh\n")
	if !ok {
		t.Fatal(`README.md has no "Try it:" block`)
	}
	block, _, _ = strings.Cut(block, "```")
	var cmds []smokeCommand
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		if m := ctlLine.FindStringSubmatch(line); m != nil {
			cmds = append(cmds, smokeCommand{line: line, ctl: strings.Fields(m[1])})
			continue
		}
		m := curlLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("README smoke command not understood: %q", line)
		}
		method := m[1]
		if method == "" {
			method = http.MethodGet
		}
		cmds = append(cmds, smokeCommand{line: line, method: method, target: m[2], body: m[3]})
	}
	if len(cmds) < 3 {
		t.Fatalf("README smoke block: %v", cmds)
	}
	return cmds
}

// runSmoke sends the README's commands to the stack: localhost:3001 is the
// client listener, 127.0.0.1:3002 the admin API, with the stack's token.
func runSmoke(t *testing.T, bin string, env map[string]string) {
	t.Helper()
	for _, c := range readmeSmoke(t) {
		if c.ctl != nil {
			runCtl(t, bin, env, c)
			continue
		}
		target := strings.NewReplacer("localhost:3001", env["LISTEN_ADDR"], "127.0.0.1:3002", env["ADMIN_ADDR"]).Replace(c.target)
		req, err := http.NewRequest(c.method, "http://"+target, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(target, env["ADMIN_ADDR"]) {
			req.Header.Set("Authorization", "Bearer "+env["ADMIN_TOKEN"])
		}
		resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.line, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s: %d %s", c.line, resp.StatusCode, body)
		}
		if strings.HasSuffix(target, "/api/health") && (!strings.Contains(string(body), `"postgres":"ok"`) || !strings.Contains(string(body), `"redis":"ok"`)) {
			t.Fatalf("%s: %s, want PostgreSQL and Redis ok", c.line, body)
		}
	}
}

// runCtl runs a README line of `balancer ctl` against the stack's admin
// API, with its address and token from the environment, as an operator
// would; it must exit 0.
func runCtl(t *testing.T, bin string, env map[string]string, c smokeCommand) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "balancer"), append([]string{"ctl"}, c.ctl...)...)
	cmd.Env = append(os.Environ(), "ADMIN_ADDR="+env["ADMIN_ADDR"], "ADMIN_TOKEN="+env["ADMIN_TOKEN"])
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", c.line, err, out)
	}
}

// checkData creates an item (PostgreSQL) and a session (Redis) through the
// balancer and reads both back.
func checkData(t *testing.T, addr string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Post("http://"+addr+"/api/items", "application/json", strings.NewReader(`{"name": "prod"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || !strings.Contains(string(body), `"prod"`) {
		t.Fatalf("POST /api/items: %d %s", resp.StatusCode, body)
	}
	resp, err = c.Post("http://"+addr+"/api/sessions", "application/json", strings.NewReader(`{"user": "ops"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "session" {
			session = ck
		}
	}
	if resp.StatusCode != 201 || session == nil {
		t.Fatalf("POST /api/sessions: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	for range 4 { // every worker reads it from Redis
		req, _ := http.NewRequest("GET", "http://"+addr+"/api/sessions/me", nil)
		req.AddCookie(session)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"ops"`) {
			t.Fatalf("GET /api/sessions/me: %d %s", resp.StatusCode, body)
		}
	}
}

// Issue 12: the production stack as processes: the balancer spawning its
// workers with the prod environment passes its compose healthcheck, the
// README's smoke commands, a round trip through PostgreSQL and Redis, and
// stops cleanly on SIGTERM within the stack's stop_grace_period.
func TestProdStackAsProcesses(t *testing.T) {
	bin := binaries(t)
	data := startData(t, "redispass")
	p := mustLoad(t, prodStack, append(secrets, "POSTGRES_USER=postgres", "POSTGRES_DB="+data.db)...)
	svc := p.Services["balancer"]
	env := data.adapt(t, environ(svc))
	b := startProc(t, filepath.Join(bin, "balancer"), env)
	healthcheck(t, svc.HealthCheck.Test, bin, env)
	runSmoke(t, bin, env)
	checkData(t, env["LISTEN_ADDR"])
	b.stop(t, time.Duration(*svc.StopGracePeriod))
}

// Issue 12: the horizontal variant as processes: worker replicas with the
// worker service's environment, each passing its compose healthcheck, and
// the balancer fronting them through UPSTREAMS (the service's DNS name
// becomes the replicas' addresses), with the README's smoke commands.
func TestHorizontalStackAsProcesses(t *testing.T) {
	bin := binaries(t)
	data := startData(t, "redispass")
	p := mustLoad(t, horizontalStack, append(secrets, "POSTGRES_USER=postgres", "POSTGRES_DB="+data.db)...)
	wsvc, bsvc := p.Services["worker"], p.Services["balancer"]
	var upstreams []string
	var replicas []*proc
	for range *wsvc.Deploy.Replicas {
		env := data.adapt(t, environ(wsvc))
		replicas = append(replicas, startProc(t, filepath.Join(bin, "worker"), env))
		healthcheck(t, wsvc.HealthCheck.Test, bin, env)
		upstreams = append(upstreams, env["WORKER_ADDR"])
	}
	env := data.adapt(t, environ(bsvc))
	env["UPSTREAMS"] = strings.Join(upstreams, ",")
	b := startProc(t, filepath.Join(bin, "balancer"), env)
	healthcheck(t, bsvc.HealthCheck.Test, bin, env)
	// The README's scale command adds local workers, which this variant
	// has none of (MAX_WORKERS=0): the balancer fronts the replicas only.
	checkData(t, env["LISTEN_ADDR"])
	b.stop(t, time.Duration(*bsvc.StopGracePeriod))
	for _, r := range replicas {
		r.stop(t, time.Duration(*wsvc.StopGracePeriod))
	}
}
