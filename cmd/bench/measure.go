package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/forkwatch/forkwatch/internal/loadgen"
	"github.com/forkwatch/forkwatch/internal/proctree"
)

// mode is how the systems are loaded in a measurement.
type mode int

const (
	// saturation: wrk, as many requests as the machine serves.
	saturation mode = iota
	// fixedLoad: internal/loadgen at a constant offered rate (a share of
	// the no-metrics maximum measured earlier in the same run).
	fixedLoad
	numModes
)

func (m mode) String() string {
	if m == fixedLoad {
		return "fixed load"
	}
	return "saturation"
}

// measurement is one measured run against one system.
type measurement struct {
	load loadResult
	// workersCPU is the master's (supervisor, prefork master, uwsgi master)
	// and its children's utime+stime over the run.
	workersCPU, exporterCPU, promCPU time.Duration
	othersCPU                        time.Duration // busy CPU of everything else on the machine
	window                           time.Duration // wall time between the CPU readings
	rssMax, rssAvg                   int64         // per worker (children only)
	workers                          int
	udpPackets                       float64
}

// us returns d per request served, in microseconds.
func (m measurement) us(d time.Duration) float64 {
	if m.load.Requests == 0 {
		return 0
	}
	return d.Seconds() * 1e6 / float64(m.load.Requests)
}

// totalCPU is the CPU of the whole system under test: workers, exporter,
// Prometheus.
func (m measurement) totalCPU() time.Duration { return m.workersCPU + m.exporterCPU + m.promCPU }

// loader runs one load against url for d and returns what it measured.
type loader func(ctx context.Context, url string, d time.Duration) (loadResult, error)

// wrkLoader saturates with wrk.
func wrkLoader(o options) loader {
	return func(ctx context.Context, url string, d time.Duration) (loadResult, error) {
		out, cpu, err := run(ctx, "wrk", wrkArgs(o.threads, o.conns, d, url)...)
		if err != nil {
			return loadResult{}, err
		}
		r, err := parseWrk(out)
		r.CPU = cpu
		return r, err
	}
}

// rateLoader offers rate requests per second with internal/loadgen, in this
// process (its CPU is this process's).
func rateLoader(o options, rate float64) loader {
	return func(ctx context.Context, url string, d time.Duration) (loadResult, error) {
		return runLoadgen(ctx, loadgen.Options{URL: strings.TrimSuffix(url, "/test/"), Mix: loadgen.Mix{{Path: "/test/", Weight: 1}},
			Duration: d, Concurrency: o.conns, Rate: rate, Latencies: true})
	}
}

// runLoadgen runs the project's load generator in this process (its CPU is
// this process's) and reports it as a loadResult.
func runLoadgen(ctx context.Context, lo loadgen.Options) (loadResult, error) {
	{
		_, cpu0, _ := procStat(os.Getpid())
		res, err := loadgen.Run(ctx, lo)
		if err != nil {
			return loadResult{}, err
		}
		_, cpu1, _ := procStat(os.Getpid())
		r := loadResult{Requests: int64(res.Sent - res.Errors), Errors: int64(res.Errors), Took: res.Elapsed,
			P50: res.Percentile(0.5), P99: res.Percentile(0.99), CPU: cpu1 - cpu0}
		r.ReqPerSec = float64(r.Requests) / res.Elapsed.Seconds()
		for k, n := range res.Counts {
			if k.Status != 0 && (k.Status < 200 || k.Status > 299) {
				r.Non2xx += int64(n)
			}
		}
		if res.Errors > 0 {
			r.Output = res.FirstError
		}
		return r, nil
	}
}

// measure runs one unmeasured warm-up and one measured run of load against
// t, reading the CPU time of its processes from /proc before and after.
func measure(ctx context.Context, o options, t *target, load loader) (measurement, error) {
	var m measurement
	if _, err := load(ctx, t.url, o.warmup); err != nil {
		return m, err
	}
	// Let the warm-up's metrics drain (flush interval, exporter queue)
	// before the counters are read.
	if err := sleep(ctx, time.Second); err != nil {
		return m, err
	}
	workers := proctree.Children(t.master())
	m.workers = len(workers)
	procs := append([]int{t.master()}, workers...)
	cpu := func() (w, e, p time.Duration) {
		w = cpuOf(procs)
		if t.exporter != nil {
			e = cpuOf([]int{t.exporter.PID()})
		}
		if t.prom != nil {
			p = cpuOf([]int{t.prom.PID()})
		}
		return
	}
	udp := func() float64 {
		if t.exporter == nil {
			return 0
		}
		v, _ := scrapeSum(ctx, t.exporter.URL, udpPackets, nil)
		return v
	}
	u0 := udp()
	w0, e0, p0 := cpu()
	busy0, t0 := machineBusy(), time.Now()

	rss := map[int]int64{}
	stopRSS := make(chan struct{})
	rssDone := make(chan struct{})
	go func() {
		defer close(rssDone)
		tk := time.NewTicker(500 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stopRSS:
				return
			case <-tk.C:
				for _, p := range workers {
					if r := rssBytes(p); r > rss[p] {
						rss[p] = r
					}
				}
			}
		}
	}()
	res, err := load(ctx, t.url, o.duration)
	close(stopRSS)
	<-rssDone
	if err != nil {
		return m, err
	}
	if err := sleep(ctx, time.Second); err != nil { // the same drain as before
		return m, err
	}
	w1, e1, p1 := cpu()
	busy1 := machineBusy()
	m.window = time.Since(t0)
	m.load = res
	m.workersCPU, m.exporterCPU, m.promCPU = w1-w0, e1-e0, p1-p0
	m.udpPackets = udp() - u0
	m.othersCPU = max(0, (busy1-busy0)-(m.totalCPU()+res.CPU))
	var sum int64
	for _, r := range rss {
		sum += r
		m.rssMax = max(m.rssMax, r)
	}
	if len(rss) > 0 {
		m.rssAvg = sum / int64(len(rss))
	}
	if got := len(proctree.Children(t.master())); got != m.workers {
		return m, fmt.Errorf("%d workers before the run, %d after: a worker died", m.workers, got)
	}
	return m, nil
}
