package supervisor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/procbal/procbal/balancer/pool"
)

// Entry is one remote upstream as UPSTREAMS, UPSTREAMS_FILE or POST
// /admin/upstreams names it: an address ("host:port" with an IPv4 or
// bracketed IPv6 address, "name:port" for every address a DNS name
// resolves to, or "unix:/path") and a weight.
type Entry struct {
	// Address is the entry's address in canonical form: IP addresses as
	// netip writes them ("[::1]:80"), DNS names in lower case.
	Address string
	// Weight is the share of requests of each of its upstreams, 1 to
	// pool.MaxWeight.
	Weight int
	// Host and Port split a TCP address; Host is empty for unix sockets.
	Host, Port string
}

// IsName reports whether the entry is a DNS name, resolved again while it
// is in use.
func (e Entry) IsName() bool {
	if e.Host == "" {
		return false
	}
	_, err := netip.ParseAddr(e.Host)
	return err != nil
}

// String is the entry as UPSTREAMS and UPSTREAMS_FILE write it: the
// address, and "=weight" when the weight is not 1.
func (e Entry) String() string {
	if e.Weight > 1 {
		return e.Address + "=" + strconv.Itoa(e.Weight)
	}
	return e.Address
}

// maxUnixPath is the longest unix socket path the kernel takes.
const maxUnixPath = 107

// ParseEntry reads one entry, "address" or "address=weight". Its errors
// name the entry.
func ParseEntry(s string) (Entry, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Entry{}, errors.New(`empty entry (two commas in a row, or one at an end?)`)
	}
	addr, weight := s, 1
	if i := strings.LastIndexByte(s, '='); i >= 0 {
		addr = s[:i]
		w, err := strconv.Atoi(s[i+1:])
		if err != nil || w < 1 || w > pool.MaxWeight {
			return Entry{}, fmt.Errorf("%q: the weight after = must be an integer in [1, %d]", s, pool.MaxWeight)
		}
		weight = w
	}
	e, err := parseAddress(addr)
	if err != nil {
		return Entry{}, fmt.Errorf("%q: %w", s, err)
	}
	e.Weight = weight
	return e, nil
}

// parseAddress checks and canonicalises an entry's address.
func parseAddress(a string) (Entry, error) {
	if p, ok := strings.CutPrefix(a, "unix:"); ok {
		switch {
		case !filepath.IsAbs(p):
			return Entry{}, errors.New("a unix socket path must be absolute (unix:/path)")
		case len(p) > maxUnixPath:
			return Entry{}, fmt.Errorf("a unix socket path is at most %d bytes", maxUnixPath)
		}
		return Entry{Address: "unix:" + filepath.Clean(p)}, nil
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" {
		return Entry{}, errors.New("want host:port, [IPv6]:port, name:port or unix:/path")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return Entry{}, fmt.Errorf("bad port %q (want 1 to 65535)", port)
	}
	port = strconv.Itoa(n)
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.IsUnspecified() || ip.IsMulticast() {
			return Entry{}, fmt.Errorf("%s is not an address to connect to", host)
		}
		return Entry{Address: netip.AddrPortFrom(ip, uint16(n)).String(), Host: ip.String(), Port: port}, nil
	}
	if strings.Contains(host, ":") {
		return Entry{}, fmt.Errorf("bad IPv6 address %q", host)
	}
	if !validName(host) {
		return Entry{}, fmt.Errorf("%q is neither an IP address nor a DNS name", host)
	}
	host = strings.ToLower(host)
	return Entry{Address: net.JoinHostPort(host, port), Host: host, Port: port}, nil
}

// validName reports whether host is a DNS host name: dot-separated labels
// of letters, digits, hyphens and underscores (as SRV-style names have),
// none empty or over 63 bytes, none starting or ending with a hyphen, 253
// bytes at most, one trailing dot allowed; not all digits and dots (a
// malformed IPv4 address).
func validName(host string) bool {
	host = strings.TrimSuffix(host, ".")
	if host == "" || len(host) > 253 || strings.Trim(host, "0123456789.") == "" {
		return false
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			ok := c == '-' || c == '_' || (c >= '0' && c <= '9') || (c|0x20 >= 'a' && c|0x20 <= 'z')
			if !ok {
				return false
			}
		}
	}
	return true
}

// ParseEntries reads UPSTREAMS entries; the error names the first bad one.
func ParseEntries(list []string) ([]Entry, error) {
	out := make([]Entry, 0, len(list))
	seen := map[string]bool{}
	for _, s := range list {
		e, err := ParseEntry(s)
		if err != nil {
			return nil, err
		}
		if seen[e.Address] {
			return nil, fmt.Errorf("%q: %s is listed twice", s, e.Address)
		}
		seen[e.Address] = true
		out = append(out, e)
	}
	return out, nil
}

// ReadUpstreamsFile reads an UPSTREAMS_FILE: one entry a line, as in
// UPSTREAMS; blank lines and lines starting with # are skipped. exists is
// false, with no error, when the file does not exist.
func ReadUpstreamsFile(path string) (entries []Entry, exists bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	var list []string
	var lines []int
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		list, lines = append(list, line), append(lines, n)
	}
	if err := sc.Err(); err != nil {
		return nil, true, fmt.Errorf("%s: %w", path, err)
	}
	for i, s := range list {
		if _, err := ParseEntry(s); err != nil {
			return nil, true, fmt.Errorf("%s:%d: %w", path, lines[i], err)
		}
	}
	entries, err = ParseEntries(list)
	if err != nil {
		return nil, true, fmt.Errorf("%s: %w", path, err)
	}
	return entries, true, nil
}

// upstreamsFileHeader opens every UPSTREAMS_FILE the balancer writes.
const upstreamsFileHeader = "# Remote upstreams of the balancer, one a line (address or address=weight),\n" +
	"# rewritten by it on every change through POST and DELETE /admin/upstreams.\n"

// WriteUpstreamsFile replaces path with entries, atomically: a temporary
// file in the same directory is written, synced and renamed over path,
// and the directory is synced, so a crash leaves the old set or the new
// one, never a mix or an empty file.
func WriteUpstreamsFile(path string, entries []Entry) error {
	var b strings.Builder
	b.WriteString(upstreamsFileHeader)
	for _, e := range entries {
		b.WriteString(e.String())
		b.WriteByte('\n')
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing left to remove
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
