package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what one wrk run reports.
type wrkResult struct {
	Requests  int64                 // completed requests
	Elapsed   time.Duration         // the run's measured duration
	RPS       float64               // "Requests/sec"
	Latency   map[int]time.Duration // percentile (50, 75, 90, 99) to latency
	SockErrs  int64                 // connect + read + write + timeout
	BadStatus int64                 // "Non-2xx or 3xx responses"
}

// Errors is every failed request wrk counted: socket errors plus answers
// outside 2xx and 3xx.
func (r wrkResult) Errors() int64 { return r.SockErrs + r.BadStatus }

// wrkOptions is how wrk, or the built-in generator, loads a target.
type wrkOptions struct {
	Engine      string // loadWrk or loadGo (runLoad picks by it)
	Path        string // the wrk binary
	Threads     int    // wrk only: -load go runs at the process's GOMAXPROCS
	Connections int
	Duration    time.Duration
	CPU         string // taskset CPU list to pin wrk to; empty: not pinned
	Body        int    // bytes of the POST body of every request; 0: GET
	Script      string // wrk only: the Lua script (-s) that sends Body; empty: none
	WS          bool   // a WebSocket echo over Connections tunnels (runWSLoad), whatever Engine says
}

// wrkArgs returns the command line that runs wrk against url.
func wrkArgs(o wrkOptions, url string) []string {
	args := []string{o.Path,
		"-t", strconv.Itoa(o.Threads),
		"-c", strconv.Itoa(o.Connections),
		"-d", strconv.Itoa(int(o.Duration.Round(time.Second)/time.Second)) + "s"}
	if o.Script != "" {
		args = append(args, "-s", o.Script)
	}
	args = append(args, "--latency", url)
	if o.CPU != "" {
		args = append([]string{"taskset", "-c", o.CPU}, args...)
	}
	return args
}

// runWrk runs wrk against url and parses its report.
func runWrk(ctx context.Context, o wrkOptions, url string) (wrkResult, error) {
	if o.Body > 0 && o.Script == "" {
		return wrkResult{}, errNoScript
	}
	args := wrkArgs(o, url)
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	res, err := parseWrk(string(out))
	if err != nil {
		return wrkResult{}, fmt.Errorf("parse wrk output: %w\n%s", err, out)
	}
	return res, nil
}

// parseWrk parses the text report of `wrk --latency`.
func parseWrk(out string) (wrkResult, error) {
	res := wrkResult{Latency: map[int]time.Duration{}}
	var sawCount, sawRPS bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		var err error
		switch {
		case strings.Contains(line, " requests in "):
			err = parseRequestsLine(line, &res)
			sawCount = err == nil
		case strings.HasPrefix(line, "Requests/sec:"):
			res.RPS, err = strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, "Requests/sec:")), 64)
			sawRPS = err == nil
		case strings.HasPrefix(line, "Socket errors:"):
			res.SockErrs, err = parseSocketErrors(line)
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:"):
			res.BadStatus, err = strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "Non-2xx or 3xx responses:")), 10, 64)
		case isPercentileLine(line):
			err = parsePercentileLine(line, res.Latency)
		}
		if err != nil {
			return wrkResult{}, fmt.Errorf("line %q: %w", line, err)
		}
	}
	if !sawCount || !sawRPS {
		return wrkResult{}, errors.New("no request count or Requests/sec line")
	}
	if _, ok := res.Latency[99]; !ok {
		return wrkResult{}, errors.New("no 99% latency line (was --latency given?)")
	}
	return res, nil
}

// parseRequestsLine parses "76623 requests in 3.01s, 13.88MB read".
func parseRequestsLine(line string, res *wrkResult) error {
	f := strings.Fields(line)
	if len(f) < 4 || f[1] != "requests" || f[2] != "in" {
		return errors.New("want \"N requests in T, ...\"")
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return err
	}
	d, err := parseWrkDuration(strings.TrimSuffix(f[3], ","))
	if err != nil {
		return err
	}
	res.Requests, res.Elapsed = n, d
	return nil
}

// parseSocketErrors sums "Socket errors: connect 0, read 8, write 3, timeout 0".
func parseSocketErrors(line string) (int64, error) {
	rest := strings.TrimPrefix(line, "Socket errors:")
	var sum int64
	for _, part := range strings.Split(rest, ",") {
		f := strings.Fields(part)
		if len(f) != 2 {
			return 0, fmt.Errorf("socket error part %q", part)
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

// isPercentileLine reports whether line looks like "99%  708.00us".
func isPercentileLine(line string) bool {
	f := strings.Fields(line)
	return len(f) == 2 && strings.HasSuffix(f[0], "%") && !strings.Contains(line, "Stdev")
}

// parsePercentileLine parses "99%  708.00us" into into[99].
func parsePercentileLine(line string, into map[int]time.Duration) error {
	f := strings.Fields(line)
	p, err := strconv.Atoi(strings.TrimSuffix(f[0], "%"))
	if err != nil {
		return err
	}
	d, err := parseWrkDuration(f[1])
	if err != nil {
		return err
	}
	into[p] = d
	return nil
}

// wrkUnits are the time units wrk prints, longest suffix first.
var wrkUnits = []struct {
	suffix string
	unit   time.Duration
}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}

// parseWrkDuration parses wrk's time format: "283.00us", "1.54ms", "3.01s",
// "1.00m" or "2.00h".
func parseWrkDuration(s string) (time.Duration, error) {
	for _, u := range wrkUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("duration %q: %w", s, err)
			}
			return time.Duration(v * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("duration %q: unknown unit", s)
}
