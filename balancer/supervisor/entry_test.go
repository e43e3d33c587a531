package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseEntry(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in, addr string
		weight   int
		name     bool
	}{
		{"127.0.0.2:8080", "127.0.0.2:8080", 1, false},
		{" 127.0.0.2:08080=3 ", "127.0.0.2:8080", 3, false},
		{"[::1]:80", "[::1]:80", 1, false},
		{"[0:0::1]:80=1000", "[::1]:80", 1000, false},
		{"Workers.Default.svc.cluster.local:8080=2", "workers.default.svc.cluster.local:8080", 2, true},
		{"_http._tcp.x:80", "_http._tcp.x:80", 1, true},
		{"worker.:80", "worker.:80", 1, true},
		{"unix:/run/w.sock=5", "unix:/run/w.sock", 5, false},
	} {
		e, err := ParseEntry(c.in)
		if err != nil || e.Address != c.addr || e.Weight != c.weight || e.IsName() != c.name {
			t.Errorf("ParseEntry(%q) = %+v (name %v), %v; want %s weight %d name %v", c.in, e, e.IsName(), err, c.addr, c.weight, c.name)
		}
	}
	for _, in := range []string{
		"", "nohost", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:http", ":80",
		"127.0.0.1:80=0", "127.0.0.1:80=1001", "127.0.0.1:80=x", "127.0.0.1:80=", "127.0.0.1:80=1=2",
		"::1:80", "[::1]", "[fe80::zz]:80", "0.0.0.0:80", "[::]:80", "224.0.0.1:80", "300.1.1.1:80", "1.2.3:80",
		"bad host:80", "http://h:80", "-lead.test:80", "a..b:80", strings.Repeat("a", 64) + ".test:80",
		"unix:relative.sock", "unix:/" + strings.Repeat("x", 120),
	} {
		if e, err := ParseEntry(in); err == nil {
			t.Errorf("ParseEntry(%q) = %+v, want an error", in, e)
		} else if in != "" && !strings.Contains(err.Error(), strings.TrimSpace(in)) {
			t.Errorf("ParseEntry(%q): %v does not name the entry", in, err)
		}
	}
	if _, err := ParseEntries([]string{"127.0.0.2:80", "127.0.0.2:080=2"}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a duplicate address: %v", err)
	}
}

// The file is replaced whole through a temporary file, leaves none behind,
// and reads back as written; a bad line is named by its number.
func TestUpstreamsFileRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "upstreams")
	if _, exists, err := ReadUpstreamsFile(path); exists || err != nil {
		t.Fatalf("a missing file: exists %v, %v", exists, err)
	}
	want, _ := ParseEntries([]string{"127.0.0.2:80=3", "w.test:8080", "unix:/run/w.sock"})
	for range 2 {
		if err := WriteUpstreamsFile(path, want); err != nil {
			t.Fatal(err)
		}
	}
	got, exists, err := ReadUpstreamsFile(path)
	if err != nil || !exists || !sameEntries(got, want) {
		t.Fatalf("read back %+v, %v, %v; want %+v", got, exists, err, want)
	}
	files, _ := os.ReadDir(dir)
	if len(files) != 1 {
		t.Fatalf("files left in the directory: %v", files)
	}
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), "#") || !strings.Contains(string(b), "\n127.0.0.2:80=3\nw.test:8080\n") {
		t.Fatalf("file:\n%s", b)
	}
	if err := os.WriteFile(path, []byte("# c\n\n127.0.0.2:80\nbad entry\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadUpstreamsFile(path); err == nil || !strings.Contains(err.Error(), path+":4:") {
		t.Fatalf("a bad line: %v", err)
	}
}
