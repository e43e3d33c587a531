package main

// The user documentation is tested against what it documents: the worker
// examples of docs/WORKERS.md run behind the real balancer, and
// docs/ADMIN.md must name every admin route, JSON field, state, status
// code and metric the code has, so neither can drift silently.

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/procbal/procbal/balancer/admin"
	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/balancer/supervisor"
)

// docExample is one worker example of docs/WORKERS.md.
type docExample struct {
	name   string
	file   string                    // under docs/examples
	interp func(t *testing.T) string // the interpreter that runs it
	answer *regexp.Regexp            // its answer to any path but HEALTH_PATH
}

var docExamples = []docExample{
	{name: "python", file: "worker.py", interp: python3Interp,
		answer: regexp.MustCompile(`^hello from python worker (\d+) pid (\d+)\n$`)},
	{name: "node", file: "worker.js", interp: nodeInterp,
		answer: regexp.MustCompile(`^hello from node worker (\d+) pid (\d+)\n$`)},
}

// readDoc returns a file of docs/, relative to the repository root.
func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// WORKERS.md shows each example file verbatim, so what users copy is what
// TestDocsWorkerExamples runs.
func TestDocsWorkerExamplesVerbatim(t *testing.T) {
	t.Parallel()
	doc := readDoc(t, "WORKERS.md")
	for _, ex := range docExamples {
		src := readDoc(t, filepath.Join("examples", ex.file))
		if !strings.Contains(doc, src) {
			t.Errorf("docs/WORKERS.md does not contain docs/examples/%s verbatim: copy the file into its code block again", ex.file)
		}
	}
}

// Each example of docs/WORKERS.md keeps the worker contract: two of them
// behind the balancer get healthy and both answer; a rolling reload
// replaces both; SIGTERM stops the balancer with exit 0, and every worker
// it stopped (after the reload and at the end) exited 0 on its own
// SIGTERM, in time. Never skipped: a missing interpreter fails the test.
func TestDocsWorkerExamples(t *testing.T) {
	t.Parallel()
	for _, ex := range docExamples {
		t.Run(ex.name, func(t *testing.T) {
			t.Parallel()
			script, err := filepath.Abs(filepath.Join("..", "docs", "examples", ex.file))
			if err != nil {
				t.Fatal(err)
			}
			if strings.ContainsAny(script, " \t") {
				t.Fatalf("%s: WORKER_ARGS is split at spaces, so the repository path must have none", script)
			}
			runDocExample(t, ex, ex.interp(t), script)
		})
	}
}

func runDocExample(t *testing.T, ex docExample, interp, script string) {
	b := startBalancer(t, 2, "WORKER_CMD="+interp, "WORKER_ARGS="+script, "MAX_WORKERS=2")
	first := examplePIDs(t, b)
	answered := exampleAnswers(t, b, ex)
	if !maps.Equal(answered, first) {
		t.Fatalf("answers came from %v, want every worker of /admin/workers %v", answered, first)
	}
	if code, body, err := b.get("/healthz"); err != nil || code != 200 || string(body) != "ok\n" {
		t.Fatalf("GET /healthz through the balancer: %d %q %v, want 200 \"ok\\n\"", code, body, err)
	}

	var rel map[string]int
	if code := b.adminReq("POST", "/admin/reload", "", &rel); code != 200 || rel["reloaded"] != 2 {
		t.Fatalf("POST /admin/reload: %d %v, want 200 {\"reloaded\": 2}", code, rel)
	}
	b.waitHealthy(2, 15*time.Second)
	second := examplePIDs(t, b)
	for id, pid := range second {
		if first[id] == pid {
			t.Fatalf("worker %d still pid %d after the reload", id, pid)
		}
	}
	if answered := exampleAnswers(t, b, ex); !maps.Equal(answered, second) {
		t.Fatalf("after the reload answers came from %v, want %v", answered, second)
	}

	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := b.waitExit(30 * time.Second); code != 0 {
		t.Fatalf("balancer exited %d after SIGTERM, want 0", code)
	}
	checkCleanExits(t, b.out.String(), first, second)
}

// examplePIDs returns the pid of each worker id, as /admin/workers has it.
func examplePIDs(t *testing.T, b *bal) map[int]int {
	t.Helper()
	pids := map[int]int{}
	for _, w := range b.workers().Workers {
		pids[w.ID] = w.PID
	}
	if len(pids) != 2 {
		t.Fatalf("/admin/workers lists %v, want workers 1 and 2", pids)
	}
	return pids
}

// exampleAnswers GETs a path through the balancer until both workers have
// answered (round robin: two requests, a few more to be safe) and returns
// the pid each WORKER_ID answered with.
func exampleAnswers(t *testing.T, b *bal, ex docExample) map[int]int {
	t.Helper()
	seen := map[int]int{}
	for i := 0; i < 20 && len(seen) < 2; i++ {
		code, body, err := b.get("/hello?i=" + strconv.Itoa(i))
		if err != nil || code != 200 {
			t.Fatalf("GET /hello: %d %q %v", code, body, err)
		}
		m := ex.answer.FindStringSubmatch(string(body))
		if m == nil {
			t.Fatalf("GET /hello answered %q, want %s", body, ex.answer)
		}
		id, _ := strconv.Atoi(m[1])
		pid, _ := strconv.Atoi(m[2])
		if prev, ok := seen[id]; ok && prev != pid {
			t.Fatalf("worker %d answered as pid %d and as pid %d", id, prev, pid)
		}
		seen[id] = pid
	}
	return seen
}

// checkCleanExits finds, for every pid of the runs, the balancer's line
// "worker exited: ... code=0 ... requested=true": the worker handled its
// SIGTERM and exited 0 (dying of the signal would log "worker stopped by
// SIGTERM"), before the SIGKILL grace ran out ("killing it").
func checkCleanExits(t *testing.T, out string, runs ...map[int]int) {
	t.Helper()
	if strings.Contains(out, "killing it") {
		t.Errorf("a worker had to be killed:\n%s", docLines(out, "killing it"))
	}
	for _, run := range runs {
		for id, pid := range run {
			if !hasExitLine(out, pid) {
				t.Errorf("worker %d (pid %d) did not exit 0 on SIGTERM: %s", id, pid,
					docLines(out, "pid="+strconv.Itoa(pid)+" "))
			}
		}
	}
}

func hasExitLine(out string, pid int) bool {
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "worker exited:") {
			continue
		}
		fields := strings.Fields(line)
		if slices.Contains(fields, "pid="+strconv.Itoa(pid)) && slices.Contains(fields, "code=0") &&
			slices.Contains(fields, "requested=true") {
			return true
		}
	}
	return false
}

func docLines(out, s string) string {
	var lines []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, s) {
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "\n")
}

// python3Interp returns the python3 that runs the Python example: the one
// on PATH, else Debian's /usr/bin/python3, resolved to the interpreter
// itself (sys.executable), so no shim such as pyenv's stands between the
// balancer and the worker. It needs the standard library only.
func python3Interp(t *testing.T) string {
	t.Helper()
	var cands, tried []string
	if p, err := exec.LookPath("python3"); err == nil {
		cands = append(cands, p)
	}
	cands = append(cands, "/usr/bin/python3")
	for _, c := range cands {
		out, err := exec.Command(c, "-c", "import http.server, socketserver, sys; print(sys.executable)").CombinedOutput()
		if exe := strings.TrimSpace(string(out)); err == nil && filepath.IsAbs(exe) {
			return exe
		}
		tried = append(tried, fmt.Sprintf("%s: %v %s", c, err, strings.TrimSpace(string(out))))
	}
	t.Fatalf("python3 is needed to test docs/examples/worker.py and was not found "+
		"(apt-get install python3); tried %s", strings.Join(tried, "; "))
	return ""
}

// nodeInterp returns the node that runs the Node example: node (or
// Debian's older name, nodejs) on PATH, at least 18.2, which has
// server.closeIdleConnections.
func nodeInterp(t *testing.T) string {
	t.Helper()
	var tried []string
	for _, name := range []string{"node", "nodejs"} {
		p, err := exec.LookPath(name)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		out, err := exec.Command(p, "-e",
			"if (typeof require('http').Server.prototype.closeIdleConnections !== 'function') process.exit(3);"+
				"console.log(process.version)").CombinedOutput()
		if err == nil {
			return p
		}
		tried = append(tried, fmt.Sprintf("%s: %v %s (node 18.2 or later is needed)", p, err, strings.TrimSpace(string(out))))
	}
	t.Fatalf("node is needed to test docs/examples/worker.js and was not found "+
		"(run `make test` as root, which installs Debian's nodejs, or apt-get install nodejs); tried %s",
		strings.Join(tried, "; "))
	return ""
}

// docs/ADMIN.md names every route the admin mux registers, every field of
// the /admin/workers JSON, every worker state and restart cause, every
// status code the admin package answers, and every metric with its labels.
func TestDocsAdminComplete(t *testing.T) {
	t.Parallel()
	doc := readDoc(t, "ADMIN.md")
	routes, statuses := adminSource(t)
	if len(routes) < 5 {
		t.Fatalf("found only routes %v in balancer/admin: has the mux moved?", routes)
	}
	for _, r := range routes {
		if r != "/" && !strings.Contains(doc, "`"+r+"`") {
			t.Errorf("docs/ADMIN.md does not name route `%s`", r)
		}
	}
	for _, code := range statuses {
		if !regexp.MustCompile(`\b` + strconv.Itoa(code) + `\b`).MatchString(doc) {
			t.Errorf("docs/ADMIN.md does not mention status %d (%s), which balancer/admin answers", code, http.StatusText(code))
		}
	}
	for _, f := range jsonFields(reflect.TypeFor[admin.Report]()) {
		if !strings.Contains(doc, "`"+f+"`") {
			t.Errorf("docs/ADMIN.md does not name field `%s` of /admin/workers", f)
		}
	}
	for s := pool.State(0); s.String() != "unknown"; s++ {
		if !strings.Contains(doc, "`"+s.String()+"`") {
			t.Errorf("docs/ADMIN.md does not name worker state `%s`", s)
		}
	}
	for _, c := range supervisor.Causes {
		if !strings.Contains(doc, "`"+c+"`") {
			t.Errorf("docs/ADMIN.md does not name restart cause `%s`", c)
		}
	}
	metrics := metricNames(t)
	t.Logf("checked %d routes, %d status codes, %d JSON fields and %d metrics against docs/ADMIN.md",
		len(routes), len(statuses), len(jsonFields(reflect.TypeFor[admin.Report]())), len(metrics))
	for name, labels := range metrics {
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("docs/ADMIN.md does not name metric `%s`", name)
		}
		for _, l := range labels {
			if !strings.Contains(doc, "`"+l+"`") {
				t.Errorf("docs/ADMIN.md does not name label `%s` of metric %s", l, name)
			}
		}
	}
}

// adminSource parses balancer/admin and returns the patterns passed to
// Handle and HandleFunc as string literals, and the codes of the
// http.Status* constants used.
func adminSource(t *testing.T) (routes []string, statuses []int) {
	t.Helper()
	codes := map[string]int{}
	for c := 100; c < 600; c++ {
		if text := http.StatusText(c); text != "" {
			codes["Status"+strings.NewReplacer(" ", "", "-", "", "'", "").Replace(text)] = c
		}
	}
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join("admin", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				if r, ok := routeOf(n); ok {
					routes = append(routes, r)
				}
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok && x.Name == "http" && strings.HasPrefix(n.Sel.Name, "Status") &&
					n.Sel.Name != "StatusText" {
					c, ok := codes[n.Sel.Name]
					if !ok {
						t.Errorf("%s: http.%s: no code known for it; extend adminSource", fset.Position(n.Pos()), n.Sel.Name)
					}
					if ok && !slices.Contains(statuses, c) {
						statuses = append(statuses, c)
					}
				}
			}
			return true
		})
	}
	slices.Sort(statuses)
	return routes, statuses
}

// routeOf returns the path of a mux.Handle or mux.HandleFunc call whose
// pattern is a string literal ("GET /x" patterns give "/x").
func routeOf(call *ast.CallExpr) (string, bool) {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") || len(call.Args) != 2 {
		return "", false
	}
	lit, ok := call.Args[0].(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	pattern, err := strconv.Unquote(lit.Value)
	if err != nil {
		return "", false
	}
	if _, path, ok := strings.Cut(pattern, " "); ok {
		pattern = path
	}
	return pattern, true
}

// jsonFields returns the JSON names of t's fields and, recursively, of the
// structs they hold.
func jsonFields(t reflect.Type) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
			names = append(names, name)
		}
		names = append(names, jsonFields(f.Type)...)
	}
	return names
}

// metricNames returns every metric the balancer's registry exports but the
// Go runtime's go_* ones, with their labels: those its collector describes
// (exported even when they have no sample yet), and those a scrape shows.
func metricNames(t *testing.T) map[string][]string {
	t.Helper()
	log := hclog.NewNullLogger()
	sel, err := pool.NewSelector("round_robin")
	if err != nil {
		t.Fatal(err)
	}
	p := pool.New(sel, pool.OutlierOptions{}, log)
	m := admin.NewMetrics(p, supervisor.New(supervisor.Config{}, p, pool.CheckOptions{}, log))
	names := map[string][]string{}
	ch := make(chan *prometheus.Desc, 64)
	m.Describe(ch)
	close(ch)
	descRE := regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)
	for d := range ch {
		sm := descRE.FindStringSubmatch(d.String())
		if sm == nil {
			t.Fatalf("cannot read %s", d)
		}
		var labels []string
		if sm[2] != "" {
			labels = strings.Split(sm[2], ",")
		}
		names[sm[1]] = labels
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[1] == "TYPE" && !strings.HasPrefix(f[2], "go_") {
			if _, ok := names[f[2]]; !ok {
				names[f[2]] = nil
			}
		}
	}
	if len(names) < 10 {
		t.Fatalf("found only metrics %v", names)
	}
	return names
}
