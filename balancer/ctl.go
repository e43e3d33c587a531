//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/procbal/procbal/balancer/admin"
	"github.com/procbal/procbal/shared/protocol"
)

// `balancer ctl`: the admin API from a terminal, as pm2 list and pm2
// monit, gunicornc or HAProxy's stats socket are for theirs. It talks to
// the balancer on ADMIN_ADDR with ADMIN_TOKEN (the environment, or
// --addr and --token), prints tables or, with --json, the server's JSON,
// and exits 1 with the server's own message when the server refuses.

const ctlUsage = `usage: balancer ctl [flags] COMMAND [ARGS]

Commands:
  status          every worker and upstream, as a table (like pm2 list)
  top             status with req/s and latency, refreshed (like pm2 monit)
  scale N|+N|-N   set the local workers to N, or add or remove N
  reload          rolling restart of every local worker
  recycle ID      replace worker ID, its replacement first
  upstreams       the remote upstreams (GET /admin/upstreams)

Flags (anywhere on the line):
  --addr ADDR       admin address (default $ADMIN_ADDR, else 127.0.0.1:3002)
  --token TOKEN     admin token (default $ADMIN_TOKEN; the environment keeps it out of ps)
  --json            print the server's JSON answers
  --timeout D       how long to wait for an answer (default 10s; scale, reload and recycle: 15m)
  --interval D      top: time between refreshes (default 2s)
  --count N         top: refresh N times, then exit (default 0: until interrupted)
`

// ctlOptions are ctl's flags.
type ctlOptions struct {
	addr, token       string
	json              bool
	timeout, interval time.Duration
	count             int
	args              []string // the command and its arguments
}

// ctlError is a failure ctl reports: its exit code and one line.
type ctlError struct {
	code int
	msg  string
}

func (e *ctlError) Error() string { return e.msg }

func usageError(format string, args ...any) error {
	return &ctlError{2, fmt.Sprintf(format, args...) + "\n" + ctlUsage}
}

// ctl runs `balancer ctl args...` and returns its exit code: 0, 1 when
// the balancer could not be reached or refused (its message on stderr),
// 2 for a usage error.
func ctl(args []string, stdout, stderr io.Writer) int {
	o, err := parseCtl(args)
	if err == nil {
		err = o.run(stdout)
	}
	if err == nil {
		return 0
	}
	var ce *ctlError
	if errors.As(err, &ce) {
		fmt.Fprintln(stderr, "balancer ctl:", ce.msg)
		return ce.code
	}
	fmt.Fprintln(stderr, "balancer ctl:", err)
	return 1
}

// parseCtl reads flags anywhere among the arguments, as --flag value or
// --flag=value. A number such as -1 (scale -1) is an argument, not a flag.
func parseCtl(args []string) (*ctlOptions, error) {
	o := &ctlOptions{addr: os.Getenv("ADMIN_ADDR"), token: os.Getenv("ADMIN_TOKEN"), interval: 2 * time.Second}
	if o.addr == "" {
		o.addr = "127.0.0.1:3002"
	}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if !strings.HasPrefix(arg, "-") || isNumber(arg) {
			o.args = append(o.args, arg)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		takeValue := func() (string, error) {
			if hasValue {
				return value, nil
			}
			if i+1 >= len(args) {
				return "", usageError("--%s needs a value", name)
			}
			i++
			return args[i], nil
		}
		var err error
		switch name {
		case "h", "help":
			return nil, &ctlError{2, strings.TrimSuffix(ctlUsage, "\n")}
		case "json":
			o.json = !hasValue || value == "true"
		case "addr":
			o.addr, err = takeValue()
		case "token":
			o.token, err = takeValue()
		case "timeout", "interval":
			var v string
			if v, err = takeValue(); err == nil {
				d, perr := time.ParseDuration(v)
				if perr != nil || d <= 0 {
					return nil, usageError("--%s: want a positive duration such as 5s, got %q", name, v)
				}
				if name == "timeout" {
					o.timeout = d
				} else {
					o.interval = d
				}
			}
		case "count", "n":
			var v string
			if v, err = takeValue(); err == nil {
				if o.count, err = strconv.Atoi(v); err != nil || o.count < 0 {
					return nil, usageError("--count: want a number, got %q", v)
				}
			}
		default:
			return nil, usageError("unknown flag %s", arg)
		}
		if err != nil {
			return nil, err
		}
	}
	if len(o.args) == 0 {
		return nil, usageError("no command")
	}
	return o, nil
}

func isNumber(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

// run does the command.
func (o *ctlOptions) run(w io.Writer) error {
	cmd, rest := o.args[0], o.args[1:]
	want := map[string]int{"status": 0, "top": 0, "reload": 0, "upstreams": 0, "scale": 1, "recycle": 1}
	n, known := want[cmd]
	if !known {
		return usageError("unknown command %q", cmd)
	}
	if len(rest) != n {
		return usageError("%s takes %d argument(s), got %d", cmd, n, len(rest))
	}
	switch cmd {
	case "status":
		return o.status(w)
	case "top":
		return o.top(w)
	case "scale":
		return o.scale(w, rest[0])
	case "reload":
		return o.reload(w)
	case "recycle":
		return o.recycle(w, rest[0])
	default:
		return o.upstreams(w)
	}
}

// call sends one request and returns the answer's body; an answer other
// than 2xx is an error with the server's message.
func (o *ctlOptions) call(method, path string, body any, long bool) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	url := "http://" + protocol.LoopbackAddr(o.addr) + path
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, &ctlError{2, "--addr / ADMIN_ADDR: " + err.Error()}
	}
	req.Header.Set("User-Agent", "procbal-ctl/"+version)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if o.token != "" {
		req.Header.Set("Authorization", "Bearer "+o.token)
	}
	timeout := o.timeout
	if timeout == 0 {
		timeout = 10 * time.Second
		if long {
			timeout = 15 * time.Minute // the server bounds scale and reload itself
		}
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.Join(strings.Fields(string(data)), " ")
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, msg)
	}
	return data, nil
}

// get decodes GET path into v, and returns the raw body too.
func (o *ctlOptions) get(path string, v any) ([]byte, error) {
	data, err := o.call(http.MethodGet, path, nil, false)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return nil, fmt.Errorf("GET %s: the answer is not what this ctl knows: %w", path, err)
	}
	return data, nil
}

func (o *ctlOptions) status(w io.Writer) error {
	var r admin.Report
	data, err := o.get("/admin/workers", &r)
	if err != nil {
		return err
	}
	if o.json {
		_, err := w.Write(data)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSTATE\tPID\tUPTIME\tRESTARTS\tRSS\tHEAP\tINFLIGHT\tREQUESTS\tFAILURES\tADDRESS")
	for _, wk := range r.Workers {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", wk.ID, wk.Kind, wk.State, pidText(wk.PID),
			uptimeOf(wk.StartedAt), restartsText(wk.Restarts, wk.RestartCause), mibText(wk.Memory.RSSBytes),
			heapText(wk.Memory.HeapAllocBytes), wk.Inflight, wk.Requests, wk.Failures, wk.Address)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	t := r.Totals
	_, err = fmt.Fprintf(w, "%d upstream(s), %d healthy, %s RSS, %d requests · balancer pid %d, up %s, %s\n",
		t.Workers, t.Healthy, mibText(t.RSSBytes), t.Requests, r.Balancer.PID,
		fmtUptime(time.Duration(r.Balancer.UptimeSeconds*float64(time.Second))), r.Strategy)
	return err
}

// top prints /admin/stats every interval, clearing a terminal's screen
// between frames; with --json, one JSON document per line.
func (o *ctlOptions) top(w io.Writer) error {
	clear := isTerminal(w)
	for i := 0; o.count == 0 || i < o.count; i++ {
		if i > 0 {
			time.Sleep(o.interval)
		}
		var s admin.StatsReport
		data, err := o.get("/admin/stats", &s)
		if err != nil {
			return err
		}
		if o.json {
			var buf bytes.Buffer
			if err := json.Compact(&buf, data); err != nil {
				return err
			}
			buf.WriteByte('\n')
			if _, err := w.Write(buf.Bytes()); err != nil {
				return err
			}
			continue
		}
		if clear {
			fmt.Fprint(w, "\x1b[H\x1b[2J")
		} else if i > 0 {
			fmt.Fprintln(w)
		}
		if err := writeTop(w, s); err != nil {
			return err
		}
	}
	return nil
}

func writeTop(w io.Writer, s admin.StatsReport) error {
	t := s.Totals
	fmt.Fprintf(w, "procbal %s · pid %d · up %s · %s · %d/%d healthy · %s req/s · %s err/s · p50 %s · p99 %s · %s RSS\n\n",
		time.Now().Format("15:04:05"), s.Balancer.PID, fmtUptime(time.Duration(s.Balancer.UptimeSeconds*float64(time.Second))),
		s.Strategy, t.Healthy, t.Workers, rateText(t.ReqPerSec), rateText(t.ErrPerSec), msText(t.P50Ms), msText(t.P99Ms),
		mibText(t.RSSBytes))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSTATE\tPID\tUPTIME\tRESTARTS\tRSS\tHEAP\tINFLIGHT\tTUNNELS\tREQ/S\tP50\tP99\tLAST CHECK ERROR")
	for _, r := range s.Workers {
		check := "-"
		if r.LastCheckError != "" {
			check = r.LastCheckError
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", r.ID, r.Kind, r.State, pidText(r.PID),
			fmtUptime(time.Duration(r.UptimeSeconds*float64(time.Second))), restartsText(r.Restarts, r.RestartCause),
			mibText(r.Memory.RSSBytes), heapText(r.Memory.HeapAllocBytes), r.Inflight, r.Tunnels, rateText(r.ReqPerSec),
			msText(r.P50Ms), msText(r.P99Ms), check)
	}
	return tw.Flush()
}

// scale sets the local workers: N, or the current count plus or minus N.
func (o *ctlOptions) scale(w io.Writer, arg string) error {
	n, err := strconv.Atoi(arg)
	if err != nil {
		return usageError("scale: want N, +N or -N, got %q", arg)
	}
	if arg[0] == '+' || arg[0] == '-' {
		var s admin.StatsReport
		if _, err := o.get("/admin/stats", &s); err != nil {
			return err
		}
		n += s.LocalWorkers
	}
	data, err := o.call(http.MethodPost, "/admin/scale", map[string]int{"workers": n}, true)
	if err != nil {
		return err
	}
	if o.json {
		_, err := w.Write(data)
		return err
	}
	var r struct{ Workers, Previous int }
	_ = json.Unmarshal(data, &r)
	_, err = fmt.Fprintf(w, "scaled from %d to %d local worker(s)\n", r.Previous, r.Workers)
	return err
}

func (o *ctlOptions) reload(w io.Writer) error {
	data, err := o.call(http.MethodPost, "/admin/reload", nil, true)
	if err != nil {
		return err
	}
	if o.json {
		_, err := w.Write(data)
		return err
	}
	var r struct{ Reloaded int }
	_ = json.Unmarshal(data, &r)
	_, err = fmt.Fprintf(w, "reloaded %d local worker(s)\n", r.Reloaded)
	return err
}

func (o *ctlOptions) recycle(w io.Writer, arg string) error {
	id, err := strconv.Atoi(arg)
	if err != nil {
		return usageError("recycle: want a worker id, got %q", arg)
	}
	data, err := o.call(http.MethodPost, "/admin/recycle", map[string]int{"worker": id}, true)
	if err != nil {
		return err
	}
	if o.json {
		_, err := w.Write(data)
		return err
	}
	var r struct {
		Worker      int `json:"worker"`
		PreviousPID int `json:"previous_pid"`
		PID         int `json:"pid"`
	}
	_ = json.Unmarshal(data, &r)
	_, err = fmt.Fprintf(w, "worker %d recycled: pid %d replaced by pid %d\n", r.Worker, r.PreviousPID, r.PID)
	return err
}

func (o *ctlOptions) upstreams(w io.Writer) error {
	var l admin.UpstreamList
	data, err := o.get("/admin/upstreams", &l)
	if err != nil {
		return err
	}
	if o.json {
		_, err := w.Write(data)
		return err
	}
	if len(l.Upstreams) == 0 {
		_, err := fmt.Fprintln(w, "no remote upstreams (local workers: balancer ctl status)")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tENTRY\tWEIGHT\tSOURCE\tSTATE\tINFLIGHT\tREQUESTS\tLAST CHECK ERROR")
	for _, u := range l.Upstreams {
		check := "-"
		if u.LastCheckError != "" {
			check = u.LastCheckError
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%d\t%d\t%s\n", u.ID, u.Address, u.Entry, u.Weight, u.Source, u.State,
			u.Inflight, u.Requests, check)
	}
	return tw.Flush()
}

func pidText(pid int) string {
	if pid == 0 {
		return "-"
	}
	return strconv.Itoa(pid)
}

func restartsText(n int, cause string) string {
	if cause == "" {
		return strconv.Itoa(n)
	}
	return fmt.Sprintf("%d (%s)", n, cause)
}

func mibText(b uint64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func heapText(b *uint64) string {
	if b == nil {
		return "-"
	}
	return mibText(*b)
}

func rateText(v float64) string {
	if v < 10 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

func msText(v *float64) string {
	if v == nil {
		return "-"
	}
	if *v < 10 {
		return fmt.Sprintf("%.2fms", *v)
	}
	return fmt.Sprintf("%.0fms", *v)
}

// uptimeOf is the time since an RFC 3339 start, or "-".
func uptimeOf(startedAt string) string {
	t, err := time.Parse(time.RFC3339, startedAt)
	if err != nil {
		return "-"
	}
	return fmtUptime(time.Since(t))
}

// fmtUptime rounds d to the two largest units, as pm2 shows uptimes.
func fmtUptime(d time.Duration) string {
	s := int64(max(d, 0) / time.Second)
	switch {
	case s >= 86400:
		return fmt.Sprintf("%dd%dh", s/86400, s%86400/3600)
	case s >= 3600:
		return fmt.Sprintf("%dh%dm", s/3600, s%3600/60)
	case s >= 60:
		return fmt.Sprintf("%dm%ds", s/60, s%60)
	}
	return fmt.Sprintf("%ds", s)
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
