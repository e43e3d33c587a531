package deploy

import (
	"os/exec"
	"strings"
	"testing"
)

// Issue 12: the Makefile's deployment targets run the commands the docs
// give, on files that exist, and make test runs this module's tests.
func TestMakefileTargets(t *testing.T) {
	for target, want := range map[string][]string{
		"docker-build": {
			"docker build -f Dockerfile.balancer --build-arg VERSION=v1.2.3 -t procbal/balancer:v1.2.3 .",
			"docker build -f Dockerfile.worker --build-arg VERSION=v1.2.3 -t procbal/worker:v1.2.3 .",
		},
		"compose-up":        {"VERSION=v1.2.3 docker compose up --build"},
		"compose-prod-up":   {"VERSION=v1.2.3 docker compose -f docker-compose.prod.yml --env-file configs/.env.prod.example up -d --build"},
		"compose-prod-logs": {"docker compose -f docker-compose.prod.yml --env-file configs/.env.prod.example logs -f"},
		"test":              {"cd deploy && go vet ./... && go test"},
	} {
		cmd := exec.Command("make", "-n", "-C", root, target, "VERSION=v1.2.3", "PROD_ENV=configs/.env.prod.example", "GO=go")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("make -n %s: %v\n%s", target, err, out)
			continue
		}
		for _, w := range want {
			if !strings.Contains(string(out), w) {
				t.Errorf("make -n %s:\n%s\nwant %q", target, out, w)
			}
		}
	}
}
