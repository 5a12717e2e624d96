// Command bench is what `make bench` runs (through scripts/bench.sh): the
// cost of exact metrics, measured on loopback in one run against four
// systems: fasthttp's own prefork package with no metrics (the yardstick,
// cmd/bench/fastprefork), forkwatch with -no-metrics, forkwatch with metrics
// (statsd_exporter and Prometheus started through internal/launch) and the
// Python original under uwsgi with its own exporter and Prometheus. Every
// process is started through internal/launch.
//
// The primary figure is CPU per request, per system and per component
// (workers = master + children, exporter, Prometheus): utime+stime from
// /proc (prometheus/procfs) over a measured run divided by the requests
// served, median and min..max over interleaved rounds, at two loads:
// saturation (wrk) and a fixed offered load (internal/loadgen's Rate) of a
// share of forkwatch -no-metrics's maximum measured in the same run. Beside
// it: req/s, p50/p99, RSS per worker and UDP packets per request (the
// exporter's statsd_exporter_udp_packets_total, read with verify.Scrape).
// Then it sends exact request counts at saturation (hey) and compares them
// with the exporter's, audits the workers' ledger against Prometheus, and
// runs the middleware's Go benchmarks. It prints the tables and writes them,
// with each target of the issue met or missed, the machine's facts and the
// exact commands, to BENCHMARKS.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/forkwatch/forkwatch/internal/launch"
	"github.com/forkwatch/forkwatch/internal/loadgen"
	"github.com/forkwatch/forkwatch/internal/proctree"
	"github.com/forkwatch/forkwatch/internal/verify"
	"github.com/forkwatch/forkwatch/statsd"
)

// options are bench's flags.
type options struct {
	root, seed, out, webapp string
	fastprefork             string
	rounds                  int
	fixedShare              float64
	duration, warmup        time.Duration
	threads, conns          int
	workers                 int
	satN, satRuns, satConns int
	goBench                 bool
	ports                   ports
}

// ports are the loopback addresses used; none is one of `make run`'s.
type ports struct {
	fast, baseline, product, original           string
	productStatsd, productExporter, productProm string
	seedStatsd, seedExporter, seedProm          string
	admin                                       string
}

func main() {
	os.Exit(mainErr())
}

func mainErr() int {
	o := options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.root, "root", ".", "project `root`")
	fs.StringVar(&o.seed, "original", "cmd/bench/original", "`directory` of the Python original (app.py)")
	fs.StringVar(&o.out, "out", "BENCHMARKS.md", "markdown `file` to write")
	fs.StringVar(&o.webapp, "webapp", "bin/webapp", "webapp `binary`")
	fs.StringVar(&o.fastprefork, "fastprefork", "bin/fastprefork", "fasthttp prefork `binary` (cmd/bench/fastprefork)")
	fs.IntVar(&o.rounds, "rounds", 6, "rounds per load mode; each measures every system once, the order reversed every other round")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "length of each measured run")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured run before each measurement")
	fs.Float64Var(&o.fixedShare, "fixed-share", 0.5, "the fixed load, as a `share` of forkwatch -no-metrics's median req/s at saturation")
	fs.IntVar(&o.threads, "threads", 2, "wrk threads")
	fs.IntVar(&o.conns, "conns", 50, "wrk connections")
	fs.IntVar(&o.workers, "workers", 5, "worker processes, for forkwatch and for uwsgi")
	fs.IntVar(&o.satN, "sat-n", 200000, "requests per accounting-at-saturation run")
	fs.IntVar(&o.satRuns, "sat-runs", 3, "accounting-at-saturation runs")
	fs.IntVar(&o.satConns, "sat-conns", 50, "hey connections at saturation")
	fs.BoolVar(&o.goBench, "gobench", true, "also run the middleware's Go benchmarks")
	fs.StringVar(&o.ports.fast, "fastprefork-addr", "127.0.0.1:5103", "fasthttp prefork `address`")
	fs.StringVar(&o.ports.baseline, "baseline-addr", "127.0.0.1:5100", "baseline webapp `address`")
	fs.StringVar(&o.ports.product, "product-addr", "127.0.0.1:5101", "forkwatch webapp `address`")
	fs.StringVar(&o.ports.original, "original-addr", "127.0.0.1:5102", "Python original `address`")
	fs.StringVar(&o.ports.productStatsd, "product-statsd", "127.0.0.1:9225", "forkwatch's exporter DogStatsD `address`")
	fs.StringVar(&o.ports.productExporter, "product-exporter", "127.0.0.1:9202", "forkwatch's exporter web `address`")
	fs.StringVar(&o.ports.productProm, "product-prometheus", "127.0.0.1:9190", "forkwatch's Prometheus `address`")
	fs.StringVar(&o.ports.seedStatsd, "original-statsd", "127.0.0.1:9226", "the original's exporter DogStatsD `address`")
	fs.StringVar(&o.ports.seedExporter, "original-exporter", "127.0.0.1:9203", "the original's exporter web `address`")
	fs.StringVar(&o.ports.seedProm, "original-prometheus", "127.0.0.1:9191", "the original's Prometheus `address`")
	fs.StringVar(&o.ports.admin, "admin-addr", "127.0.0.1:5150", "forkwatch's admin endpoint `address` (for the audit)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if o.rounds < 1 || o.satRuns < 0 || o.satN < 1 || o.duration < time.Second || o.workers < 1 || o.fixedShare <= 0 || o.fixedShare > 1 {
		fmt.Fprintln(os.Stderr, "bench: -rounds and -workers must be >= 1, -duration >= 1s, -sat-n >= 1, -sat-runs >= 0, -fixed-share in (0, 1]")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := benchmark(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

// The systems under load, in the order of the tables.
const (
	sysFast = iota // fasthttp's prefork, no metrics: the yardstick
	sysBase        // forkwatch -no-metrics
	sysProd        // forkwatch with metrics, its exporter and Prometheus
	sysOrig        // the Python original under uwsgi, its exporter and Prometheus
	numSystems
)

// target is one of the systems under load.
type target struct {
	name     string
	url      string          // the URL wrk and hey hit
	proc     *launch.Process // the supervisor or uwsgi master
	log      *os.File
	exporter *launch.Process
	prom     *launch.Process
	commands []string
}

func benchmark(ctx context.Context, o options) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	started := time.Now().UTC()
	for _, tool := range []string{"wrk", "uwsgi", "prometheus"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not installed (scripts/bench.sh installs it)", tool)
		}
	}
	if _, err := os.Stat(filepath.Join(o.seed, "app.py")); err != nil {
		return fmt.Errorf("the Python original: %w (set -original)", err)
	}
	for _, a := range []string{o.ports.fast, o.ports.baseline, o.ports.product, o.ports.original, o.ports.productExporter,
		o.ports.productProm, o.ports.seedExporter, o.ports.seedProm, o.ports.admin} {
		if l, err := net.Listen("tcp", a); err != nil {
			return fmt.Errorf("address %s is busy (another bench or stack running?): %w", a, err)
		} else {
			l.Close()
		}
	}
	fmt.Println("measuring the machine's idle load for 3s ...")
	mf := facts(o.root)
	fmt.Printf("%d CPUs (%s), kernel %s, %s; load %s; others kept %.0f%% of the CPUs busy\n",
		mf.CPUs, mf.CPUModel, mf.Kernel, mf.GoVersion, mf.LoadAvg, 100*mf.OthersBusy)

	rep := &report{started: started, facts: mf, opts: o}
	if o.goBench {
		fmt.Println("go benchmarks of the middleware ...")
		args := []string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-count", "1", "./worker/"}
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = o.root
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		rep.goBench, rep.goBenchCmd = string(out), "go "+strings.Join(args, " ")
		fmt.Print(rep.goBench)
	}

	tmp, err := os.MkdirTemp("", "forkwatch-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()

	// The four systems, all started before any measurement and left idle
	// while the others are measured.
	fast, err := startFastPrefork(ctx, o, tmp)
	if err != nil {
		return err
	}
	cleanups = append(cleanups, fast.stop)
	base, err := startWebapp(ctx, o, tmp, "no metrics", o.ports.baseline, "-no-metrics")
	if err != nil {
		return err
	}
	cleanups = append(cleanups, base.stop)

	pexp, pprom, cmds, err := startBridge(ctx, o, tmp, "product", filepath.Join(o.root, "mapping.yml"),
		o.ports.productStatsd, o.ports.productExporter, o.ports.productProm, log)
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func() { _ = pprom.Stop(15 * time.Second) }, func() { _ = pexp.Stop(10 * time.Second) })
	prod, err := startWebapp(ctx, o, tmp, "forkwatch", o.ports.product,
		"-statsd-addr", o.ports.productStatsd, "-admin-addr", o.ports.admin)
	if err != nil {
		return err
	}
	cleanups = append(cleanups, prod.stop)
	prod.exporter, prod.prom = pexp, pprom
	prod.commands = append(cmds, prod.commands...)

	sexp, sprom, cmds, err := startBridge(ctx, o, tmp, "original", filepath.Join(o.root, "mapping.yml"),
		o.ports.seedStatsd, o.ports.seedExporter, o.ports.seedProm, log)
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func() { _ = sprom.Stop(15 * time.Second) }, func() { _ = sexp.Stop(10 * time.Second) })
	orig, err := startUwsgi(ctx, o, tmp)
	if err != nil {
		return err
	}
	cleanups = append(cleanups, orig.stop)
	orig.exporter, orig.prom = sexp, sprom
	orig.commands = append(cmds, orig.commands...)

	targets := make([]*target, numSystems)
	targets[sysFast], targets[sysBase], targets[sysProd], targets[sysOrig] = fast, base, prod, orig
	rep.targets = targets
	// rounds measures systems under load, round after round, every system
	// once per round. The no-metrics baseline and the product run back to
	// back, and so do fasthttp's prefork and the baseline, so the machine's
	// other load is alike for the ratios between them; the order reverses
	// every other round.
	rounds := func(md mode, systems []int, load loader) error {
		rep.results[md] = make([][]measurement, numSystems)
		for r := 0; r < o.rounds; r++ {
			order := slices.Clone(systems)
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, k := range order {
				t := targets[k]
				fmt.Printf("%s round %d/%d: %s ...\n", md, r+1, o.rounds, t.name)
				m, err := measure(ctx, o, t, load)
				if err != nil {
					return fmt.Errorf("%s, %s: %w", t.name, md, err)
				}
				fmt.Printf("  %.0f req/s, p50 %s, p99 %s, %d non-2xx, %d errors; CPU %.1f µs/request (workers %.1f, exporter %.2f)\n",
					m.load.ReqPerSec, m.load.P50, m.load.P99, m.load.Non2xx, m.load.Errors,
					m.us(m.totalCPU()), m.us(m.workersCPU), m.us(m.exporterCPU))
				rep.results[md][k] = append(rep.results[md][k], m)
			}
		}
		return nil
	}
	if err := rounds(saturation, []int{sysFast, sysBase, sysProd, sysOrig}, wrkLoader(o)); err != nil {
		return err
	}
	rep.wrkCmd = "wrk " + strings.Join(wrkArgs(o.threads, o.conns, o.duration, "<url>/test/"), " ")
	// The fixed load is a share of what forkwatch without metrics served at
	// saturation in this run; the Python original serves far less than that,
	// so it is left out.
	rep.rate = o.fixedShare * rep.med(saturation, sysBase, func(m measurement) float64 { return m.load.ReqPerSec })
	if err := rounds(fixedLoad, []int{sysFast, sysBase, sysProd}, rateLoader(o, rep.rate)); err != nil {
		return err
	}

	for i := 0; i < o.satRuns; i++ {
		fmt.Printf("accounting at saturation %d/%d: %d requests ...\n", i+1, o.satRuns, o.satN)
		s, err := saturate(ctx, o, prod)
		if err != nil {
			return err
		}
		fmt.Printf("  %d responses at %.0f req/s: request_count +%.0f, latency count +%.0f: lost %d, duplicated %d\n",
			s.load.Requests, s.load.ReqPerSec, s.counted, s.histCounted, s.lost(), s.duplicated())
		rep.sat = append(rep.sat, s)
	}
	rep.satCmd = fmt.Sprintf("loadgen.Run(loadgen.Options{URL: %q, Mix: /test/, Requests: %d, Concurrency: %d})", "http://"+o.ports.product, o.satN, o.satConns)

	fmt.Println("audit: the workers' ledger against Prometheus ...")
	ar, _, err := verify.WaitAudit(ctx, &verify.Prometheus{URL: pprom.URL}, "http://"+o.ports.admin, 60*time.Second, time.Second)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	rep.audit = ar
	_ = ar.Print(os.Stdout)

	// Stop everything before writing, so the webapp's own shutdown line
	// (metric send errors) is in its log.
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	cleanups = nil
	rep.sendErrors = sendErrors(filepath.Join(tmp, "forkwatch.log"))

	text := rep.markdown()
	fmt.Println()
	fmt.Print(rep.tables())
	if err := os.WriteFile(o.out, []byte(text), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nwrote %s (took %s)\n", o.out, time.Since(started).Round(time.Second))
	return nil
}

// startBridge starts an exporter (with the given mapping) and a Prometheus
// that scrapes it, with forkwatch's own flags and config.
func startBridge(ctx context.Context, o options, tmp, name, mapping, statsdAddr, exporterAddr, promAddr string,
	log *slog.Logger) (*launch.Process, *launch.Process, []string, error) {
	cfg := launch.Config{
		Root: o.root, Dir: filepath.Join(tmp, name+"-prometheus"), Mapping: mapping,
		StatsdAddr: statsdAddr, ExporterAddr: exporterAddr, PrometheusAddr: promAddr, Logger: log,
	}
	exp, err := launch.StartExporter(ctx, cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	prom, err := launch.StartPrometheus(ctx, cfg)
	if err != nil {
		_ = exp.Stop(5 * time.Second)
		return nil, nil, nil, err
	}
	cmds := []string{
		"GOGC=" + launch.ExporterGOGC + " statsd_exporter " + strings.Join(launch.ExporterFlags(statsdAddr, exporterAddr, mapping), " "),
		"prometheus (launch.StartPrometheus: the project's prometheus.yml, scrape every 2s) on " + promAddr,
	}
	return exp, prom, cmds, nil
}

// startWebapp starts bin/webapp (launch.StartWebapp) with its workers on
// addr, output to a log file, and waits until it answers.
func startWebapp(ctx context.Context, o options, tmp, name, addr string, extra ...string) (*target, error) {
	args := append([]string{"-workers", fmt.Sprint(o.workers), "-log-level", "warn"}, extra...)
	logName := "baseline.log"
	if name == "forkwatch" {
		logName = "forkwatch.log"
	}
	logf, err := os.Create(filepath.Join(tmp, logName))
	if err != nil {
		return nil, err
	}
	p, err := launch.StartWebapp(launch.Webapp{Bin: o.webapp, Addr: addr, Args: args, Stdout: logf, Stderr: logf})
	if err != nil {
		logf.Close()
		return nil, err
	}
	t := &target{name: name, url: "http://" + addr + "/test/", proc: p, log: logf,
		commands: []string{o.webapp + " -listen " + addr + " " + strings.Join(args, " ")}}
	if err := t.waitReady(ctx, o.workers); err != nil {
		t.stop()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return t, nil
}

// startFastPrefork starts cmd/bench/fastprefork (fasthttp's prefork, no
// metrics) with o.workers children and waits until it answers.
func startFastPrefork(ctx context.Context, o options, tmp string) (*target, error) {
	args := []string{"-listen", o.ports.fast, "-children", fmt.Sprint(o.workers)}
	logf, err := os.Create(filepath.Join(tmp, "fastprefork.log"))
	if err != nil {
		return nil, err
	}
	p, err := launch.StartCommand("fastprefork", o.fastprefork, args, nil, "", logf, logf)
	if err != nil {
		logf.Close()
		return nil, err
	}
	t := &target{name: "fasthttp prefork", url: "http://" + o.ports.fast + "/test/", proc: p, log: logf,
		commands: []string{o.fastprefork + " " + strings.Join(args, " ")}}
	if err := t.waitReady(ctx, o.workers); err != nil {
		t.stop()
		return nil, fmt.Errorf("fasthttp prefork: %w", err)
	}
	return t, nil
}

// startUwsgi starts the Python original the way its README says: uwsgi,
// five workers, --http-socket, metrics to its own exporter; --die-on-term
// makes SIGTERM (Process.Stop) stop it instead of reloading it.
func startUwsgi(ctx context.Context, o options, tmp string) (*target, error) {
	host, port, _ := net.SplitHostPort(o.ports.seedStatsd)
	args := []string{"--plugins", "http,python3", "--master", "--processes", fmt.Sprint(o.workers),
		"--http-socket", o.ports.original, "--wsgi-file", "app.py", "--callable", "app", "--disable-logging", "--die-on-term"}
	env := []string{"METRICS=1", "STATSD_HOST=" + host, "STATSD_PORT=" + port}
	logf, err := os.Create(filepath.Join(tmp, "uwsgi.log"))
	if err != nil {
		return nil, err
	}
	p, err := launch.StartCommand("uwsgi", "uwsgi", args, env, o.seed, logf, logf)
	if err != nil {
		logf.Close()
		return nil, err
	}
	t := &target{name: "Python original", url: "http://" + o.ports.original + "/test/", proc: p, log: logf,
		commands: []string{"cd " + abs(o.seed) + " && " + strings.Join(env, " ") + " uwsgi " + strings.Join(args, " ")}}
	if err := t.waitReady(ctx, o.workers); err != nil {
		t.stop()
		b, _ := os.ReadFile(filepath.Join(tmp, "uwsgi.log"))
		return nil, fmt.Errorf("the Python original: %w\n%s", err, b)
	}
	return t, nil
}

// stop stops the system's master (launch.Process.Stop: SIGTERM, then its
// process group is killed) and closes its log.
func (t *target) stop() {
	_ = t.proc.Stop(20 * time.Second)
	if t.log != nil {
		t.log.Close()
	}
}

// master is the supervisor's or uwsgi master's PID; workers are its children.
func (t *target) master() int { return t.proc.PID() }

// waitReady polls the target's URL until it answers 200 and its master has
// all its workers.
func (t *target) waitReady(ctx context.Context, workers int) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := client.Get(t.url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && len(proctree.Children(t.master())) >= workers {
				return nil
			}
		}
		select {
		case <-t.proc.Done():
			return errors.New("exited before it was ready")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within 60s", t.url)
		}
	}
}

// satRun is one accounting-at-saturation run.
type satRun struct {
	load                 loadResult
	counted, histCounted float64 // exporter deltas of the series hey hits
	otherSeries          float64 // request_count delta of the app's other series
	udpPackets           float64
	drops                map[string]float64 // exporter drop counters' deltas
	rcvbufErrors         int64              // kernel, machine-wide
}

func (s satRun) responses() float64 { return float64(s.load.Requests) }
func (s satRun) lost() int64        { return int64(max(0, s.responses()-s.counted)) }
func (s satRun) duplicated() int64  { return int64(max(0, s.counted-s.responses())) }
func (s satRun) histLost() int64    { return int64(max(0, s.responses()-s.histCounted)) }
func (s satRun) histDup() int64     { return int64(max(0, s.histCounted-s.responses())) }
func (s satRun) exact() bool {
	return s.load.Errors == 0 && s.lost() == 0 && s.duplicated() == 0 && s.histLost() == 0 && s.histDup() == 0
}

// udpPackets is the exporter's count of the datagrams it received.
const udpPackets = "statsd_exporter_udp_packets_total"

// dropCounters are the exporter's counters of input it could not use.
var dropCounters = []string{
	"statsd_exporter_udp_packet_drops_total",
	"statsd_exporter_events_error_total",
	"statsd_exporter_events_conflict_total",
	"statsd_exporter_sample_errors_total",
	"statsd_exporter_tag_errors_total",
	"statsd_exporter_lines_invalid_total",
}

// satSeries selects the series the saturation runs hit (label text as the
// exporter writes it: names sorted).
var satSeries = map[string]string{"app_name": "webapp", "endpoint": "/test/"}

// saturate sends exactly o.satN requests as fast as the load generator can and compares the
// responses with what the exporter counted.
func saturate(ctx context.Context, o options, t *target) (satRun, error) {
	var s satRun
	read := func() (rc, hist, all, udp float64, drops map[string]float64, err error) {
		fams, err := verify.Scrape(ctx, t.exporter.URL)
		if err != nil {
			return
		}
		// Only the series the load hits: a connection that wrk cut mid-request
		// earlier is answered 408 under "unmatched" when its read timeout
		// ends, which may fall inside this run.
		rc = verify.Sum(fams, statsd.RequestCount, satSeries)
		hist = verify.Sum(fams, statsd.RequestLatency, satSeries)
		all = verify.Sum(fams, statsd.RequestCount, map[string]string{"app_name": "webapp"})
		udp = verify.Sum(fams, udpPackets, nil)
		drops = map[string]float64{}
		for _, d := range dropCounters {
			drops[d] = verify.Sum(fams, d, nil)
		}
		return
	}
	if err := settle(ctx, t, -1); err != nil {
		return s, err
	}
	rc0, h0, a0, u0, d0, err := read()
	if err != nil {
		return s, err
	}
	k0 := udpRcvbufErrors()
	// Exactly satN requests, as fast as satConns connections go, each sent
	// once (no retries: a retried request could be counted twice).
	if s.load, err = runLoadgen(ctx, loadgen.Options{URL: strings.TrimSuffix(t.url, "/test/"),
		Mix: loadgen.Mix{{Path: "/test/", Weight: 1}}, Requests: o.satN, Concurrency: o.satConns, Latencies: true}); err != nil {
		return s, err
	}
	if err := settle(ctx, t, rc0+float64(s.load.Requests)); err != nil {
		return s, err
	}
	rc1, h1, a1, u1, d1, err := read()
	if err != nil {
		return s, err
	}
	s.counted, s.histCounted, s.udpPackets = rc1-rc0, h1-h0, u1-u0
	s.otherSeries = (a1 - a0) - s.counted
	s.drops = map[string]float64{}
	for k, v := range d1 {
		s.drops[k] = v - d0[k]
	}
	s.rcvbufErrors = udpRcvbufErrors() - k0
	return s, nil
}

// settle waits until the exporter's request_count has reached want (if >= 0)
// and then not changed for a second, at most 30s: the workers flush every
// 200ms, so a second without change means nothing is on the way.
func settle(ctx context.Context, t *target, want float64) error {
	read := func(ctx context.Context) (float64, error) {
		return scrapeSum(ctx, t.exporter.URL, statsd.RequestCount, satSeries)
	}
	reached := func(a, b float64) bool { return a == b && b >= want }
	_, _, err := verify.Settle(ctx, read, reached, time.Second, 30*time.Second)
	return err // if it did not settle, the comparison will show what is missing
}

// scrapeSum scrapes an exporter and adds up the samples of metric name
// whose labels include match.
func scrapeSum(ctx context.Context, baseURL, name string, match map[string]string) (float64, error) {
	fams, err := verify.Scrape(ctx, baseURL)
	if err != nil {
		return 0, err
	}
	return verify.Sum(fams, name, match), nil
}

// sendErrors reads the webapp's log for the metric send errors its workers
// reported at exit.
func sendErrors(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unknown (no log)"
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "metric send errors") || strings.Contains(l, "sending metrics failed") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return "none logged"
	}
	sort.Strings(lines)
	return strings.Join(lines, "; ")
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
