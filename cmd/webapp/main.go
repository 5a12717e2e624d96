// Command webapp is forkwatch's demo application: the Flask demo's routes
// served by a supervisor and prefork fasthttp workers, every request counted
// and timed as DogStatsD metrics for statsd_exporter.
//
// The same binary is the supervisor and, re-executed by it, each worker.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"forkwatch/audit"
	"forkwatch/statsd"
	"forkwatch/supervisor"
	"forkwatch/worker"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run returns the exit code: 0 fine, 1 failed, 2 bad usage.
func run(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "load":
			return runLoad(args[1:])
		case "audit":
			return runAudit(args[1:])
		}
	}
	cfg, err := parseConfig(args, os.Getenv, os.Stdout)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "webapp: %v (see webapp -h)\n", err)
		return 2
	}
	log := cfg.logger()
	if supervisor.IsChild() {
		err = serveWorker(cfg, log)
	} else {
		err = supervise(cfg, log)
	}
	if err != nil {
		log.Error("webapp failed", "err", err)
		return 1
	}
	return 0
}

// routes are the Flask demo's routes.
func routes() *worker.Mux {
	m := worker.NewMux()
	m.Handle("/test/", func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("rest")
	})
	m.Handle("/test1/", func(ctx *fasthttp.RequestCtx) {
		ctx.SetBodyString(strconv.Itoa(1 / zero)) // panics: the middleware answers 500
	})
	return m
}

// zero is a variable so that the division in /test1/ happens at run time.
var zero = 0

func newMetrics(cfg *config, log *slog.Logger) (*statsd.Client, error) {
	if !cfg.metrics {
		return nil, nil
	}
	return statsd.New(statsd.Config{Addr: cfg.statsdAddr, AppName: cfg.appName, FlushInterval: cfg.flush, Logger: log})
}

// supervise runs the pool and turns its lifecycle events into logs (the
// supervisor's own) and pool metrics.
func supervise(cfg *config, log *slog.Logger) error {
	metrics, err := newMetrics(cfg, log)
	if err != nil {
		return err
	}
	live := 0
	hooks := supervisor.Hooks{}
	if metrics != nil {
		defer metrics.Close()
		hooks.Ready = func(supervisor.Worker) {
			live++
			metrics.WorkersLive(live)
		}
		hooks.Exit = func(_ supervisor.Worker, reason supervisor.Reason, wasReady bool, _ error) {
			if wasReady {
				live--
				metrics.WorkersLive(live)
			}
			if reason != supervisor.ReasonShutdown {
				metrics.WorkerRestart(string(reason))
			}
		}
	}
	ledger := audit.NewLedger(cfg.appName, time.Now())
	hooks = withLedger(hooks, ledger, log)
	stopAdmin, err := serveAdmin(cfg.adminAddr, ledger, log)
	if err != nil {
		return err
	}
	defer stopAdmin()
	hang, silent := cfg.hangTimeout, cfg.silentAfter
	if hang == 0 {
		hang = -1
	}
	if silent == 0 {
		silent = -1
	}
	sup, err := supervisor.New(supervisor.Options{
		Addr:          cfg.listen,
		Workers:       cfg.workers,
		ReusePort:     cfg.reusePort,
		StopTimeout:   cfg.grace + 2*time.Second, // the worker's own grace, then a flush
		HangTimeout:   hang,
		ReportTimeout: silent,
		MaxJobs:       cfg.maxRequests,
		MaxJobsJitter: cfg.maxJitter,
		Logger:        log,
		Hooks:         hooks,
	})
	if err != nil {
		return err
	}
	return sup.Run(context.Background())
}

// serveWorker is one worker process: serve until the supervisor says stop,
// drain, flush the metrics, exit.
func serveWorker(cfg *config, log *slog.Logger) error {
	child, err := supervisor.NewChild()
	if err != nil {
		return err
	}
	log = log.With("worker", child.ID, "pid", os.Getpid())
	fail := func(err error) error {
		_ = child.Fatal(err)
		return err
	}
	metrics, err := newMetrics(cfg, log)
	if err != nil {
		return fail(err)
	}
	opts := cfg.workerOptions()
	opts.Logger = log
	var totals *totalsSender
	if metrics != nil {
		// The tally counts on its own, for `webapp audit`.
		totals = &totalsSender{tally: &audit.Tally{}, child: child, log: log}
		opts.Recorder = worker.Tee(metrics, totals.tally)
	}
	srv := worker.New(routes(), opts)
	ln, err := child.Listener()
	if err != nil {
		return fail(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if err := child.Ready(); err != nil {
		return err
	}

	report := func() error {
		p := srv.Progress()
		totals.send()
		return child.Report(supervisor.Status{Handled: p.Handled, Busy: p.Busy, BusyWith: p.BusyWith})
	}
	tick := time.NewTicker(cfg.reportEvery)
	defer tick.Stop()
	for stop := false; !stop; {
		select {
		case <-tick.C:
			if err := report(); err != nil {
				log.Warn("supervisor gone", "err", err)
				stop = true
			}
		case <-child.Stopping():
			stop = true
		case err := <-served:
			return fail(fmt.Errorf("serve: %w", err))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.grace)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("grace period over with requests in flight", "err", err)
	}
	_ = report() // the final count, for the supervisor's exit log
	if metrics != nil {
		if err := metrics.Close(); err != nil {
			log.Warn("flush metrics", "err", err)
		}
	}
	return nil
}
