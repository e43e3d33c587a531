package deploy

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/docker/go-units"
)

var envExamples = []string{"configs/.env.example", "configs/.env.prod.example"}

var (
	assignment = regexp.MustCompile(`^#?\s*([A-Z][A-Z0-9_]*)=(.*)$`)
	composeRef = regexp.MustCompile(`\$\{([A-Z][A-Z0-9_]*)`)
)

// readVars is every variable either binary reads.
func readVars(t *testing.T) set {
	t.Helper()
	return balancerVars(t).union(workerVars(t))
}

// composeVars is every variable the given compose files interpolate.
func composeVars(t *testing.T, files ...string) set {
	t.Helper()
	vars := set{}
	for _, f := range files {
		for _, m := range composeRef.FindAllStringSubmatch(readFile(t, f), -1) {
			vars[m[1]] = true
		}
	}
	return vars
}

// Issue 12: both env examples document every variable the two binaries
// read, and name no other variable than those and the compose files'.
func TestEnvExamplesDocumentEveryVariable(t *testing.T) {
	known := readVars(t).union(composeVars(t, "docker-compose.yml", "docker-compose.prod.yml", "docker-compose.horizontal.yml"))
	for _, f := range envExamples {
		text := readFile(t, f)
		for _, v := range readVars(t).sorted() {
			if !regexp.MustCompile(`\b` + v + `\b`).MatchString(text) {
				t.Errorf("%s does not document %s", f, v)
			}
		}
		for i, line := range strings.Split(text, "\n") {
			if m := assignment.FindStringSubmatch(line); m != nil && !known[m[1]] {
				t.Errorf("%s:%d: %s is read by neither binary nor any compose file", f, i+1, m[1])
			}
		}
	}
	text := readFile(t, "configs/.env.prod.example")
	for _, v := range composeVars(t, "docker-compose.prod.yml", "docker-compose.horizontal.yml").sorted() {
		if !strings.Contains(text, v+"=") {
			t.Errorf("configs/.env.prod.example does not document %s, which the prod compose files use", v)
		}
	}
	text = readFile(t, "configs/.env.example")
	for _, v := range composeVars(t, "docker-compose.yml").sorted() {
		if !strings.Contains(text, v+"=") {
			t.Errorf("configs/.env.example does not document %s, which docker-compose.yml uses", v)
		}
	}
}

// preset is one of the traffic presets, as the issue sizes them.
type preset struct {
	name                string
	workers, cpus       int
	memory              string
	workerMemoryLimitMB int
}

var presets = []preset{
	{"low", 2, 2, "4G", 1024},
	{"medium", 4, 4, "8G", 2048},
	{"high", 8, 8, "16G", 3072},
}

func (p preset) vars() map[string]string {
	return map[string]string{
		"MAX_WORKERS":            strconv.Itoa(p.workers),
		"BACKEND_CPU_LIMIT":      strconv.Itoa(p.cpus),
		"BACKEND_MEMORY_LIMIT":   p.memory,
		"WORKER_MEMORY_LIMIT_MB": strconv.Itoa(p.workerMemoryLimitMB),
	}
}

// presetBlock is the commented block that follows "# <name>:" in an env
// example, uncommented.
func presetBlock(t *testing.T, text, name string) map[string]string {
	t.Helper()
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "# "+name+":") {
			continue
		}
		block := map[string]string{}
		for _, l := range lines[i+1:] {
			m := assignment.FindStringSubmatch(l)
			if m == nil || !strings.HasPrefix(l, "# ") {
				break
			}
			block[m[1]] = m[2]
		}
		return block
	}
	t.Fatalf("no %q preset", name)
	return nil
}

// Issue 12: the three presets are in both env examples as commented
// blocks; uncommented, each sizes the balancer and its container as the
// issue says; with none, the prod stack runs the low one.
func TestTrafficPresets(t *testing.T) {
	base := readFile(t, "configs/.env.prod.example")
	defaults := mustLoad(t, prodStack, secrets...).Services["balancer"]
	for _, p := range presets {
		for _, f := range envExamples {
			if got := presetBlock(t, readFile(t, f), p.name); !maps.Equal(got, p.vars()) {
				t.Errorf("%s: %s preset %v, want %v", f, p.name, got, p.vars())
			}
		}
		var uncommented strings.Builder
		for k, v := range p.vars() {
			fmt.Fprintf(&uncommented, "%s=%s\n", k, v)
		}
		envFile := filepath.Join(t.TempDir(), ".env.prod")
		if err := os.WriteFile(envFile, []byte(base+"\n"+uncommented.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		b := mustLoad(t, stack{prodStack.files, envFile}, secrets...).Services["balancer"]
		checkPreset(t, p, b.Environment, float32(b.Deploy.Resources.Limits.NanoCPUs), int64(b.Deploy.Resources.Limits.MemoryBytes))
		if p.name == "low" {
			checkPreset(t, p, defaults.Environment, float32(defaults.Deploy.Resources.Limits.NanoCPUs), int64(defaults.Deploy.Resources.Limits.MemoryBytes))
		}
	}
}

func checkPreset(t *testing.T, p preset, env map[string]*string, nanoCPUs float32, memory int64) {
	t.Helper()
	mem, _ := units.RAMInBytes(p.memory)
	for _, k := range []string{"MAX_WORKERS", "WORKER_MEMORY_LIMIT_MB"} {
		if v := env[k]; v == nil || *v != p.vars()[k] {
			t.Errorf("%s preset: balancer %s=%v, want %s", p.name, k, v, p.vars()[k])
		}
	}
	if nanoCPUs != float32(p.cpus) || memory != mem {
		t.Errorf("%s preset: limits %v CPUs, %d bytes, want %d, %s", p.name, nanoCPUs, memory, p.cpus, p.memory)
	}
}
