// Package prefork is the main function of a prefork server built from
// forkwatch's parts: it parses the flags (each with a FORKWATCH_* environment
// variable), and then either runs the supervisor, turning its lifecycle events
// into logs and pool metrics, or, in a process the supervisor started, serves
// the application's routes as one worker: ready handshake, progress reports,
// graceful drain and a final metrics flush.
//
// cmd/webapp is one user; any fasthttp application is another:
//
//	func main() {
//		os.Exit(prefork.Main(prefork.App{Name: "shop", Routes: routes}, os.Args[1:]))
//	}
package prefork

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"forkwatch/audit"
	"forkwatch/statsd"
	"forkwatch/supervisor"
	"forkwatch/worker"
)

// App is the application a prefork server runs.
type App struct {
	// Name is the program's name in messages and -h. Default "app".
	Name string
	// About is printed at the top of -h: what the program serves, its
	// routes and subcommands.
	About string
	// Routes builds the routes; each worker calls it once at start. An error
	// fails the worker's start-up: if no worker ever starts, the supervisor
	// exits non-zero with this error's text.
	Routes func() (worker.Routes, error)
}

// Main runs app with the command-line args (without the program name) and
// returns the exit code: 0 after a clean stop (or -h), 1 when serving
// failed, 2 for a bad flag or environment value.
func Main(app App, args []string) int {
	if app.Name == "" {
		app.Name = "app"
	}
	cfg, err := parseConfig(app, args, os.Getenv, os.Stdout)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v (see %s -h)\n", app.Name, err, app.Name)
		return 2
	}
	log := cfg.logger()
	if supervisor.IsChild() {
		err = serveWorker(app, cfg, log)
	} else {
		err = supervise(cfg, log)
	}
	if err != nil {
		log.Error(app.Name+" failed", "err", err)
		return 1
	}
	return 0
}

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
	sup, err := supervisor.New(supervisor.Options{
		Addr:              cfg.listen,
		Workers:           cfg.workers,
		ReusePort:         cfg.reusePort,
		Grace:             cfg.grace, // the supervisor adds KillMargin for the final flush
		HangTimeout:       cfg.hangTimeout,
		ReportTimeout:     cfg.silentAfter,
		MaxRequests:       cfg.maxRequests,
		MaxRequestsJitter: cfg.maxJitter,
		Logger:            log,
		Hooks:             hooks,
	})
	if err != nil {
		return err
	}
	return sup.Run(context.Background())
}

// serveWorker is one worker process: serve until the supervisor says stop,
// drain, flush the metrics, exit.
func serveWorker(app App, cfg *config, log *slog.Logger) error {
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
	opts.MaxRequests = child.MaxRequests()
	var totals *totalsSender
	if metrics != nil {
		// The tally counts on its own, for `webapp audit`.
		totals = &totalsSender{tally: &audit.Tally{}, child: child, log: log}
		opts.Recorder = worker.Tee(metrics, totals.tally)
	}
	routes, err := app.Routes()
	if err != nil {
		return fail(fmt.Errorf("routes: %w", err))
	}
	srv := worker.New(routes, opts)
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
	full := srv.Full()
	for stop := false; !stop; {
		select {
		case <-full:
			full = nil // report now: the supervisor recycles on the report
			_ = report()
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
