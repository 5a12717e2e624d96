// Command fwctl checks a running forkwatch stack from the outside, the way
// an operator does: it sends a bounded load and records it, compares what
// Prometheus saw with what a load sent, and audits what the workers served
// against Prometheus. It is a client: the server binaries (cmd/webapp, any
// forkwatch.Main program) link no Prometheus client.
package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `fwctl: check a running forkwatch stack.

Usage:
  fwctl load [flags]      record the request totals, send a bounded load over the demo routes (fwctl load -h)
  fwctl verify [flags]    compare what Prometheus saw since the last load with what it sent (fwctl verify -h)
  fwctl audit [flags]     compare what the workers served (admin endpoint) with what Prometheus saw (fwctl audit -h)
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run returns the exit code: 0 fine, 1 failed, 2 bad usage.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "load":
		return runLoad(args[1:], stdout, stderr)
	case "verify":
		return runVerify(args[1:], stdout, stderr)
	case "audit":
		return runAudit(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "fwctl: unknown command %q (see fwctl -h)\n", args[0])
	return 2
}
