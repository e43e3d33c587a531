package main

import (
	"os"
	"testing"
	"time"
)

// TestParseProcStat reads a real /proc/<pid>/stat of a busy bash.
func TestParseProcStat(t *testing.T) {
	st, err := parseProcStat(readTestdata(t, "proc_stat.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{State: 'S', PPID: 4276, UTime: 39, STime: 0}
	if st != want {
		t.Errorf("parseProcStat = %+v, want %+v", st, want)
	}
	if st.CPU() != 390*time.Millisecond {
		t.Errorf("CPU() = %s, want 390ms", st.CPU())
	}
}

// TestParseProcStatOddName checks that a command name with spaces and
// parentheses does not shift the fields.
func TestParseProcStatOddName(t *testing.T) {
	line := "77 (a) b (c)) R 12 77 77 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 4 0 1 2 3\n"
	st, err := parseProcStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := (procStat{State: 'R', PPID: 12, UTime: 250, STime: 31}); st != want {
		t.Errorf("parseProcStat = %+v, want %+v", st, want)
	}
}

// TestParseProcStatRejects checks malformed content is an error.
func TestParseProcStatRejects(t *testing.T) {
	for _, bad := range []string{"", "12 no-parens S 1 2", "1 (x) S 1 2 3", "1 (x) S p 1 1 0 -1 0 0 0 0 0 9 9 0"} {
		if _, err := parseProcStat(bad); err == nil {
			t.Errorf("parseProcStat(%q) succeeded, want an error", bad)
		}
	}
}

// TestReadProcStatSelf reads the test process itself, which has used CPU.
func TestReadProcStatSelf(t *testing.T) {
	st, err := readProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.PPID != os.Getppid() {
		t.Errorf("ppid = %d, want %d", st.PPID, os.Getppid())
	}
}

// TestParseStatusKB reads VmHWM from a real /proc/<pid>/status.
func TestParseStatusKB(t *testing.T) {
	content := readTestdata(t, "proc_status.txt")
	got, err := parseStatusKB(content, "VmHWM")
	if err != nil || got != 33028*1024 {
		t.Errorf("VmHWM = %d, %v; want %d", got, err, 33028*1024)
	}
	if _, err := parseStatusKB(content, "VmNope"); err == nil {
		t.Error("missing key: want an error")
	}
	if _, err := parseStatusKB("VmHWM:\t12 MB\n", "VmHWM"); err == nil {
		t.Error("wrong unit: want an error")
	}
}

// TestDescendants finds a child the test starts.
func TestDescendants(t *testing.T) {
	p, err := startProc("sleeper", t.TempDir(), nil, "sleep", "30")
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	found := false
	for _, pid := range descendantsOf(os.Getpid()) {
		found = found || pid == p.PID()
	}
	if !found {
		t.Errorf("descendantsOf(self) lacks child %d", p.PID())
	}
	p.stop()
	if !p.exited() {
		t.Error("stop returned before the process exited")
	}
}
