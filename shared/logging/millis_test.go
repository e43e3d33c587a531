package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// JSON logs give durations in milliseconds, under the key with "_ms",
// through With and Named loggers too; text logs keep Go's form.
func TestJSONDurationsInMillis(t *testing.T) {
	var out bytes.Buffer
	l, err := New(Options{Name: "t", Format: "json", Output: &out})
	if err != nil {
		t.Fatal(err)
	}
	l.Named("sub").With("grace", 2*time.Second).Info("waited", "after", 1500*time.Microsecond, "rtt_ms", 3*time.Millisecond, "n", 3)
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("%q: %v", out.String(), err)
	}
	for k, want := range map[string]float64{"after_ms": 1.5, "grace_ms": 2000, "rtt_ms": 3, "n": 3} {
		if m[k] != want {
			t.Errorf("%s = %v, want %v in %s", k, m[k], want, out.String())
		}
	}
	if _, ok := m["after"]; ok {
		t.Errorf("the nanosecond field is still there: %s", out.String())
	}

	out.Reset()
	l, _ = New(Options{Name: "t", Format: "text", Output: &out})
	l.Info("waited", "after", 1500*time.Millisecond)
	if !strings.Contains(out.String(), "after=1.5s") {
		t.Errorf("text log: %q, want after=1.5s", out.String())
	}
}
