package main

import (
	"fmt"
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
	results    [][]measurement // per target, per round
	sat        []satRun
	audit      verify.Report
	sendErrors string
	goBench    string
	goBenchCmd string
	wrkCmd     string
	heyCmd     string
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

// med is the median over rounds of f for target i.
func (r *report) med(i int, f func(measurement) float64) float64 {
	var xs []float64
	for _, m := range r.results[i] {
		xs = append(xs, f(m))
	}
	return median(xs)
}

func (r *report) maxOf(i int, f func(measurement) float64) float64 {
	var best float64
	for _, m := range r.results[i] {
		best = max(best, f(m))
	}
	return best
}

const mib = 1 << 20

// ratios returns product/baseline and product/original req/s per round.
func (r *report) ratios() (noMetrics, original []float64) {
	for k := range r.results[sysProd] {
		p := r.results[sysProd][k].load.ReqPerSec
		if k < len(r.results[sysBase]) && r.results[sysBase][k].load.ReqPerSec > 0 {
			noMetrics = append(noMetrics, p/r.results[sysBase][k].load.ReqPerSec)
		}
		if k < len(r.results[sysOrig]) && r.results[sysOrig][k].load.ReqPerSec > 0 {
			original = append(original, p/r.results[sysOrig][k].load.ReqPerSec)
		}
	}
	return noMetrics, original
}

// costRatios returns, per round, the product's CPU per request (workers,
// exporter, Prometheus) over the baseline's.
func (r *report) costRatios() []float64 {
	var out []float64
	cost := func(m measurement) float64 {
		return (m.workersCPU + m.exporterCPU + m.promCPU).Seconds() / float64(m.load.Requests)
	}
	for k := range r.results[sysProd] {
		if k < len(r.results[sysBase]) && r.results[sysBase][k].load.Requests > 0 && r.results[sysProd][k].load.Requests > 0 {
			out = append(out, cost(r.results[sysProd][k])/cost(r.results[sysBase][k]))
		}
	}
	return out
}

// costNotes says where the product's extra CPU goes, per request, from the
// medians above; CPU per request depends less on the machine's other load
// than req/s does.
func (r *report) costNotes() string {
	us := func(i int, f func(measurement) time.Duration) float64 {
		return r.med(i, func(m measurement) float64 { return f(m).Seconds() * 1e6 / float64(m.load.Requests) })
	}
	wb := us(sysBase, func(m measurement) time.Duration { return m.workersCPU })
	wp := us(sysProd, func(m measurement) time.Duration { return m.workersCPU })
	ep := us(sysProd, func(m measurement) time.Duration { return m.exporterCPU })
	pp := us(sysProd, func(m measurement) time.Duration { return m.promCPU })
	wo := us(sysOrig, func(m measurement) time.Duration { return m.workersCPU })
	eo := us(sysOrig, func(m measurement) time.Duration { return m.exporterCPU })
	var b strings.Builder
	fmt.Fprintf(&b, "\nWhere the CPU goes, per request (medians): workers without metrics %.1f µs; forkwatch's workers %.1f µs (%+.1f µs: the statsd client's Record and flushes, the audit tally), its exporter %.2f µs (parsing and observing the request's histogram sample; counts arrive pre-summed), its Prometheus %.3f µs. Everything shares the same %d CPUs with the load generator, so when they are saturated the product's req/s falls with its extra CPU per request. The Python original: workers %.1f µs, exporter %.2f µs (two datagrams per request), %.1fx forkwatch's CPU per request.\n",
		wb, wp, wp-wb, ep, pp, r.facts.CPUs, wo, eo, (wo+eo)/(wp+ep+pp))
	return b.String()
}

func ms(d float64) string { return fmt.Sprintf("%.2f ms", d/float64(time.Millisecond)) }

func na(ok bool, s string) string {
	if !ok {
		return "n/a"
	}
	return s
}

// throughputTable is the main table, medians over the rounds.
func (r *report) throughputTable() string {
	var b strings.Builder
	b.WriteString("| system | req/s | p50 | p99 | CPU s/100k req: workers | exporter | Prometheus | RSS per worker, max (avg) | UDP packets/request | other load on the machine |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for i, t := range r.targets {
		hasExp := t.exporter != nil
		others := r.med(i, func(m measurement) float64 { return m.othersCPU.Seconds() / m.window.Seconds() })
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %.2f | %s | %s | %.1f MiB (%.1f) | %s | %.2f CPUs |\n",
			t.name,
			r.med(i, func(m measurement) float64 { return m.load.ReqPerSec }),
			ms(r.med(i, func(m measurement) float64 { return float64(m.load.P50) })),
			ms(r.med(i, func(m measurement) float64 { return float64(m.load.P99) })),
			r.med(i, func(m measurement) float64 { return m.per100k(m.workersCPU) }),
			na(hasExp, fmt.Sprintf("%.2f", r.med(i, func(m measurement) float64 { return m.per100k(m.exporterCPU) }))),
			na(hasExp, fmt.Sprintf("%.3f", r.med(i, func(m measurement) float64 { return m.per100k(m.promCPU) }))),
			r.maxOf(i, func(m measurement) float64 { return float64(m.rssMax) })/mib,
			r.med(i, func(m measurement) float64 { return float64(m.rssAvg) })/mib,
			na(hasExp, fmt.Sprintf("%.4f", r.med(i, func(m measurement) float64 { return m.udpPackets / float64(m.load.Requests) }))),
			others)
	}
	nm, orig := r.ratios()
	cost := r.costRatios()
	fmt.Fprintf(&b, "\nCPU per request of the whole system under test (workers + exporter + Prometheus), product/no-metrics: **%.2f** %s.\n", median(cost), list(cost, "%.2f"))
	fmt.Fprintf(&b, "\nRatios of req/s, median of the rounds (each round's in brackets): product/no-metrics **%.3f** %s; product/original **%.2f** %s.\n",
		median(nm), list(nm, "%.3f"), median(orig), list(orig, "%.2f"))
	return b.String()
}

func list(xs []float64, format string) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf(format, x)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// roundsTable lists every measurement.
func (r *report) roundsTable() string {
	var b strings.Builder
	b.WriteString("| round | system | requests | req/s | p50 | p99 | non-2xx | socket errors | workers CPU s | wrk CPU s |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for k := 0; k < r.opts.rounds; k++ {
		for i, t := range r.targets {
			if k >= len(r.results[i]) {
				continue
			}
			m := r.results[i][k]
			fmt.Fprintf(&b, "| %d | %s | %d | %.0f | %s | %s | %d | %d | %.2f | %.2f |\n", k+1, t.name, m.load.Requests,
				m.load.ReqPerSec, ms(float64(m.load.P50)), ms(float64(m.load.P99)), m.load.Non2xx, m.load.Errors,
				m.workersCPU.Seconds(), m.load.CPU.Seconds())
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
			i+1, s.load.Requests, s.load.Requests-s.load.Non2xx, s.load.Errors, s.load.ReqPerSec, ms(float64(s.load.P99)),
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

// targetsTable compares the measurements with the targets.
func (r *report) targetsTable() string {
	var b strings.Builder
	b.WriteString("| target | measured | result |\n|---|---|---|\n")
	nm, orig := r.ratios()
	fmt.Fprintf(&b, "| product req/s >= 0.95x no-metrics (aim 0.98x) | %.3fx (median of %d rounds) | %s |\n", median(nm), len(nm), verdict(median(nm) >= 0.95))
	fmt.Fprintf(&b, "| product req/s >= 10x the Python original | %.2fx | %s |\n", median(orig), verdict(median(orig) >= 10))
	exact, udpMax := 0, 0.0
	for _, s := range r.sat {
		if s.exact() {
			exact++
		}
		udpMax = max(udpMax, s.udpPackets/s.responses())
	}
	fmt.Fprintf(&b, "| 0 lost, 0 duplicated over %d requests at saturation, %d of %d runs | %d of %d runs exact | %s |\n",
		r.opts.satN, r.opts.satRuns, r.opts.satRuns, exact, len(r.sat), verdict(len(r.sat) > 0 && exact == len(r.sat) && len(r.sat) >= 3))
	fmt.Fprintf(&b, "| <= 0.01 UDP packets per request at saturation | %.5f (worst run) | %s |\n", udpMax, verdict(len(r.sat) > 0 && udpMax <= 0.01))
	if r.goBench != "" {
		a := r.goBenchAllocs()
		ns := r.goBenchNs()
		nilA, okNil := a["BenchmarkMiddleware/nil"]
		sA, okS := a["BenchmarkMiddleware/statsd"]
		tA, okT := a["BenchmarkMiddleware/statsd+tally"]
		fmt.Fprintf(&b, "| no allocation per request in our middleware beyond datadog-go's own | allocs/op: no metrics %d, statsd %d, statsd+tally %d (%.0f / %.0f / %.0f ns/op) | %s |\n",
			nilA, sA, tA, ns["BenchmarkMiddleware/nil"], ns["BenchmarkMiddleware/statsd"], ns["BenchmarkMiddleware/statsd+tally"],
			verdict(okNil && okS && okT && nilA == 0 && tA == sA))
	}
	rss := r.maxOf(sysProd, func(m measurement) float64 { return float64(m.rssMax) }) / mib
	fmt.Fprintf(&b, "| RSS per worker < 20 MiB under load | %.1f MiB (largest forkwatch worker) | %s |\n", rss, verdict(rss < 20))
	return b.String()
}

// tables is what is printed at the end of a run.
func (r *report) tables() string {
	var b strings.Builder
	b.WriteString("Throughput (wrk, medians of the rounds):\n\n")
	b.WriteString(r.throughputTable())
	b.WriteString("\nAccounting at saturation (hey, forkwatch):\n\n")
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
	for i := range r.targets {
		for _, m := range r.results[i] {
			others = append(others, m.othersCPU.Seconds()/m.window.Seconds())
		}
	}
	if f.OthersBusy > 0.05 || median(others) > 0.1 {
		fmt.Fprintf(&b, "\n**Shared machine**: other processes (not part of this benchmark) kept %.0f%% of the %d CPUs busy in the 3 s before the run and a median %.2f CPUs during the measurements (column \"other load\"). Absolute figures are lower and noisier than on an idle machine; the ratios compare systems measured in the same rounds, in alternating order, with the no-metrics baseline and the product always measured back to back.\n",
			100*f.OthersBusy, f.CPUs, median(others))
	}
	b.WriteString("\nEverything runs on 127.0.0.1: the load generator, the systems under test, their exporters and Prometheus share the same CPUs.\n")

	b.WriteString("\n## Targets\n\n")
	b.WriteString(r.targetsTable())

	fmt.Fprintf(&b, "\n## Throughput and cost\n\n%d rounds; in each, every system gets a %s wrk warm-up and then a measured `%s` (GET /test/, keep-alive). Medians over the rounds. CPU seconds are utime+stime deltas from /proc/<pid>/stat over the measured run (plus 1 s for the metrics in flight to drain), divided by the requests wrk completed, times 100,000. RSS is VmRSS sampled every 0.5 s during the run. UDP packets are the exporter's statsd_exporter_udp_packets_total delta.\n\n",
		o.rounds, o.warmup, r.wrkCmd)
	b.WriteString(r.throughputTable())
	b.WriteString(r.costNotes())
	b.WriteString("\nThe Python original's socket errors are wrk's read errors: uwsgi's --http-socket (as its README runs it) closes the connection after each response, and wrk counts that; every one of those requests got its 200 (non-2xx is 0). Its README measured about 14.6k req/s for it with metrics on, on an idle machine of the same size, so the product/original ratio here depends on how loaded the machine is: the CPU per request above is the steadier comparison.\n")
	b.WriteString("\nEvery measurement:\n\n")
	b.WriteString(r.roundsTable())

	fmt.Fprintf(&b, "\n## Accounting at saturation\n\n`%s`, %d times, against forkwatch with metrics on. Before each run the exporter's counters are read once they have not moved for 1 s; after it, once they have reached the responses' count and not moved for 1 s (at most 30 s). Lost = responses - counted, duplicated = counted - responses, for `sum(request_count{app_name=\"webapp\", endpoint=\"/test/\"})` and the same series of `request_latency_seconds_count`. \"Other series\" is what the app's other request_count series gained meanwhile (408s for connections that wrk cut mid-request earlier, answered when their read timeout ends): not part of the comparison, shown so nothing is hidden.\n\n",
		r.heyCmd, o.satRuns)
	b.WriteString(r.satTable())
	fmt.Fprintf(&b, "\nThe workers' own metric send errors (logged by each worker at exit): %s.\n", r.sendErrors)

	b.WriteString("\n## The accounting audit after the run\n\n`webapp audit` logic (verify.WaitAudit) against forkwatch's Prometheus and the supervisor's ledger (-admin-addr), covering every request of the run above (warm-ups, throughput rounds and saturation runs):\n\n```\n")
	var ab strings.Builder
	_ = r.audit.Print(&ab)
	b.WriteString(ab.String())
	b.WriteString("```\n")

	if r.goBench != "" {
		fmt.Fprintf(&b, "\n## Middleware hot path (Go benchmarks)\n\n`%s`. `Middleware` calls the server's handler with one reused RequestCtx (routing + middleware + handler, no network); `Serve` goes through fasthttp's in-memory listener with a fasthttp client (whole server, client included). `nil` is no Recorder (the no-metrics baseline), `statsd` the product's datadog-go client sending to a UDP socket that is read and discarded, `statsd+tally` adds the audit tally as cmd/webapp wires it. B/op with metrics on is datadog-go's aggregation buffers, amortised: allocs/op rounds to 0.\n\n```\n%s```\n",
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
	fmt.Fprintf(&b, "\n# load\n%s\n%s\n", r.wrkCmd, r.heyCmd)
	b.WriteString("```\n")
	return b.String()
}
