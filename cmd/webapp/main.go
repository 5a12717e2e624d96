// Command webapp is forkwatch's demo application: the Flask demo's routes
// served by a supervisor and prefork fasthttp workers (package forkwatch), every
// request counted and timed as DogStatsD metrics for statsd_exporter.
//
// The same binary is the supervisor and, re-executed by it, each worker.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/forkwatch/forkwatch"
	"github.com/forkwatch/forkwatch/internal/demo"
)

const about = `webapp: the forkwatch demo app: a supervisor and prefork fasthttp workers that
send exact request metrics as DogStatsD to statsd_exporter. (Loads and checks
against a running stack are fwctl's: fwctl -h.)

Usage:
  webapp [flags]           serve (the supervisor re-executes itself for each worker)
  webapp healthz [flags]   ask the admin endpoint whether the server is healthy (a probe; webapp healthz -h)
  webapp version           print the version and the Go version (also: webapp -version)

Routes: GET /test/ -> 200 "rest"; /test1/ -> 500 "runtime error: integer divide by zero";
/test and /test1 -> 301 to the slash form; anything else -> 404.
`

func main() {
	os.Exit(run(os.Args[1:]))
}

// run returns the exit code: 0 fine, 1 failed, 2 bad usage.
func run(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "healthz":
			return runHealthz(args[1:], os.Stdout, os.Stderr)
		case "version":
			return runVersion(os.Stdout)
		}
	}
	return forkwatch.Main(forkwatch.App{Name: "webapp", About: about, Routes: demo.Routes, Args: args})
}

// runVersion prints what -version prints.
func runVersion(w io.Writer) int {
	fmt.Fprintf(w, "webapp version %s\n", forkwatch.ReadBuildInfo())
	return 0
}
