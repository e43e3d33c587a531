// Package deploy holds no code: its tests check the deployment files at the
// repository root (Dockerfile.balancer, Dockerfile.worker, .dockerignore,
// the compose files, configs/*.example, quick-start.sh) and the README's
// settings table against what the two binaries read. It is a module of its
// own so that compose-go and buildkit never weigh on the binaries' build;
// the variables each binary reads are taken from the main module's source
// (go/parser), not imported.
package deploy
