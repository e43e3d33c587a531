package logging

import (
	"bytes"
	"strings"
	"testing"
)

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
