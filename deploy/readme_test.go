package deploy

import (
	"regexp"
	"strings"
	"testing"
)

var (
	tableVar = regexp.MustCompile("`([A-Z][A-Z0-9_]+)`")
)

// settingsTable collects the variables the first column of the README's
// "## Settings" table names.
func settingsTable(t *testing.T) set {
	t.Helper()
	readme := readFile(t, "README.md")
	_, section, ok := strings.Cut(readme, "\n## Settings\n")
	if !ok {
		t.Fatal(`README.md has no "## Settings" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	listed := set{}
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 || !strings.HasPrefix(line, "|") {
			continue
		}
		for _, m := range tableVar.FindAllStringSubmatch(cells[1], -1) {
			listed[m[1]] = true
		}
	}
	return listed
}

// Issue 12: the README's settings table lists every variable the balancer
// reads (its Config's tags), and none that no binary reads.
func TestReadmeSettingsTable(t *testing.T) {
	listed := settingsTable(t)
	for _, v := range balancerVars(t).sorted() {
		if !listed[v] {
			t.Errorf("README.md's settings table does not list %s, which the balancer reads", v)
		}
	}
	known := readVars(t)
	for _, v := range listed.sorted() {
		if !known[v] {
			t.Errorf("README.md's settings table lists %s, which no binary reads", v)
		}
	}
}
