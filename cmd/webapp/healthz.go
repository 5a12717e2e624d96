package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/forkwatch/forkwatch"
)

// runHealthz asks the supervisor's admin endpoint whether it serves: for a
// probe that must run inside the container (the admin endpoint listens on
// loopback only, and the image has no shell or curl). Exit 0: healthy; 1:
// not (or unreachable); 2: bad usage.
func runHealthz(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("webapp healthz", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	adminURL := fs.String("admin", "http://127.0.0.1:5050", "the supervisor's admin endpoint `URL` (its -admin-addr)")
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, `webapp healthz: GET the supervisor's `+forkwatch.HealthPath+` and print its answer. Exit 0 while at least
one worker is ready and the supervisor is responsive, 1 otherwise.`)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "webapp healthz: %v (see webapp healthz -h)\n", err)
		return 2
	}
	if fs.NArg() > 0 || *timeout <= 0 {
		fmt.Fprintln(stderr, "webapp healthz: takes only -admin and -timeout (> 0) (see webapp healthz -h)")
		return 2
	}
	client := &http.Client{Timeout: *timeout}
	resp, err := client.Get(strings.TrimSuffix(*adminURL, "/") + forkwatch.HealthPath)
	if err != nil {
		fmt.Fprintf(stderr, "webapp healthz: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintf(stdout, "%d %s", resp.StatusCode, body)
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}
