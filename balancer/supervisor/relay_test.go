package supervisor

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestRelayLevelsFieldsAndLineBound(t *testing.T) {
	var out bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Debug, JSONFormat: true})
	long := strings.Repeat("y", maxLine*3)
	in := `{"@level":"error","@message":"boom","@timestamp":"x","code":7}` + "\n" +
		"plain text\r\n" + long + "\nafter the long one\n" + "no newline at the end"
	relay(io.NopCloser(strings.NewReader(in)), log, "stderr", nil)
	got := out.String()
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines relayed, want 5:\n%s", len(lines), got)
	}
	for i, want := range []string{
		`"@level":"error","@message":"boom"`, `"@message":"plain text"`, `"truncated":true`,
		`"@message":"after the long one"`, `"@message":"no newline at the end"`,
	} {
		if !strings.Contains(lines[i], want) {
			t.Fatalf("line %d = %s, want %s", i, lines[i], want)
		}
	}
	if !strings.Contains(lines[0], `"code":7`) {
		t.Fatalf("fields lost: %s", lines[0])
	}
	if len(lines[2]) > maxLine+512 {
		t.Fatalf("long line relayed with %d bytes, bound is %d", len(lines[2]), maxLine)
	}
}

func TestBackoffGrowsAndCaps(t *testing.T) {
	want := []time.Duration{0, 0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}
	for n, w := range want {
		if got := backoff(n); got != w {
			t.Fatalf("backoff(%d) = %s, want %s", n, got, w)
		}
	}
	if backoff(12) != 30*time.Second || backoff(1000) != 30*time.Second {
		t.Fatalf("backoff is not capped at 30s: %s %s", backoff(12), backoff(1000))
	}
}
