package main

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"

	"github.com/procbal/procbal/balancer/supervisor"
)

// remotes reports whether the balancer has remote upstreams, or may get
// them through the API with a persisted set (UPSTREAMS_FILE).
func (c *Config) remotes() bool { return len(c.Upstreams) > 0 || c.UpstreamsFile != "" }

// checkRemotes checks UPSTREAMS (each entry host:port, [IPv6]:port,
// name:port or unix:/path, optionally =weight), DNS_SERVER (IP addresses,
// port 53 by default) and UPSTREAMS_FILE (a file in the same syntax, one
// entry a line, in a directory the balancer can write to).
func (c *Config) checkRemotes() error {
	if _, err := supervisor.ParseEntries(c.Upstreams); err != nil {
		return fmt.Errorf("UPSTREAMS: %w", err)
	}
	servers, err := dnsServers(c.DNSServer)
	if err != nil {
		return fmt.Errorf("DNS_SERVER: %w", err)
	}
	c.DNSServer = servers
	if c.UpstreamsFile == "" {
		return nil
	}
	if _, _, err := supervisor.ReadUpstreamsFile(c.UpstreamsFile); err != nil {
		return fmt.Errorf("UPSTREAMS_FILE: %w", err)
	}
	if err := writable(filepath.Dir(c.UpstreamsFile)); err != nil {
		return fmt.Errorf("UPSTREAMS_FILE: %s cannot be rewritten there: %w", c.UpstreamsFile, err)
	}
	return nil
}

// dnsServers canonicalises DNS_SERVER's entries to ip:port.
func dnsServers(list []string) ([]string, error) {
	out := make([]string, 0, len(list))
	for _, s := range list {
		host, port := s, "53"
		if h, p, err := net.SplitHostPort(s); err == nil {
			host, port = h, p
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return nil, fmt.Errorf("%q: want an IP address, optionally with :port ([IPv6]:port), not a name", s)
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%q: bad port", s)
		}
		out = append(out, netip.AddrPortFrom(ip, uint16(n)).String())
	}
	return out, nil
}

// writable checks that a temporary file can be made in dir, as the atomic
// rewrite of UPSTREAMS_FILE needs.
func writable(dir string) error {
	f, err := os.CreateTemp(dir, ".procbal-check-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}
