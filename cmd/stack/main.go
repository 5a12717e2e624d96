// Command stack is what `make run` starts: statsd_exporter and Prometheus
// (through the bridge package, with the project's flags and configs) and the
// webapp supervisor with its workers, all on loopback. It prints the URLs to
// open, and on Ctrl-C (SIGINT to the whole process group) or SIGTERM it stops
// all of them and waits until they are gone.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"forkwatch/bridge"
)

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("stack", flag.ContinueOnError)
	appAddr := fs.String("app", "127.0.0.1:5000", "webapp listen `address`")
	statsdAddr := fs.String("statsd", bridge.DefaultStatsdAddr, "exporter DogStatsD `address` (UDP and TCP)")
	unixgram := fs.String("statsd-unixgram", "", "send DogStatsD over a Unix datagram socket at `path` (mode 0660) instead; the exporter then has no UDP/TCP listener")
	exporterAddr := fs.String("exporter", bridge.DefaultExporterAddr, "exporter web `address`")
	promAddr := fs.String("prometheus", bridge.DefaultPrometheusAddr, "Prometheus web `address`")
	webapp := fs.String("webapp", "bin/webapp", "webapp `binary`")
	adminAddr := fs.String("admin", "127.0.0.1:5050", "the supervisor's admin `address` for `webapp audit` (empty: off)")
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
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "stack")

	// Signals are ours to turn into a stop; the children get Ctrl-C from the
	// terminal themselves, and a SIGTERM sent to us alone is passed on.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-sigs; cancel() }()

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
	cfg := bridge.Config{
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
	exporter, err := bridge.StartExporter(ctx, cfg)
	if err != nil {
		log.Error("start exporter", "err", err)
		return 1
	}
	defer stop(log, exporter)
	prom, err := bridge.StartPrometheus(ctx, cfg)
	if err != nil {
		log.Error("start Prometheus", "err", err)
		return 1
	}
	defer stop(log, prom)

	app := exec.Command(*webapp, "-listen", *appAddr, "-statsd-addr", exporter.StatsdAddr, "-admin-addr", *adminAddr)
	app.Stdout, app.Stderr = os.Stdout, os.Stderr
	if err := app.Start(); err != nil {
		log.Error("start webapp", "err", err)
		return 1
	}
	appDone := make(chan error, 1)
	go func() { appDone <- app.Wait() }()

	query := url.QueryEscape(`sum by (endpoint, http_status) (request_count)`)
	fmt.Printf(`
forkwatch is up:
  app                 http://%[1]s/test/   (also /test1/, /test, /test1)
  exporter metrics    %[2]s/metrics
  Prometheus          %[3]s/graph?g0.expr=%[4]s&g0.tab=1
  metrics travel to   %[5]s
  accounting audit    %[6]s
Ctrl-C stops everything.

`, *appAddr, exporter.URL, prom.URL, query, exporter.StatsdAddr, auditHint(*webapp, prom.URL, *adminAddr))

	code, appExited := 0, false
	select {
	case <-ctx.Done():
		// Ctrl-C reached the webapp too; a SIGTERM to us alone did not.
		_ = app.Process.Signal(syscall.SIGTERM)
		select {
		case <-appDone:
		case <-time.After(20 * time.Second):
			log.Warn("webapp did not stop in time: killing it")
			_ = app.Process.Kill()
			<-appDone
		}
		appExited = true
	case err := <-appDone:
		log.Error("webapp exited", "err", err)
		code, appExited = 1, true
	case <-exporter.Done():
		log.Error("statsd_exporter exited")
		code = 1
	case <-prom.Done():
		log.Error("Prometheus exited")
		code = 1
	}
	if !appExited {
		_ = app.Process.Signal(syscall.SIGTERM)
		<-appDone
	}
	return code
}

// auditHint is the command that audits this stack, for the banner.
func auditHint(webapp, promURL, adminAddr string) string {
	if adminAddr == "" {
		return "off (-admin)"
	}
	return fmt.Sprintf("%s audit -prometheus %s -admin http://%s", webapp, promURL, adminAddr)
}

func stop(log *slog.Logger, p *bridge.Process) {
	if err := p.Stop(10 * time.Second); err != nil {
		log.Warn("stop", "process", p.Name, "err", err)
	}
}
