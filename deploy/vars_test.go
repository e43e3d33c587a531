package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// root is the repository root, seen from this module.
const root = ".."

// goRuntimeVars are read by the Go runtime of either binary; the balancer
// sets both for its workers (docs/WORKERS.md).
var goRuntimeVars = []string{"GOMAXPROCS", "GOMEMLIMIT"}

// set is a set of variable names.
type set map[string]bool

func (s set) add(names ...string) set {
	for _, n := range names {
		s[n] = true
	}
	return s
}

func (s set) union(o set) set {
	u := set{}
	for n := range s {
		u[n] = true
	}
	for n := range o {
		u[n] = true
	}
	return u
}

func (s set) sorted() []string {
	var out []string
	for n := range s {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// goFiles parses the non-test Go files under dir (recursively when deep).
func goFiles(t *testing.T, dir string, deep bool) []*ast.File {
	t.Helper()
	var files []*ast.File
	fset := token.NewFileSet()
	err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != filepath.Join(root, dir) && (!deep || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files = append(files, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no Go file in %s", dir)
	}
	return files
}

// envTags collects the caarlos0/env names (`env:"NAME"`) of every struct
// field in files.
func envTags(files []*ast.File) set {
	names := set{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			field, ok := n.(*ast.Field)
			if !ok || field.Tag == nil {
				return true
			}
			tag, err := strconv.Unquote(field.Tag.Value)
			if err != nil {
				return true
			}
			if name, _, _ := strings.Cut(reflect.StructTag(tag).Get("env"), ","); name != "" {
				names[name] = true
			}
			return true
		})
	}
	return names
}

// envConsts collects the values of the string constants named Env* in
// files: the contract's variable names (shared/protocol).
func envConsts(files []*ast.File) set {
	names := set{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, id := range vs.Names {
				if !strings.HasPrefix(id.Name, "Env") || i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					v, _ := strconv.Unquote(lit.Value)
					names[v] = true
				}
			}
			return true
		})
	}
	return names
}

// balancerVars is every variable the balancer reads: its Config's tags.
func balancerVars(t *testing.T) set {
	t.Helper()
	return envTags(goFiles(t, "balancer", false))
}

// workerConfigVars is every variable the reference worker reads through
// its own Config (worker/ and its packages).
func workerConfigVars(t *testing.T) set {
	t.Helper()
	return envTags(goFiles(t, "worker", true))
}

// contractVars is every variable of the worker contract (shared/protocol),
// which the balancer sets for the workers it spawns, and the Go runtime's.
func contractVars(t *testing.T) set {
	t.Helper()
	return envConsts(goFiles(t, "shared/protocol", false)).add(goRuntimeVars...)
}

// workerVars is every variable a reference worker reads.
func workerVars(t *testing.T) set {
	t.Helper()
	return workerConfigVars(t).union(contractVars(t))
}

// balancerHandable is what may be handed to the balancer: its own
// variables, and the workers' (it passes its environment on to them), but
// not the contract's, which it sets per worker itself.
func balancerHandable(t *testing.T) set {
	t.Helper()
	own := balancerVars(t)
	h := own.union(workerConfigVars(t))
	for n := range contractVars(t) {
		if !own[n] {
			delete(h, n)
		}
	}
	return h
}

// unread lists the names in env that are not in known: misspelt or stale
// variables that the binary would silently ignore.
func unread(env []string, known set) []string {
	var bad []string
	for _, n := range env {
		if !known[n] {
			bad = append(bad, n)
		}
	}
	slices.Sort(bad)
	return bad
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The sets are read from the source: make sure they are what they should
// be, so a parse that finds nothing cannot pass every check.
func TestVariableSetsFromSource(t *testing.T) {
	b, w, c := balancerVars(t), workerConfigVars(t), contractVars(t)
	for _, n := range []string{"LISTEN_ADDR", "ADMIN_TOKEN", "MAX_WORKERS", "LOG_FILE", "LOG_MAX_SIZE_MB", "DB_MAX_CONNS"} {
		if !b[n] {
			t.Errorf("balancer variables %v lack %s", b.sorted(), n)
		}
	}
	for _, n := range []string{"WORKER_ADDR", "LOG_LEVEL"} {
		if !w[n] {
			t.Errorf("worker variables %v lack %s", w.sorted(), n)
		}
	}
	for _, n := range []string{"WORKER_SOCKET", "WORKER_ID", "WORKER_REPORT_SOCKET", "HEALTH_PATH", "GOMEMLIMIT"} {
		if !c[n] {
			t.Errorf("contract variables %v lack %s", c.sorted(), n)
		}
	}
	if h := balancerHandable(t); h["WORKER_SOCKET"] || !h["LOG_LEVEL"] {
		t.Errorf("handable to the balancer: %v", h.sorted())
	}
	if bad := unread([]string{"MAX_WORKERS", "MAX_WORKRES"}, b); !slices.Equal(bad, []string{"MAX_WORKRES"}) {
		t.Errorf("a misspelt variable is not caught: %v", bad)
	}
}
