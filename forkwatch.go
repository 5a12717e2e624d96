// Package forkwatch is a prefork web server whose request metrics stay exact
// whatever happens to its worker processes. A supervisor process binds the
// listening socket and forks N fasthttp workers that share it; every request
// is counted and timed, and each worker pushes DogStatsD counters and
// histograms to a statsd_exporter that Prometheus scrapes.
//
// Main is the front door: it parses the flags (each also a FORKWATCH_*
// environment variable), and then either runs the supervisor (package
// supervisor), turning its lifecycle events into logs and pool metrics, or,
// in a process the supervisor started, serves the application's routes as
// one worker (package worker, metrics from package statsd): ready handshake,
// progress reports, graceful drain, a final metrics flush.
//
//	func main() {
//		os.Exit(forkwatch.Main(forkwatch.App{Name: "shop", Routes: routes}))
//	}
package forkwatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/forkwatch/forkwatch/internal/ledger"
	"github.com/forkwatch/forkwatch/statsd"
	"github.com/forkwatch/forkwatch/supervisor"
	"github.com/forkwatch/forkwatch/worker"
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
	// Args are the command-line arguments, without the program name.
	// Default os.Args[1:]. The supervisor passes the same Args to every
	// worker it starts, so a program that filters its own arguments gets
	// workers that parse what it parsed.
	Args []string
	// Defaults, if set, changes the settings before the environment and the
	// command line are applied: the flags' defaults, set in code.
	Defaults func(*Options)
	// Server, if set, is called in each worker with its fasthttp.Server
	// before it serves, for settings Options do not name. It must leave
	// Handler and ErrorHandler alone (they are the recording middleware).
	Server func(*fasthttp.Server)
	// Stdout and Stderr receive -h and logs. Default os.Stdout, os.Stderr.
	Stdout, Stderr io.Writer
}

// Main runs app and returns the exit code: 0 after a clean stop (or -h or
// -version), 1 when serving failed, 2 for a bad flag or environment value.
func Main(app App) int {
	if app.Name == "" {
		app.Name = "app"
	}
	if app.Args == nil {
		app.Args = os.Args[1:]
	}
	if app.Stdout == nil {
		app.Stdout = os.Stdout
	}
	if app.Stderr == nil {
		app.Stderr = os.Stderr
	}
	o := DefaultOptions()
	if app.Defaults != nil {
		app.Defaults(&o)
	}
	o, err := parseOptions(&app, o, app.Args, os.Getenv, app.Stdout)
	if o.Grace == 0 {
		o.Grace = supervisor.DefaultGrace // what the supervisor takes 0 to mean
	}
	if errors.Is(err, errHelp) {
		return 0
	}
	if errors.Is(err, errVersion) {
		fmt.Fprintf(app.Stdout, "%s version %s\n", app.Name, ReadBuildInfo())
		return 0
	}
	if err != nil {
		fmt.Fprintf(app.Stderr, "%s: %v (see %s -h)\n", app.Name, err, app.Name)
		return 2
	}
	log := slog.New(slog.NewTextHandler(app.Stderr, &slog.HandlerOptions{Level: o.LogLevel}))
	if supervisor.IsChild() {
		err = serveWorker(&app, &o, log)
	} else {
		err = supervise(&app, &o, log)
	}
	if err != nil {
		log.Error(app.Name+" failed", "err", err)
		return 1
	}
	return 0
}

func newMetrics(o *Options, seg *statsd.Segment, log *slog.Logger) (*statsd.Client, error) {
	if o.NoMetrics {
		return nil, nil
	}
	return statsd.New(statsd.Config{Addr: o.StatsdAddr, AppName: o.AppName, FlushInterval: o.FlushInterval, Segment: seg, Logger: log})
}

// served is what a worker's segment says it served, as the ledger counts it,
// and the latency samples it dropped.
func served(seg *statsd.Segment) (ledger.Totals, uint64) {
	st := seg.Totals()
	t := ledger.Totals{}
	for _, s := range st.Served {
		t[ledger.Key{Method: s.Method, Endpoint: s.Endpoint, Status: s.Status}] += s.Count
	}
	return t, st.DroppedSamples
}

// remainderTries is how many times, a second apart, the supervisor tries
// to send what a dead worker left before it gives up (the exporter is down).
const remainderTries = 30

// withSegments gives every worker a statsd.Segment (shared memory for its
// not-yet-sent metrics, passed like the listening socket) and, when a
// worker has exited and been reaped, sends what it left there: nothing
// after a clean exit, its last window after a SIGKILL.
// A remainder the exporter does not take is retried every second, up to
// remainderTries; the returned finish makes every retry loop try once more
// and give up, and waits for them: a stop never waits on a dead exporter.
func withSegments(h supervisor.Hooks, metrics *statsd.Client, l *ledger.Ledger, log *slog.Logger) (supervisor.Hooks, func()) {
	var sending sync.WaitGroup
	stopping := make(chan struct{})
	pending := map[int]*statsd.Segment{} // by slot, between Files and Spawn
	byPID := map[int]*statsd.Segment{}
	files, spawn, exit := h.Files, h.Spawn, h.Exit
	h.Files = func(w supervisor.Worker) ([]*os.File, error) {
		var fs []*os.File
		if files != nil {
			var err error
			if fs, err = files(w); err != nil {
				return nil, err
			}
		}
		seg, err := statsd.NewSegment(statsd.SegmentOptions{})
		if err != nil {
			return nil, err
		}
		if old := pending[w.ID]; old != nil {
			_ = old.Close() // its spawn failed
		}
		pending[w.ID] = seg
		return append([]*os.File{seg.File()}, fs...), nil
	}
	h.Spawn = func(w supervisor.Worker) {
		if seg := pending[w.ID]; seg != nil {
			byPID[w.PID] = seg
			delete(pending, w.ID)
			l.Track(w.PID, func() (ledger.Totals, uint64) { return served(seg) })
		}
		if spawn != nil {
			spawn(w)
		}
	}
	h.Exit = func(w supervisor.Worker, reason supervisor.Reason, wasReady bool, err error) {
		if seg := byPID[w.PID]; seg != nil {
			delete(byPID, w.PID)
			l.Exit(w.PID) // its final counts, before the segment is freed
			// Off the supervisor's goroutine: a send may wait on the network.
			sending.Add(1)
			go func() {
				defer sending.Done()
				defer seg.Close()
				// The exporter may be restarting: a few tries, then what
				// is left is counted as lost in the log.
				final := false
				for try := 1; ; try++ {
					r, err := metrics.SendRemainder(seg)
					if r.Requests() > 0 || r.Samples > 0 || r.Unwritten > 0 {
						log.Info("sent the metrics a worker left unsent", "worker", w.ID, "pid", w.PID,
							"requests", r.Requests(), "samples", r.Samples, "unwritten", r.Unwritten)
					}
					if err == nil {
						return
					}
					if final || try >= remainderTries {
						t := seg.Totals()
						log.Error("metrics a worker left unsent are lost", "worker", w.ID, "pid", w.PID, "err", err,
							"dropped_samples", t.DroppedSamples)
						return
					}
					select {
					case <-time.After(time.Second):
					case <-stopping: // the supervisor is exiting: one last try
						final = true
					}
				}
			}()
		}
		if exit != nil {
			exit(w, reason, wasReady, err)
		}
	}
	return h, func() {
		close(stopping)
		sending.Wait()
	}
}

// supervise runs the pool and turns its lifecycle events into logs (the
// supervisor's own) and pool metrics.
func supervise(app *App, o *Options, log *slog.Logger) (err error) {
	// Before anything starts a process: these clear their environment
	// variables, which the workers would otherwise inherit.
	handoff, err := supervisor.Upgraded() // this process is the new supervisor of an upgrade (SIGUSR2)
	if err != nil {
		return err
	}
	if handoff != nil {
		// The old supervisor logs why this one failed (Run's own
		// failures included) and keeps serving.
		defer func() { handoff.Fail(err) }()
	}
	inherited, err := activatedListener(log)
	if err != nil {
		return err
	}
	// A new supervisor (SIGUSR2) gets the same environment as this one,
	// NOTIFY_SOCKET included: it tells systemd it is the main process now.
	upgradeEnv := os.Environ()
	notify := supervisor.NewNotifier()
	pid := os.Getpid()
	writePID := func() error {
		if o.PIDFile == "" {
			return nil
		}
		if err := writePIDFile(o.PIDFile, pid); err != nil {
			return err
		}
		log.Info("pidfile written", "path", o.PIDFile, "pid", pid)
		return nil
	}
	if o.PIDFile != "" {
		// The new supervisor of an upgrade writes it once it serves.
		if handoff == nil {
			if err := writePID(); err != nil {
				return err
			}
		}
		// A supervisor that handed over to a new one (SIGUSR2) finds the
		// new one's PID there and leaves it.
		defer func() {
			if _, err := removePIDFile(o.PIDFile, pid); err != nil {
				log.Warn("remove pidfile", "err", err)
			}
		}()
	}
	metrics, err := newMetrics(o, nil, log)
	if err != nil {
		return err
	}
	p := newPool(o.Workers)
	hooks := supervisor.Hooks{}
	poolHooks := notifyHooks(notify, handoff != nil, log)
	// The new supervisor of an upgrade writes the pid file once its pool
	// serves, before it tells systemd (Serving, next) and then the old
	// supervisor (after Serving) that it took over.
	if handoff != nil {
		serving := poolHooks.Serving
		poolHooks.Serving = func(n int) {
			if err := writePID(); err != nil {
				log.Error("pidfile not written: it still names the old supervisor", "err", err)
			}
			if serving != nil {
				serving(n)
			}
		}
	}
	poolHooks.Upgraded = func(newPID int, err error) {
		if err == nil {
			// The new supervisor's gauges are the pool's now: this one's,
			// going down as its workers drain, would overwrite them.
			p.retire()
		}
	}
	if metrics != nil {
		defer metrics.Close()
		// Changes go out at once; reportPool repeats them every second.
		send := func() {
			s := p.state()
			if s.Retired {
				return
			}
			metrics.SetPool(s.Ready, s.Configured, s.Busy)
		}
		hooks.Ready = func(supervisor.Worker) { send() }
		hooks.Exit = func(_ supervisor.Worker, reason supervisor.Reason, _ bool, _ error) {
			send()
			if reason != supervisor.ReasonShutdown {
				metrics.WorkerRestart(string(reason))
			}
		}
		poolHooks.Scaled = func(int) { send() }
		ctx, stop := context.WithCancel(context.Background())
		reported := make(chan struct{})
		go func() {
			defer close(reported)
			reportPool(ctx, p, metrics, ReadBuildInfo(), time.Now, poolGaugeEvery)
		}()
		// Before metrics.Close (deferred earlier, so run later).
		defer func() { stop(); <-reported }()
	}
	l := ledger.NewLedger(o.AppName, time.Now())
	if metrics != nil {
		var sent func()
		hooks, sent = withSegments(hooks, metrics, l, log)
		defer sent() // before metrics.Close, deferred earlier
	}
	hooks, poolHooks = p.hooks(hooks, poolHooks)
	var adminSocket *os.File // the old supervisor's, after an upgrade
	if handoff != nil && len(handoff.Files) > 0 {
		adminSocket = handoff.Files[0]
	}
	admin, err := serveAdmin(o.AdminAddr, adminSocket, adminHandler(l, p, time.Now), log)
	if err != nil {
		return err
	}
	defer admin.stop()
	// A new supervisor takes over the admin socket too: /healthz answers
	// all along.
	poolHooks.UpgradeFiles = admin.files
	sup, err := supervisor.New(supervisor.Options{
		Addr:              o.Listen,
		Workers:           o.Workers,
		ReusePort:         o.ReusePort,
		Args:              app.Args,
		Grace:             o.Grace,
		HangTimeout:       o.HangTimeout,
		ReportTimeout:     o.ReportTimeout,
		MaxRequests:       o.MaxRequests,
		MaxRequestsJitter: o.MaxRequestsJitter,
		Stdout:            app.Stdout,
		Stderr:            app.Stderr,
		Logger:            log,
		Hooks:             hooks,
		Pool:              poolHooks,
		Listener:          inherited,
		Handoff:           handoff,
		UpgradeEnv:        upgradeEnv,
	})
	if err != nil {
		return err
	}
	return sup.Run(context.Background())
}

// serveWorker is one worker process: serve until the supervisor says stop,
// drain, flush the metrics, exit.
func serveWorker(app *App, o *Options, log *slog.Logger) error {
	child, err := supervisor.NewChild()
	if err != nil {
		return err
	}
	log = log.With("worker", child.ID, "pid", os.Getpid())
	fail := func(err error) error {
		_ = child.Fatal(err)
		return err
	}
	if app.Routes == nil {
		return fail(errors.New("forkwatch: App.Routes is not set"))
	}
	var seg *statsd.Segment
	if !o.NoMetrics {
		files := child.Files()
		if len(files) == 0 {
			return fail(errors.New("forkwatch: no metrics segment from the supervisor"))
		}
		if seg, err = statsd.OpenSegment(files[0]); err != nil {
			return fail(err)
		}
	}
	metrics, err := newMetrics(o, seg, log)
	if err != nil {
		return fail(err)
	}
	runtime.GOMAXPROCS(o.workerProcs(runtime.NumCPU()))
	opts := o.workerOptions()
	opts.Logger = log
	access, err := openAccessLog(o.AccessLog, app.Stdout)
	if err != nil {
		return fail(err)
	}
	if access != nil {
		defer access.close(log)
		opts.AccessLog = access.AccessLog
	}
	opts.MaxRequests = child.MaxRequests()
	opts.Configure = app.Server
	if metrics != nil {
		opts.Recorder = metrics
	}
	routes, err := app.Routes()
	if err != nil {
		return fail(fmt.Errorf("routes: %w", err))
	}
	srv, err := worker.New(routes, opts)
	if err != nil {
		return fail(err)
	}
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
		access.warnDropped(log)
		p := srv.Progress()
		return child.Report(supervisor.Status{Handled: p.Handled, Busy: p.Busy, BusyWith: p.BusyWith})
	}
	tick := time.NewTicker(o.ReportInterval)
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
	// Drain, and keep reporting meanwhile: a worker stopped by a SIGTERM
	// of its own is otherwise judged silent by -report-timeout and killed
	// in the middle of its requests.
	ctx, cancel := context.WithTimeout(context.Background(), o.Grace)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- srv.Shutdown(ctx) }()
	for draining := true; draining; {
		select {
		case err := <-drained:
			if err != nil {
				log.Warn("grace period over with requests in flight", "err", err)
			}
			draining = false
		case <-tick.C:
			_ = report()
		}
	}
	_ = report() // the final count, for the supervisor's exit log
	if metrics != nil {
		// What the final flush could not send stays in the segment: the
		// supervisor sends it once this process has exited.
		if err := metrics.Close(); err != nil {
			log.Warn("final metrics flush incomplete; the supervisor sends the rest", "err", err)
		}
		_ = seg.Close()
	}
	return nil
}
