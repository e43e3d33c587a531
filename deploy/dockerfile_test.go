package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// dockerImage is what a Dockerfile builds, as buildkit reads it.
type dockerImage struct {
	stages     []instructions.Stage
	final      instructions.Stage
	entrypoint string   // the final stage's ENTRYPOINT program
	user       string   // the final stage's last USER
	health     []string // the final stage's HEALTHCHECK test
	binaries   []string // paths the final stage copies from other stages
}

// image parses a Dockerfile at the repository root with buildkit.
func image(t *testing.T, name string) dockerImage {
	t.Helper()
	f, err := os.Open(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(stages) == 0 {
		t.Fatalf("%s: no stage", name)
	}
	img := dockerImage{stages: stages, final: stages[len(stages)-1]}
	for _, c := range img.final.Commands {
		switch c := c.(type) {
		case *instructions.EntrypointCommand:
			img.entrypoint = c.CmdLine[0]
		case *instructions.UserCommand:
			img.user = c.User
		case *instructions.HealthCheckCommand:
			img.health = c.Health.Test
		case *instructions.CopyCommand:
			if c.From != "" {
				for _, src := range c.SourcePaths {
					img.binaries = append(img.binaries, filepath.Join(c.DestPath, filepath.Base(src)))
				}
			}
		}
	}
	return img
}

// buildRun is the build stage's `go build` command line.
func (img dockerImage) buildRun() (string, instructions.Stage) {
	for _, st := range img.stages[:len(img.stages)-1] {
		for _, c := range st.Commands {
			if r, ok := c.(*instructions.RunCommand); ok && strings.Contains(strings.Join(r.CmdLine, " "), "go build") {
				return strings.Join(r.CmdLine, " "), st
			}
		}
	}
	return "", instructions.Stage{}
}

func hasArg(st instructions.Stage, name string) bool {
	for _, c := range st.Commands {
		if a, ok := c.(*instructions.ArgCommand); ok && slices.ContainsFunc(a.Args, func(kv instructions.KeyValuePairOptional) bool { return kv.Key == name }) {
			return true
		}
	}
	return false
}

var goPackages = regexp.MustCompile(`\s(\./[\w./-]+)`)

// Issue 12: both images build in a Go stage with cgo off and the version
// stamped in, run as a non-root user from a minimal image, and probe
// themselves with the binary's healthcheck subcommand (no shell, no curl).
func TestDockerfiles(t *testing.T) {
	for name, want := range map[string][]string{
		"Dockerfile.balancer": {"balancer", "worker"},
		"Dockerfile.worker":   {"worker"},
	} {
		t.Run(name, func(t *testing.T) {
			img := image(t, name)
			if len(img.stages) < 2 || !strings.HasPrefix(img.stages[0].BaseName, "golang:") {
				t.Errorf("want a golang build stage and a runtime stage, got %d stages", len(img.stages))
			}
			if base := img.final.BaseName; !strings.Contains(base, "distroless/static") && base != "scratch" {
				t.Errorf("runtime image %q, want distroless static or scratch", base)
			}
			if u, _, _ := strings.Cut(img.user, ":"); u == "" || u == "root" || u == "0" {
				t.Errorf("USER %q, want a non-root user", img.user)
			}
			run, st := img.buildRun()
			if !strings.Contains(run, "CGO_ENABLED=0") || !strings.Contains(run, "-X main.version=${VERSION}") || !hasArg(st, "VERSION") {
				t.Errorf("build: %q, want CGO_ENABLED=0 and -X main.version=${VERSION} from ARG VERSION", run)
			}
			var built []string
			for _, m := range goPackages.FindAllStringSubmatch(run, -1) {
				built = append(built, filepath.Base(m[1]))
			}
			if !slices.Equal(built, want) {
				t.Errorf("builds %v, want %v", built, want)
			}
			var copied []string
			for _, b := range img.binaries {
				copied = append(copied, filepath.Base(b))
				if filepath.Dir(b) != filepath.Dir(img.entrypoint) {
					t.Errorf("%s is not beside the entrypoint %s (the balancer spawns the worker beside itself)", b, img.entrypoint)
				}
			}
			if slices.Sort(copied); !slices.Equal(copied, want) || filepath.Base(img.entrypoint) != want[0] {
				t.Errorf("image holds %v with entrypoint %q, want %v", copied, img.entrypoint, want)
			}
			if hc := []string{"CMD", img.entrypoint, "healthcheck"}; !slices.Equal(img.health, hc) {
				t.Errorf("HEALTHCHECK %v, want %v", img.health, hc)
			}
			checkCopySources(t, img, built)
		})
	}
}

// checkCopySources: every COPY from the build context names something that
// exists in the repository and that .dockerignore lets through, and the
// sources hold every package of this module that the binaries import.
func checkCopySources(t *testing.T, img dockerImage, pkgs []string) {
	t.Helper()
	ignored := dockerignore(t)
	var dirs []string
	for _, st := range img.stages {
		for _, c := range st.Commands {
			cp, ok := c.(*instructions.CopyCommand)
			if !ok || cp.From != "" {
				continue
			}
			for _, src := range cp.SourcePaths {
				src = filepath.Clean(src)
				if _, err := os.Stat(filepath.Join(root, src)); err != nil {
					t.Errorf("COPY %s: %v", src, err)
				}
				if ignored(src) {
					t.Errorf("COPY %s: .dockerignore leaves it out of the context", src)
				}
				dirs = append(dirs, src)
			}
		}
	}
	var args []string
	for _, p := range pkgs {
		args = append(args, "./"+p)
	}
	for _, dir := range moduleDeps(t, args...) {
		if !slices.ContainsFunc(dirs, func(d string) bool { return dir == d || strings.HasPrefix(dir, d+"/") }) {
			t.Errorf("the build imports %s, which no COPY brings into the image", dir)
		}
		if ignored(dir) {
			t.Errorf(".dockerignore leaves out %s, which the build imports", dir)
		}
	}
}

// moduleDeps lists the directories (relative to the root) of this
// repository's packages that pkgs import, themselves included.
func moduleDeps(t *testing.T, pkgs ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-e", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}"}, pkgs...)...)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v", pkgs, err)
	}
	abs, _ := filepath.Abs(root)
	var dirs []string
	for _, d := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(abs, d)
		if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, rel)
	}
	if len(dirs) == 0 {
		t.Fatalf("go list %v found no package", pkgs)
	}
	return dirs
}

// dockerignore reports whether the build context leaves out a path.
func dockerignore(t *testing.T) func(path string) bool {
	t.Helper()
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	return func(path string) bool {
		excluded, err := pm.MatchesOrParentMatches(filepath.ToSlash(path))
		if err != nil {
			t.Fatal(err)
		}
		return excluded
	}
}

// Issue 12: the context holds the sources and nothing that should not
// travel: history, binaries, this test module, local env files, tests.
func TestDockerignore(t *testing.T) {
	ignored := dockerignore(t)
	for _, p := range []string{".git", "bin/balancer", "deploy/go.mod", "configs/.env.prod", "configs/.env", "docs/ADMIN.md", "balancer/config_test.go", "balancer/testdata/x"} {
		if !ignored(p) {
			t.Errorf("%s is sent to the Docker build", p)
		}
	}
	for _, p := range []string{"go.mod", "go.sum", "balancer/main.go", "worker/main.go", "shared/protocol/protocol.go"} {
		if ignored(p) {
			t.Errorf("%s is left out of the Docker build", p)
		}
	}
}
