package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testParams are proxy settings for two workers in dir.
func testParams(dir string) proxyParams {
	return proxyParams{Dir: dir, Listen: "127.0.0.1:1", Procs: "1", Root: os.Geteuid() == 0,
		Socks:      []string{filepath.Join(dir, "w1.sock"), filepath.Join(dir, "w2.sock")},
		BodyBuffer: nginxBodyBuffer, MaxBody: nginxMaxBody}
}

// TestNginxConf checks the generated configuration and that nginx accepts
// it.
func TestNginxConf(t *testing.T) {
	dir := t.TempDir()
	conf, err := writeConfig(nginxConf, dir, "nginx.conf", testParams(dir))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(conf)
	for _, want := range []string{"daemon off;", "server unix:" + dir + "/w2.sock;", "keepalive 64;",
		"proxy_http_version 1.1;", "proxy_set_header Upgrade $http_upgrade;",
		"proxy_set_header Connection $connection_upgrade;", "default upgrade;", "''      '';", "access_log off;",
		"client_body_buffer_size 64k;", "client_max_body_size 32m;"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("nginx.conf lacks %q", want)
		}
	}
	nginx, err := lookTool("nginx")
	if err != nil {
		t.Fatalf("nginx is not installed (make test installs nginx-light): %v", err)
	}
	out, err := exec.Command(nginx, "-t", "-c", conf, "-p", dir, "-e", filepath.Join(dir, "error.log")).CombinedOutput()
	if err != nil {
		t.Errorf("nginx -t: %v\n%s", err, out)
	}
}

// TestHAProxyConf checks the generated configuration and that HAProxy
// accepts it.
func TestHAProxyConf(t *testing.T) {
	dir := t.TempDir()
	conf, err := writeConfig(haproxyConf, dir, "haproxy.cfg", testParams(dir))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(conf)
	for _, want := range []string{"nbthread 1", "http-reuse always", "option http-keep-alive", "timeout tunnel 1h",
		"server w2 unix@" + dir + "/w2.sock"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("haproxy.cfg lacks %q", want)
		}
	}
	haproxy, err := lookTool("haproxy")
	if err != nil {
		t.Fatalf("haproxy is not installed (make test installs it): %v", err)
	}
	if out, err := exec.Command(haproxy, "-c", "-f", conf).CombinedOutput(); err != nil {
		t.Errorf("haproxy -c: %v\n%s", err, out)
	}
}
