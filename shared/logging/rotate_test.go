package logging

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRotatingKeepsBoundedFiles(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "b.log")
	r, err := OpenRotating(name)
	if err != nil {
		t.Fatal(err)
	}
	r.MaxBytes, r.Keep = 100, 2
	line := []byte(strings.Repeat("x", 39) + "\n")
	for range 20 {
		if _, err := r.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Fatalf("files %v, want b.log, b.log.1, b.log.2", entries)
	}
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		if len(b) > 100 || len(b) == 0 || !bytes.HasSuffix(b, []byte("\n")) {
			t.Fatalf("%s holds %d bytes, want whole lines within 100", e.Name(), len(b))
		}
	}
}

func TestNewRejectsBadSettings(t *testing.T) {
	for _, o := range []Options{{Level: "loud"}, {Format: "xml"}} {
		if _, err := New(o); err == nil {
			t.Fatalf("New(%+v) accepted", o)
		}
	}
	var buf bytes.Buffer
	log, err := New(Options{Name: "x", Level: "warn", Format: "json", Output: &buf})
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "k", 1)
	if s := buf.String(); strings.Contains(s, "hidden") || !strings.Contains(s, `"@message":"shown"`) {
		t.Fatalf("output %q", s)
	}
}
