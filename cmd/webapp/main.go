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
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/forkwatch/forkwatch"
	"github.com/forkwatch/forkwatch/worker"
)

const about = `webapp: the forkwatch demo app: a supervisor and prefork fasthttp workers that
send exact request metrics as DogStatsD to statsd_exporter.

Usage:
  webapp [flags]           serve (the supervisor re-executes itself for each worker)
  webapp load [flags]      send a bounded load and record it (webapp load -h)
  webapp verify [flags]    compare the last load with Prometheus (webapp verify -h)
  webapp audit [flags]     compare what the workers served with what Prometheus saw (webapp audit -h)
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
		case "load":
			return runLoad(args[1:], os.Stdout, os.Stderr)
		case "verify":
			return runVerify(args[1:], os.Stdout, os.Stderr)
		case "audit":
			return runAudit(args[1:])
		case "healthz":
			return runHealthz(args[1:], os.Stdout, os.Stderr)
		case "version":
			return runVersion(os.Stdout)
		}
	}
	return forkwatch.Main(forkwatch.App{Name: "webapp", About: about, Routes: routes, Args: args})
}

// runVersion prints what -version prints.
func runVersion(w io.Writer) int {
	fmt.Fprintf(w, "webapp version %s\n", forkwatch.ReadBuildInfo())
	return 0
}

// routes are the Flask demo's routes.
func routes() (worker.Routes, error) {
	m := worker.NewMux()
	m.Handle("/test/", func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("rest")
	})
	m.Handle("/test1/", func(ctx *fasthttp.RequestCtx) {
		ctx.SetBodyString(strconv.Itoa(1 / zero)) // panics: the middleware answers 500
	})
	return m, nil
}

// zero is a variable so that the division in /test1/ happens at run time.
var zero = 0
