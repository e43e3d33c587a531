package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// tools holds absolute paths of the programs the harness runs.
type tools struct {
	balancer, worker     string // built from this module
	nginx, haproxy, wrk  string // from Debian's packages
	nginxVer, haproxyVer string
	wrkVer               string
}

// debPackages maps each external tool to the Debian package providing it.
var debPackages = map[string]string{"nginx": "nginx-light", "haproxy": "haproxy", "wrk": "wrk"}

// lookTool finds a program on PATH or in the sbin directories, which a
// non-root PATH often lacks.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// neededTools lists the external programs the chosen systems and load
// generator need: none for -load go with the balancer and direct alone.
func neededTools(cfg config) []string {
	var need []string
	if cfg.load != loadGo {
		need = append(need, "wrk")
	}
	for _, s := range cfg.systems {
		if s == sysNginx || s == sysHAProxy {
			need = append(need, s)
		}
	}
	if cfg.wrkCPU != "" {
		need = append(need, "taskset")
	}
	return need
}

// ensureTools finds the external programs, installing the missing ones with
// apt-get when running as root.
func ensureTools(ctx context.Context, cfg config) (map[string]string, error) {
	found, missing := map[string]string{}, []string{}
	for _, name := range neededTools(cfg) {
		if p, err := lookTool(name); err == nil {
			found[name] = p
		} else {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return found, nil
	}
	if err := aptInstall(ctx, missing); err != nil {
		return nil, err
	}
	for _, name := range missing {
		p, err := lookTool(name)
		if err != nil {
			return nil, fmt.Errorf("%s still missing after apt-get install", name)
		}
		found[name] = p
	}
	return found, nil
}

// aptInstall installs the Debian packages providing names, once, as root.
func aptInstall(ctx context.Context, names []string) error {
	var pkgs []string
	for _, n := range names {
		if pkg, ok := debPackages[n]; ok {
			pkgs = append(pkgs, pkg)
		} else {
			pkgs = append(pkgs, "util-linux") // taskset
		}
	}
	hint := "apt-get install -y " + strings.Join(pkgs, " ")
	if os.Geteuid() != 0 {
		return fmt.Errorf("missing %s; not root, so install them first: sudo %s", strings.Join(names, ", "), hint)
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("missing %s and no apt-get to install them (%s)", strings.Join(names, ", "), hint)
	}
	fmt.Fprintf(os.Stderr, "bench: missing %s; running apt-get update && %s\n", strings.Join(names, ", "), hint)
	for _, args := range [][]string{{"update"}, append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("apt-get %s: %w", args[0], err)
		}
	}
	return nil
}

// buildBinaries runs `go build -o bin/ ./balancer ./worker` in the module.
func buildBinaries(ctx context.Context, root, binDir string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", binDir+string(os.PathSeparator), "./balancer", "./worker")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build ./balancer ./worker: %w", err)
	}
	return nil
}

// moduleRoot returns the nearest directory upward holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod here or above: run from the repository")
		}
		dir = parent
	}
}

// resolveTools finds every program the run needs, building and installing
// as configured.
func resolveTools(ctx context.Context, cfg config, root string) (tools, error) {
	binDir := cfg.binDir
	if !filepath.IsAbs(binDir) {
		binDir = filepath.Join(root, binDir)
	}
	if cfg.build {
		if err := buildBinaries(ctx, root, binDir); err != nil {
			return tools{}, err
		}
	}
	t := tools{balancer: filepath.Join(binDir, "balancer"), worker: filepath.Join(binDir, "worker")}
	need := []string{t.worker}
	if slices.Contains(cfg.systems, sysBalancer) {
		need = append(need, t.balancer)
	}
	for _, p := range need {
		if _, err := os.Stat(p); err != nil {
			return tools{}, fmt.Errorf("%s: %w (build with make build, or drop -build=false)", p, err)
		}
	}
	ext, err := ensureTools(ctx, cfg)
	if err != nil {
		return tools{}, err
	}
	t.nginx, t.haproxy, t.wrk = ext["nginx"], ext["haproxy"], ext["wrk"]
	t.nginxVer, t.haproxyVer, t.wrkVer = toolVersion(t.nginx, "-v"), toolVersion(t.haproxy, "-v"), toolVersion(t.wrk, "-v")
	return t, nil
}

// toolVersion returns the first line a program prints for its version flag
// (wrk exits non-zero after printing it, so the status is ignored).
func toolVersion(path, flag string) string {
	if path == "" {
		return ""
	}
	out, _ := exec.Command(path, flag).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}
