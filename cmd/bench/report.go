package main

import (
	"fmt"
	"math"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/forkwatch/forkwatch/internal/verify"
)

// report gathers one bench run's results and renders them.
type report struct {
	started    time.Time
	facts      machineFacts
	opts       options
	targets    []*target
	results    [numModes][][]measurement // per mode, per system, per round
	rate       float64                   // the fixed load's offered req/s
	sat        []satRun
	audit      verify.Report
	sendErrors string
	goBench    string
	goBenchCmd string
	wrkCmd     string
	satCmd     string
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// spread is a median and the range around it, over the rounds.
type spread struct {
	med, lo, hi float64
	n           int
}

func spreadOf(xs []float64) spread {
	if len(xs) == 0 {
		return spread{}
	}
	sp := spread{med: median(xs), lo: math.Inf(1), hi: math.Inf(-1), n: len(xs)}
	for _, x := range xs {
		sp.lo, sp.hi = min(sp.lo, x), max(sp.hi, x)
	}
	return sp
}

// format prints "median [min..max]" with the given verb for each.
func (s spread) format(verb string) string {
	if s.n == 0 {
		return "n/a"
	}
	return fmt.Sprintf(verb+" ["+verb+".."+verb+"]", s.med, s.lo, s.hi)
}

// straddles reports whether the target lies inside the rounds' range: the
// median's verdict could flip with more rounds.
func (s spread) straddles(target float64) bool { return s.lo < target && target < s.hi }

// series is f of every round of system sys in mode md.
func (r *report) series(md mode, sys int, f func(measurement) float64) []float64 {
	var xs []float64
	for _, m := range r.results[md][sys] {
		xs = append(xs, f(m))
	}
	return xs
}

// med is the median over the rounds of f.
func (r *report) med(md mode, sys int, f func(measurement) float64) float64 {
	return median(r.series(md, sys, f))
}

// paired is f of systems a and b measured in the same round, per round.
func (r *report) paired(md mode, a, b int, f func(a, b measurement) float64) []float64 {
	var xs []float64
	ra, rb := r.results[md][a], r.results[md][b]
	for k := 0; k < len(ra) && k < len(rb); k++ {
		if ra[k].load.Requests > 0 && rb[k].load.Requests > 0 {
			xs = append(xs, f(ra[k], rb[k]))
		}
	}
	return xs
}

func (r *report) maxOf(md mode, sys int, f func(measurement) float64) float64 {
	var best float64
	for _, m := range r.results[md][sys] {
		best = max(best, f(m))
	}
	return best
}

const mib = 1 << 20

// Per-request figures of a measurement, in µs, and its req/s.
func totalUs(m measurement) float64    { return m.us(m.totalCPU()) }
func workersUs(m measurement) float64  { return m.us(m.workersCPU) }
func exporterUs(m measurement) float64 { return m.us(m.exporterCPU) }
func promUs(m measurement) float64     { return m.us(m.promCPU) }
func reqPerSec(m measurement) float64  { return m.load.ReqPerSec }

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", d.Seconds()*1000) }

// systemsTable is the primary table of a mode: CPU per request per system
// and component, median [min..max] over the rounds, with the rest beside it.
func (r *report) systemsTable(md mode) string {
	var b strings.Builder
	b.WriteString("| system | CPU µs/request, whole system | workers (master + children) | exporter | Prometheus | req/s | p50 | p99 | RSS per worker, max (median avg) | UDP packets/request | other load on the machine |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for i, t := range r.targets {
		if len(r.results[md][i]) == 0 {
			continue
		}
		sp := func(f func(measurement) float64, verb string) string {
			return spreadOf(r.series(md, i, f)).format(verb)
		}
		exp, prom, udp := "n/a", "n/a", "n/a"
		if t.exporter != nil {
			exp, prom = sp(exporterUs, "%.2f"), sp(promUs, "%.3f")
			udp = fmt.Sprintf("%.4f", r.med(md, i, func(m measurement) float64 { return m.udpPackets / float64(m.load.Requests) }))
		}
		fmt.Fprintf(&b, "| %s | **%s** | %s | %s | %s | %s | %s | %s | %.1f MiB (%.1f) | %s | %.2f CPUs |\n",
			t.name, sp(totalUs, "%.1f"), sp(workersUs, "%.1f"), exp, prom, sp(reqPerSec, "%.0f"),
			ms(time.Duration(r.med(md, i, func(m measurement) float64 { return float64(m.load.P50) }))),
			ms(time.Duration(r.med(md, i, func(m measurement) float64 { return float64(m.load.P99) }))),
			r.maxOf(md, i, func(m measurement) float64 { return float64(m.rssMax) })/mib,
			r.med(md, i, func(m measurement) float64 { return float64(m.rssAvg) })/mib,
			udp, r.med(md, i, func(m measurement) float64 { return m.othersCPU.Seconds() / m.window.Seconds() }))
	}
	return b.String()
}

// comparison is one paired figure: systems a and b in the same round.
type comparison struct {
	what   string
	md     mode
	a, b   int
	f      func(a, b measurement) float64
	verb   string
	target string // how the target reads, "" for none
	ok     func(float64) bool
	limit  float64 // the target's threshold, for the straddle check
}

// cpuRatio is a's whole-system CPU per request over b's.
func cpuRatio(a, b measurement) float64 { return totalUs(a) / totalUs(b) }

// rpsRatio is a's req/s over b's.
func rpsRatio(a, b measurement) float64 { return a.load.ReqPerSec / b.load.ReqPerSec }

// workerExtra is a's workers' CPU per request minus b's, in µs.
func workerExtra(a, b measurement) float64 { return workersUs(a) - workersUs(b) }

func atLeast(x float64) func(float64) bool { return func(v float64) bool { return v >= x } }
func atMost(x float64) func(float64) bool  { return func(v float64) bool { return v <= x } }

// comparisons are the targets that compare two systems, plus the
// comparisons with the Python original (no target).
func comparisons() []comparison {
	return []comparison{
		{"forkwatch -no-metrics / fasthttp prefork, req/s", saturation, sysBase, sysFast, rpsRatio, "%.3f", ">= 0.98x", atLeast(0.98), 0.98},
		{"fasthttp prefork / forkwatch -no-metrics, CPU per request (= forkwatch's requests per CPU-second relative to prefork's)", saturation, sysFast, sysBase, cpuRatio, "%.3f", ">= 0.98x", atLeast(0.98), 0.98},
		{"fasthttp prefork / forkwatch -no-metrics, CPU per request", fixedLoad, sysFast, sysBase, cpuRatio, "%.3f", ">= 0.98x", atLeast(0.98), 0.98},
		{"forkwatch with / without metrics, workers' extra CPU per request (µs)", saturation, sysProd, sysBase, workerExtra, "%.2f", "<= 0.5 µs", atMost(0.5), 0.5},
		{"forkwatch with / without metrics, workers' extra CPU per request (µs)", fixedLoad, sysProd, sysBase, workerExtra, "%.2f", "", nil, 0},
		{"forkwatch with / without metrics, whole-system CPU per request", saturation, sysProd, sysBase, cpuRatio, "%.3f", "<= 1.15x", atMost(1.15), 1.15},
		{"forkwatch with / without metrics, whole-system CPU per request", fixedLoad, sysProd, sysBase, cpuRatio, "%.3f", "<= 1.05x", atMost(1.05), 1.05},
		{"forkwatch with / without metrics, req/s", saturation, sysProd, sysBase, rpsRatio, "%.3f", ">= 0.90x", atLeast(0.90), 0.90},
		{"forkwatch / Python original, req/s", saturation, sysProd, sysOrig, rpsRatio, "%.2f", "", nil, 0},
		{"Python original / forkwatch, whole-system CPU per request", saturation, sysOrig, sysProd, cpuRatio, "%.2f", "", nil, 0},
	}
}

// comparisonsTable lists every paired figure, round by round.
func (r *report) comparisonsTable() string {
	var b strings.Builder
	b.WriteString("| comparison | load | median [min..max] | each round |\n|---|---|---:|---|\n")
	for _, c := range comparisons() {
		xs := r.paired(c.md, c.a, c.b, c.f)
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", c.what, c.md, spreadOf(xs).format(c.verb), list(xs, c.verb))
	}
	return b.String()
}

func list(xs []float64, format string) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(parts, ", ")
}

// judge renders a target's verdict from the median, saying when the rounds'
// range crosses the threshold.
func judge(sp spread, ok func(float64) bool, limit float64) string {
	if sp.n == 0 {
		return "not measured"
	}
	v := verdict(ok(sp.med))
	if sp.straddles(limit) {
		v += " (rounds on both sides: within noise)"
	}
	return v
}

// targetsTable compares the measurements with the targets.
func (r *report) targetsTable() string {
	var b strings.Builder
	b.WriteString("| target | load | measured: median [min..max] over the rounds | result |\n|---|---|---|---|\n")
	for _, c := range comparisons() {
		if c.target == "" {
			continue
		}
		sp := spreadOf(r.paired(c.md, c.a, c.b, c.f))
		fmt.Fprintf(&b, "| %s %s | %s | %s | %s |\n", c.what, c.target, c.md, sp.format(c.verb), judge(sp, c.ok, c.limit))
	}
	for md := saturation; md < numModes; md++ {
		sp := spreadOf(r.series(md, sysProd, exporterUs))
		fmt.Fprintf(&b, "| forkwatch's exporter, CPU per request <= 1.2 µs | %s | %s µs | %s |\n", md, sp.format("%.2f"), judge(sp, atMost(1.2), 1.2))
	}
	var rss float64
	for md := saturation; md < numModes; md++ {
		rss = max(rss, r.maxOf(md, sysProd, func(m measurement) float64 { return float64(m.rssMax) })/mib)
	}
	fmt.Fprintf(&b, "| forkwatch with metrics, RSS per worker <= 16 MiB | both | %.1f MiB (largest worker, any round) | %s |\n", rss, verdict(rss > 0 && rss <= 16))
	exact, udpMax := 0, 0.0
	for _, s := range r.sat {
		if s.exact() {
			exact++
		}
		udpMax = max(udpMax, s.udpPackets/s.responses())
	}
	fmt.Fprintf(&b, "| exactness: 0 lost, 0 duplicated (%d requests per run, internal/loadgen) | saturation | %d of %d runs exact | %s |\n",
		r.opts.satN, exact, len(r.sat), verdict(len(r.sat) > 0 && exact == len(r.sat)))
	fmt.Fprintf(&b, "| (earlier issue) <= 0.01 UDP packets per request | saturation | %.5f (worst accounting run) | %s |\n", udpMax, verdict(len(r.sat) > 0 && udpMax <= 0.01))
	if r.goBench != "" {
		a := r.goBenchAllocs()
		ns := r.goBenchNs()
		nilA, okNil := a["BenchmarkMiddleware/nil"]
		sA, okS := a["BenchmarkMiddleware/statsd"]
		fmt.Fprintf(&b, "| (earlier issue) no allocation per request in our middleware | Go benchmark | allocs/op: no metrics %d, statsd %d (%.0f / %.0f ns/op) | %s |\n",
			nilA, sA, ns["BenchmarkMiddleware/nil"], ns["BenchmarkMiddleware/statsd"],
			verdict(okNil && okS && nilA == 0 && sA == 0))
	}
	return b.String()
}

// costNotes says where forkwatch's extra CPU goes, per request.
func (r *report) costNotes(md mode) string {
	m := func(sys int, f func(measurement) float64) float64 { return r.med(md, sys, f) }
	s := fmt.Sprintf("\nWhere the CPU goes, per request (medians, %s): fasthttp's prefork %.1f µs in its workers; forkwatch without metrics %.1f µs; with metrics %.1f µs in its workers (the statsd client's Record into the segment and its flushes), %.2f µs in its exporter (parsing the request's latency sample; counts arrive pre-summed), %.3f µs in its Prometheus.",
		md, m(sysFast, workersUs), m(sysBase, workersUs), m(sysProd, workersUs), m(sysProd, exporterUs), m(sysProd, promUs))
	if len(r.results[md][sysOrig]) > 0 {
		s += fmt.Sprintf(" The Python original: %.1f µs in its workers, %.2f µs in its exporter (two datagrams per request), %.3f µs in its Prometheus.",
			m(sysOrig, workersUs), m(sysOrig, exporterUs), m(sysOrig, promUs))
	}
	return s + "\n"
}

// roundsTable lists every measurement.
func (r *report) roundsTable() string {
	var b strings.Builder
	b.WriteString("| load | round | system | requests | req/s | p50 | p99 | non-2xx | socket errors | CPU µs/request: workers | exporter | Prometheus | load generator CPU s |\n")
	b.WriteString("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for md := saturation; md < numModes; md++ {
		for k := 0; k < r.opts.rounds; k++ {
			for i, t := range r.targets {
				if k >= len(r.results[md][i]) {
					continue
				}
				m := r.results[md][i][k]
				fmt.Fprintf(&b, "| %s | %d | %s | %d | %.0f | %s | %s | %d | %d | %.2f | %.2f | %.3f | %.2f |\n", md, k+1, t.name, m.load.Requests,
					m.load.ReqPerSec, ms(m.load.P50), ms(m.load.P99), m.load.Non2xx, m.load.Errors,
					workersUs(m), exporterUs(m), promUs(m), m.load.CPU.Seconds())
			}
		}
	}
	return b.String()
}

func (r *report) satTable() string {
	var b strings.Builder
	b.WriteString("| run | responses (2xx) | failed requests | req/s | p99 | sum(request_count) delta | request_latency_seconds_count delta | lost | duplicated | UDP packets/request | exporter drop counters | kernel UDP RcvbufErrors delta (machine-wide) | other series of the app |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n")
	for i, s := range r.sat {
		var drops []string
		for _, k := range dropCounters {
			drops = append(drops, fmt.Sprintf("%s %.0f", strings.TrimPrefix(strings.TrimSuffix(k, "_total"), "statsd_exporter_"), s.drops[k]))
		}
		fmt.Fprintf(&b, "| %d | %d (%d) | %d | %.0f | %s | %.0f | %.0f | %d (latency: %d) | %d (latency: %d) | %.5f | %s | %d | %+.0f |\n",
			i+1, s.load.Requests, s.load.Requests-s.load.Non2xx, s.load.Errors, s.load.ReqPerSec, ms(s.load.P99),
			s.counted, s.histCounted, s.lost(), s.histLost(), s.duplicated(), s.histDup(),
			s.udpPackets/s.responses(), strings.Join(drops, ", "), s.rcvbufErrors, s.otherSeries)
	}
	return b.String()
}

var benchLine = regexp.MustCompile(`(?m)^(Benchmark\S+)\s+\d+\s+([\d.]+) ns/op\s+(\d+) B/op\s+(\d+) allocs/op`)

// goBenchAllocs returns allocs/op per benchmark name (without the -N suffix).
func (r *report) goBenchAllocs() map[string]int {
	out := map[string]int{}
	for _, m := range benchLine.FindAllStringSubmatch(r.goBench, -1) {
		name := m[1]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i]
		}
		n, _ := strconv.Atoi(m[4])
		out[name] = n
	}
	return out
}

func (r *report) goBenchNs() map[string]float64 {
	out := map[string]float64{}
	for _, m := range benchLine.FindAllStringSubmatch(r.goBench, -1) {
		name := m[1]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i]
		}
		out[name], _ = strconv.ParseFloat(m[2], 64)
	}
	return out
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**MISSED**"
}

// tables is what is printed at the end of a run.
func (r *report) tables() string {
	var b strings.Builder
	for md := saturation; md < numModes; md++ {
		fmt.Fprintf(&b, "CPU per request and throughput, %s:\n\n", md)
		b.WriteString(r.systemsTable(md))
		b.WriteString("\n")
	}
	b.WriteString("Round by round:\n\n")
	b.WriteString(r.comparisonsTable())
	b.WriteString("\nAccounting at saturation (internal/loadgen, forkwatch):\n\n")
	b.WriteString(r.satTable())
	b.WriteString("\nTargets:\n\n")
	b.WriteString(r.targetsTable())
	return b.String()
}

func (r *report) markdown() string {
	var b strings.Builder
	f := r.facts
	o := r.opts
	fmt.Fprintf(&b, "# Benchmarks\n\nWritten by `make bench` (scripts/bench.sh -> bin/bench) on %s, took %s.\n\n",
		r.started.Format("2006-01-02 15:04 MST"), time.Since(r.started).Round(time.Second))
	fmt.Fprintf(&b, "Machine: %d CPUs, %s; kernel %s; %s. Load average at start: %s.\n", f.CPUs, f.CPUModel, f.Kernel, f.GoVersion, f.LoadAvg)
	var others []float64
	for md := saturation; md < numModes; md++ {
		for i := range r.targets {
			for _, m := range r.results[md][i] {
				others = append(others, m.othersCPU.Seconds()/m.window.Seconds())
			}
		}
	}
	if f.OthersBusy > 0.05 || median(others) > 0.1 {
		fmt.Fprintf(&b, "\n**Shared machine**: other processes (not part of this benchmark) kept %.0f%% of the %d CPUs busy in the 3 s before the run and a median %.2f CPUs during the measurements (column \"other load\"). Absolute figures are lower and noisier than on an idle machine; the ratios compare systems measured in the same round, back to back.\n",
			100*f.OthersBusy, f.CPUs, median(others))
	}
	b.WriteString("\nEverything runs on 127.0.0.1: the load generator, the systems under test, their exporters and Prometheus share the same CPUs.\n")

	fmt.Fprintf(&b, `
## Systems

- **fasthttp prefork**: fasthttp's own `+"`prefork`"+` package (cmd/bench/fastprefork), the demo routes in a plain switch, no metrics, %[1]d children (GOMAXPROCS 1 each, as prefork sets it), with the same fasthttp.Server limits as forkwatch's workers (read/write/idle timeouts, header buffer, body size, concurrency: what a production server needs against slow clients), so the comparison isolates the supervisor, Mux and middleware; the yardstick.
- **no metrics**: forkwatch (bin/webapp) with -no-metrics, %[1]d workers.
- **forkwatch**: forkwatch with metrics on: its statsd client in each worker, statsd_exporter and Prometheus (started by internal/launch as `+"`make run`"+` starts them), the audit ledger (-admin-addr).
- **Python original**: cmd/bench/original/app.py, Flask under uwsgi, %[1]d workers, two DogStatsD datagrams per request to its own exporter and Prometheus.
`, o.workers)

	b.WriteString("\n## Targets\n\n")
	b.WriteString(r.targetsTable())
	b.WriteString("\nA target is judged on the median of the paired per-round figures; where the rounds fall on both sides of the threshold the verdict is within this run's noise (see the round-by-round table).\n")

	fmt.Fprintf(&b, `
## CPU per request

The primary figure: utime+stime of each component's processes (from /proc/<pid>/stat through prometheus/procfs: for the workers, the master (forkwatch's supervisor, prefork's master, uwsgi's master) and its children; the exporter; Prometheus), from before a measured run to 1 s after it (metrics in flight drain), divided by the requests served in the run. %[1]d rounds per load, each measuring every system once, back to back (%[2]s warm-up, then %[3]s measured), the order reversed every other round; medians with [min..max] over the rounds. RSS is VmRSS of each worker (children only) sampled every 0.5 s. UDP packets are the exporter's statsd_exporter_udp_packets_total delta.

### At saturation

`+"`%[4]s`"+` (GET /test/, keep-alive) against each system.

`, o.rounds, o.warmup, o.duration, r.wrkCmd)
	b.WriteString(r.systemsTable(saturation))
	b.WriteString(r.costNotes(saturation))
	b.WriteString("\nThe Python original's socket errors are wrk's read errors: uwsgi's --http-socket (as its README runs it) closes the connection after each response, and wrk counts that; every one of those requests got its 200 (non-2xx is 0).\n")
	fmt.Fprintf(&b, `
### At a fixed load

internal/loadgen in bin/bench's own process offers %.0f requests per second (%.2f x forkwatch -no-metrics's median req/s at saturation above) over %d connections for %s per measurement: request i is sent no earlier than i/rate after the start (loadgen.Options.Rate). The Python original is not run at this load: it is above its maximum. Latencies are from each request's send to its answer.

`, r.rate, o.fixedShare, o.conns, o.duration)
	b.WriteString(r.systemsTable(fixedLoad))
	b.WriteString(r.costNotes(fixedLoad))

	b.WriteString("\n## Round by round\n\nEach figure pairs two systems measured in the same round, back to back. The spread between rounds is the noise this run can resolve: a difference smaller than it is not shown by this run.\n\n")
	b.WriteString(r.comparisonsTable())
	b.WriteString("\nEvery measurement:\n\n")
	b.WriteString(r.roundsTable())

	fmt.Fprintf(&b, "\n## Accounting at saturation\n\n`%s`, %d times, against forkwatch with metrics on. Before each run the exporter's counters are read once they have not moved for 1 s; after it, once they have reached the responses' count and not moved for 1 s (at most 30 s). Lost = responses - counted, duplicated = counted - responses, for `sum(request_count{app_name=\"webapp\", endpoint=\"/test/\"})` and the same series of `request_latency_seconds_count`. \"Other series\" is what the app's other request_count series gained meanwhile (408s for connections that wrk cut mid-request earlier, answered when their read timeout ends): not part of the comparison, shown so nothing is hidden.\n\n",
		r.satCmd, o.satRuns)
	b.WriteString(r.satTable())
	fmt.Fprintf(&b, "\nThe workers' own metric send errors (logged by each worker at exit): %s.\n", r.sendErrors)

	b.WriteString("\n## The accounting audit after the run\n\n`fwctl audit` logic (verify.WaitAudit) against forkwatch's Prometheus and the supervisor's ledger (-admin-addr), covering every request of the run above (warm-ups, measured rounds at both loads and saturation runs):\n\n```\n")
	var ab strings.Builder
	_ = r.audit.Print(&ab)
	b.WriteString(ab.String())
	b.WriteString("```\n")

	if r.goBench != "" {
		fmt.Fprintf(&b, "\n## Middleware hot path (Go benchmarks)\n\n`%s`. `Middleware` calls the server's handler with one reused RequestCtx (routing + middleware + handler, no network); `Serve` goes through fasthttp's in-memory listener with a fasthttp client (whole server, client included). `nil` is no Recorder (the no-metrics baseline), `statsd` the product's client (Record into a segment, a flush goroutine sending through datadog-go) to a UDP socket that is read and discarded. B/op with metrics on is the flush goroutine's datadog-go buffers, amortised: allocs/op rounds to 0.\n\n```\n%s```\n",
			r.goBenchCmd, r.goBench)
	}

	b.WriteString("\n## Exact commands\n\n```\n")
	fmt.Fprintf(&b, "flock /tmp/forkwatch-ports.lock make bench   # = scripts/bench.sh = bin/bench %s\n", strings.Join(os.Args[1:], " "))
	for _, t := range r.targets {
		fmt.Fprintf(&b, "\n# %s (%s)\n", t.name, t.url)
		for _, c := range t.commands {
			b.WriteString(c + "\n")
		}
	}
	fmt.Fprintf(&b, "\n# load\n%s\n# fixed load, in bin/bench (cmd/bench/measure.go rateLoader):\nloadgen.Run(ctx, loadgen.Options{URL: <url>, Mix: /test/, Duration: %s, Concurrency: %d, Rate: %.0f, Latencies: true})\n%s\n",
		r.wrkCmd, o.duration, o.conns, r.rate, r.satCmd)
	b.WriteString("```\n")
	return b.String()
}
