// Command stack is what `make run` starts: statsd_exporter and Prometheus
// (through package launch, with the project's flags and configs) and the
// webapp supervisor with its workers, all on loopback. It prints the URLs to
// open. On Ctrl-C, SIGTERM or a terminal hangup it stops them in order and
// waits until they are gone: the webapp first (its workers drain and flush
// their last counts), then Prometheus after one more scrape, then the
// exporter. The exporter and Prometheus run in process groups of their own,
// so the terminal's Ctrl-C does not stop them before the app's last flush;
// the webapp shares the terminal's group. A second Ctrl-C, a second or more
// after the first, makes the supervisor kill its workers at once.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/forkwatch/forkwatch/internal/launch"
	"github.com/forkwatch/forkwatch/internal/proctree"
	"github.com/forkwatch/forkwatch/statsd"
)

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("stack", flag.ContinueOnError)
	appAddr := fs.String("app", "127.0.0.1:5000", "webapp listen `address`")
	statsdAddr := fs.String("statsd", launch.DefaultStatsdAddr, "exporter DogStatsD `address` (UDP and TCP)")
	unixgram := fs.String("statsd-unixgram", "", "send DogStatsD over a Unix datagram socket at `path` (mode 0660) instead; the exporter then has no UDP/TCP listener")
	exporterAddr := fs.String("exporter", launch.DefaultExporterAddr, "exporter web `address`")
	promAddr := fs.String("prometheus", launch.DefaultPrometheusAddr, "Prometheus web `address`")
	webapp := fs.String("webapp", "bin/webapp", "webapp `binary`")
	adminAddr := fs.String("admin", "127.0.0.1:5050", "the supervisor's admin `address` for `fwctl audit` (empty: off)")
	dir := fs.String("dir", ".run", "`directory` for Prometheus's config and data")
	root := fs.String("root", ".", "project `root` (mapping.yml, prometheus.yml)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	for name, a := range map[string]string{"app": *appAddr, "statsd": *statsdAddr, "exporter": *exporterAddr, "prometheus": *promAddr} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			fmt.Fprintf(os.Stderr, "stack: -%s %q: %v\n", name, a, err)
			return 2
		}
	}
	// Before anything starts: a port another program holds would make a
	// readiness probe talk to that program, or stop us half-way.
	ports := []port{
		{what: "app", addr: *appAddr, tcp: true, makeVar: "APP_ADDR"},
		{what: "admin endpoint", addr: *adminAddr, tcp: true, makeVar: "ADMIN_ADDR"},
		{what: "exporter DogStatsD", addr: *statsdAddr, tcp: true, udp: true, makeVar: "STATSD_ADDR"},
		{what: "exporter", addr: *exporterAddr, tcp: true, makeVar: "EXPORTER_ADDR"},
		{what: "Prometheus", addr: *promAddr, tcp: true, makeVar: "PROMETHEUS_ADDR"},
	}
	if *adminAddr == "" {
		ports = slices.Delete(ports, 1, 2)
	}
	if *unixgram != "" { // the exporter then has no UDP/TCP listener
		ports = slices.DeleteFunc(ports, func(p port) bool { return p.makeVar == "STATSD_ADDR" })
	}
	if err := checkPorts(ports); err != nil {
		fmt.Fprintf(os.Stderr, "stack: %v\n", err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "stack")

	// Signals are ours to turn into a stop (the children are in groups of
	// their own); a second one is passed on to the webapp.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var app *launch.Process
	// supervisor is the webapp's supervisor now: app's process, or after a
	// SIGUSR2 upgrade the new supervisor the pid file names.
	var supervisor atomic.Int64
	appStarted := make(chan struct{})
	go func() {
		<-sigs
		cancel()
		<-appStarted
		for sig := range sigs {
			log.Warn("second stop signal: passing it on to the webapp", "signal", sig)
			_ = syscall.Kill(int(supervisor.Load()), sig.(syscall.Signal))
		}
	}()

	promDir, err := filepath.Abs(filepath.Join(*dir, "prometheus"))
	if err != nil {
		log.Error("dir", "err", err)
		return 1
	}
	// Each run starts Prometheus afresh: the exporter starts from zero too,
	// and a previous run's series would stay visible (no staleness markers
	// across a Prometheus restart) and add to every sum for five minutes.
	if err := os.RemoveAll(promDir); err != nil {
		log.Error("clear Prometheus data", "dir", promDir, "err", err)
		return 1
	}
	cfg := launch.Config{
		Root: *root, Dir: promDir,
		StatsdAddr: *statsdAddr, ExporterAddr: *exporterAddr, PrometheusAddr: *promAddr,
		Stdout: os.Stdout, Stderr: os.Stderr, Logger: log,
	}
	if *unixgram != "" {
		if cfg.Unixgram, err = filepath.Abs(*unixgram); err != nil {
			log.Error("statsd-unixgram", "err", err)
			return 1
		}
		cfg.UnixgramOnly = true
	}
	exporter, err := launch.StartExporter(ctx, cfg)
	if err != nil {
		log.Error("start exporter", "err", err)
		return 1
	}
	defer stop(log, exporter)
	prom, err := launch.StartPrometheus(ctx, cfg)
	if err != nil {
		log.Error("start Prometheus", "err", err)
		return 1
	}
	defer stop(log, prom)

	pidFile := filepath.Join(filepath.Dir(promDir), "webapp.pid")
	app, err = launch.StartWebapp(launch.Webapp{
		Bin: *webapp, Addr: *appAddr,
		Args:   []string{"-statsd-addr", exporter.StatsdAddr, "-admin-addr", *adminAddr, "-pidfile", pidFile},
		Stdout: os.Stdout, Stderr: os.Stderr,
		// The terminal's Ctrl-C reaches the supervisor itself, as without
		// the stack; the SIGTERM we pass on milliseconds later is the same
		// stop to it (a second stop signal counts only a second later).
		InCallerGroup: true,
	})
	if err != nil {
		log.Error("start webapp", "err", err)
		return 1
	}
	supervisor.Store(int64(app.PID()))
	close(appStarted)

	query := url.QueryEscape("sum by (endpoint, http_status) (" + statsd.RequestCount + ")")
	fmt.Printf(`
forkwatch is up:
  app                 http://%[1]s/test/   (also /test1/, /test, /test1)
  exporter metrics    %[2]s/metrics
  Prometheus          %[3]s/graph?g0.expr=%[4]s&g0.tab=1
  metrics travel to   %[5]s
  accounting audit    %[6]s
Ctrl-C stops everything.

`, *appAddr, exporter.URL, prom.URL, query, exporter.StatsdAddr, auditHint(filepath.Join(filepath.Dir(*webapp), "fwctl"), prom.URL, *adminAddr))

	code := 0
	appGone := app.Done()
	for running := true; running; {
		select {
		case <-ctx.Done():
			log.Info("stopping: the webapp drains, then Prometheus scrapes once more, then the exporter stops")
			running = false
		case <-appGone:
			// After a SIGUSR2 the old supervisor exits once the new one
			// serves; the pid file names the new one.
			if pid, ok := upgradedTo(pidFile, int(supervisor.Load())); ok {
				log.Info("webapp upgraded (SIGUSR2): following the new supervisor", "pid", pid)
				supervisor.Store(int64(pid))
				appGone = watchPID(pid)
				continue
			}
			log.Error("webapp exited", "err", app.Err())
			code, running = 1, false
		case <-exporter.Done():
			log.Error("statsd_exporter exited")
			code, running = 1, false
		case <-prom.Done():
			log.Error("Prometheus exited")
			code, running = 1, false
		}
	}
	// The supervisor's own grace is -grace plus a flush; it stops by itself.
	if pid := int(supervisor.Load()); pid == app.PID() {
		if err := app.Stop(appStopTimeout); err != nil {
			log.Warn("stop", "process", app.Name, "err", err)
		}
	} else if err := stopPID(pid, appStopTimeout); err != nil {
		log.Warn("stop", "process", "webapp", "pid", pid, "err", err)
	}
	// One more scrape interval, so Prometheus has the final flushes.
	select {
	case <-time.After(lastScrape):
	case <-prom.Done():
	case <-exporter.Done():
	}
	return code
}

const (
	// appStopTimeout bounds the webapp's stop: its -grace (10s) plus the
	// workers' final flush and a margin.
	appStopTimeout = 20 * time.Second
	// lastScrape is Prometheus's scrape interval (prometheus.yml) plus a
	// margin: after it, the counts the workers flushed at exit are stored.
	lastScrape = 2500 * time.Millisecond
)

// upgradedTo reports the supervisor the pid file names, if it is another
// live process than old: the webapp was upgraded with SIGUSR2.
func upgradedTo(pidFile string, old int) (int, bool) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid == old || !proctree.Alive(pid) {
		return 0, false
	}
	return pid, true
}

// watchPID returns a channel closed once process pid (not our child: we
// cannot wait for it) is gone.
func watchPID(pid int) <-chan struct{} {
	gone := make(chan struct{})
	go func() {
		for proctree.Alive(pid) {
			time.Sleep(200 * time.Millisecond)
		}
		close(gone)
	}()
	return gone
}

// stopPID stops a supervisor that is not our child (an upgraded one, in a
// process group of its own): SIGTERM, then after timeout its group is
// killed.
func stopPID(pid int, timeout time.Duration) error {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-watchPID(pid):
		return nil
	case <-time.After(timeout):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		return fmt.Errorf("did not stop within %s: killed", timeout)
	}
}

// auditHint is the command that audits this stack, for the banner.
func auditHint(fwctl, promURL, adminAddr string) string {
	if adminAddr == "" {
		return "off (-admin)"
	}
	return fmt.Sprintf("%s audit -prometheus %s -admin http://%s", fwctl, promURL, adminAddr)
}

func stop(log *slog.Logger, p *launch.Process) {
	if err := p.Stop(10 * time.Second); err != nil {
		log.Warn("stop", "process", p.Name, "err", err)
	}
}
