package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// loadResult is what a load generator reported.
type loadResult struct {
	Requests  int64 // responses received (any status)
	Non2xx    int64
	Errors    int64 // requests without a response (socket errors, timeouts)
	ReqPerSec float64
	P50, P99  time.Duration
	Took      time.Duration
	CPU       time.Duration // the load generator's own CPU time
	Output    string
}

// run runs a load generator and returns its output and CPU time.
func run(ctx context.Context, name string, args ...string) (string, time.Duration, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	var cpu time.Duration
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	if err != nil {
		return string(out), cpu, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), cpu, nil
}

// wrkArgs are the arguments of a wrk run against url.
func wrkArgs(threads, conns int, d time.Duration, url string) []string {
	return []string{"-t" + strconv.Itoa(threads), "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(d.Seconds())) + "s", "--latency", url}
}

var (
	wrkTotal   = regexp.MustCompile(`(\d+) requests in ([\d.]+\w+),`)
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	wrkSockErr = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkPct     = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+\w+)\s*$`)
)

func parseWrk(out string) (loadResult, error) {
	r := loadResult{Output: out}
	m := wrkTotal.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk output without a request count:\n%s", out)
	}
	r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	r.Took, _ = time.ParseDuration(m[2])
	if m := wrkRPS.FindStringSubmatch(out); m != nil {
		r.ReqPerSec, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := wrkSockErr.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.Errors += n
		}
	}
	for _, m := range wrkPct.FindAllStringSubmatch(out, -1) {
		d, _ := time.ParseDuration(m[2])
		if m[1] == "50" {
			r.P50 = d
		} else {
			r.P99 = d
		}
	}
	return r, nil
}
