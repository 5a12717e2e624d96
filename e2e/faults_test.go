//go:build e2e

package e2e

// The fault table of docs/faults.md: each test applies one fault to the real
// webapp (or testapp) under a bounded loopback load, against the real
// statsd_exporter, waits until the counts settle, checks they are exact and
// logs its row as a "fault:" line (faultRow). Rows measured elsewhere:
// TestKillWorkerUnderLoad, TestReloadUnderLoad, TestStopUnderLoad,
// TestRecycle (supervisor_test.go), TestAuditSeesExporterRestart
// (audit_test.go).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/forkwatch/forkwatch/internal/launch"
	"github.com/forkwatch/forkwatch/internal/proctree"
	"github.com/forkwatch/forkwatch/internal/stacktest"
)

var testLatency = map[string]string{"endpoint": "/test/"}

// settledTest waits until the exporter's /test/ counts settle and returns
// the request count and the latency count.
func settledTest(t *testing.T, exporterURL string) (counted, latency float64) {
	t.Helper()
	return settledSum(t, exporterURL, "request_count", testOK),
		settledSum(t, exporterURL, "request_latency_seconds", testLatency)
}

// waitCounted waits until the exporter has counted more than n /test/
// answers: the load is under way (or still going after a fault).
func waitCounted(t *testing.T, exporterURL string, n float64) {
	t.Helper()
	stacktest.Eventually(t, 10*time.Second, func() (bool, string) {
		v := stacktest.Sum(stacktest.Scrape(t, exporterURL), "request_count", testOK)
		return v > n, fmt.Sprintf("%v counted so far, waiting for more than %v", v, n)
	})
}

// TestFaultHangKillUnderLoad: one worker, a request that never finishes and
// a load on /test/ hitting the same worker. After -hang-timeout the
// supervisor kills the worker; its other in-flight requests are reset (the
// clients retry them on the replacement), and every /test/ answered OK is
// counted: the supervisor sends what the killed worker left in its segment.
func TestFaultHangKillUnderLoad(t *testing.T) {
	exporter := stacktest.Exporter(t)
	app := stacktest.StartBinary(t, testApp(t), 1, "-statsd-addr", exporter.StatsdAddr, "-hang-timeout", "1s")
	victim := app.Workers()[0]

	const conc = 4
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	wait := startLoad(ctx, app.URL+"/test/", conc, 1_000_000)
	waitCounted(t, exporter.URL, 500)

	hung := make(chan error, 1)
	go func() {
		c := &http.Client{Timeout: 15 * time.Second}
		resp, err := c.Get(app.URL + "/hang/")
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("answered %s", resp.Status)
		} else {
			err = nil
		}
		hung <- err
	}()
	app.WaitLog(t, "hang request started", 1, 5*time.Second)
	app.WaitLog(t, `msg="worker hung: a job ran past the timeout; killing it"`, 1, 10*time.Second)
	app.WaitLog(t, `msg="worker ready"`, 2, 10*time.Second)
	// The load goes on against the replacement for a while.
	at := stacktest.Sum(stacktest.Scrape(t, exporter.URL), "request_count", testOK)
	waitCounted(t, exporter.URL, at+500)
	cancel()
	res := wait()
	if err := <-hung; err != nil {
		t.Errorf("the hung request: %v, want no answer (its worker was killed)", err)
	}
	if proctree.Alive(victim) {
		t.Errorf("hung worker %d still alive", victim)
	}
	counted, latency := settledTest(t, exporter.URL)
	faultRow(t, "hang kill (-hang-timeout 1s, 1 worker) with /test/ requests in flight", res, counted, latency, conc)
	if n := stacktest.Sum(stacktest.Scrape(t, exporter.URL), "forkwatch_worker_restarts_total", map[string]string{"reason": "timeout"}); n != 1 {
		t.Errorf("forkwatch_worker_restarts_total{reason=timeout} = %v, want 1", n)
	}
	t.Logf("hang kill under load: %s", res)
}

// TestFaultSupervisorKillUnderLoad: kill -9 of the supervisor under load.
// The workers see their control pipe close and stop as if told to: they
// drain and flush, so every answer is counted although nobody is left to
// send a remainder.
func TestFaultSupervisorKillUnderLoad(t *testing.T) {
	exporter := stacktest.Exporter(t)
	app := stacktest.StartApp(t, 3, "-statsd-addr", exporter.StatsdAddr)
	workers := app.Workers()

	const conc = 8
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	wait := startLoad(ctx, app.URL+"/test/", conc, 1_000_000)
	waitCounted(t, exporter.URL, 1000)
	if err := syscall.Kill(app.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	stacktest.Eventually(t, 15*time.Second, func() (bool, string) {
		var alive []int
		for _, pid := range workers {
			if proctree.Alive(pid) {
				alive = append(alive, pid)
			}
		}
		return len(alive) == 0, fmt.Sprintf("workers %v still running after the supervisor died", alive)
	})
	cancel()
	res := wait()
	counted, latency := settledTest(t, exporter.URL)
	// Failures are the connections refused once every worker had closed
	// the socket.
	faultRow(t, "supervisor SIGKILL under load (3 workers)", res, counted, latency, conc)
	t.Logf("supervisor SIGKILL under load: %s", res)
}

// TestFaultStackInterrupt: Ctrl-C of `make run` under load, as a terminal
// sends it: SIGINT to cmd/stack's whole process group. The stack must stop
// in order within 20 s (the webapp drains, Prometheus scrapes once more, the
// exporter stops), kill nothing, and leave no process behind. A terminal
// hangup (SIGHUP to the group) must do the same. Regression: Ctrl-C reaches
// the supervisor (it shares the terminal's group) and the stack's SIGTERM
// follows milliseconds later; the supervisor used to take that as a second
// signal and SIGKILL every worker. Now signals within a second are one stop.
func TestFaultStackInterrupt(t *testing.T) {
	stackBin := stacktest.Build(t, "./cmd/stack")
	webapp := stacktest.Webapp(t)
	for _, tc := range []struct {
		name  string
		sig   syscall.Signal
		fault string
	}{
		{"ctrl-c", syscall.SIGINT, "Ctrl-C (SIGINT to the group) of make run under load"},
		{"hangup", syscall.SIGHUP, "terminal hangup (SIGHUP to the group) of make run under load"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			appAddr := stacktest.FreeAddr(t, false)
			exporterAddr := stacktest.FreeAddr(t, false)
			stack := stacktest.StartCommand(t, "stack", stackBin,
				"-app", appAddr, "-statsd", stacktest.FreeAddr(t, true), "-exporter", exporterAddr,
				"-prometheus", stacktest.FreeAddr(t, false), "-admin", stacktest.FreeAddr(t, false),
				"-dir", t.TempDir(), "-root", stacktest.Root(t), "-webapp", webapp)
			stack.WaitLog(t, "forkwatch is up", 1, 60*time.Second)
			stack.WaitLog(t, `msg="worker ready"`, 5, 30*time.Second)
			exporterURL := "http://" + exporterAddr
			// The exporter stops with the stack: its last scrape is the
			// final count.
			watch := watchCounters(t, exporterURL)

			const conc = 8
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			wait := startLoad(ctx, "http://"+appAddr+"/test/", conc, 1_000_000)
			waitCounted(t, exporterURL, 1000)

			tree := proctree.Descendants(stack.PID())
			if len(tree) < 3+5 { // exporter, Prometheus, supervisor, 5 workers
				t.Fatalf("stack's processes %v: want at least 8", tree)
			}
			sent := time.Now()
			if err := syscall.Kill(-stack.PID(), tc.sig); err != nil {
				t.Fatal(err)
			}
			// The load stops once the webapp has: after it only refused
			// connections would add to what was sent.
			stack.WaitLog(t, `msg="supervisor stopped"`, 1, 20*time.Second)
			cancel()
			res := wait()
			code := stack.WaitExit(t, 20*time.Second)
			took := time.Since(sent)
			watch.end()
			if code != 0 {
				t.Errorf("stack exit code %d, want 0", code)
			}
			out := stack.Log()
			// The webapp shares the terminal's process group (as it would
			// without the stack, and as operators look for it there), so a
			// hangup reaches the supervisor too and starts a reload, which
			// the stack's stop right after it ends: that is allowed; a kill
			// is not.
			for _, bad := range []string{"killing workers now", "signal: killed", "killed by SIGKILL", "did not stop"} {
				if strings.Contains(out, bad) {
					t.Errorf("stack output has %q:\n%s", bad, out)
				}
			}
			for _, pid := range tree {
				if proctree.Alive(pid) {
					t.Errorf("process %d of the stack still running", pid)
				}
			}
			if err := syscall.Kill(-stack.PID(), 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("the stack's process group still has members (kill -0: %v)", err)
			}
			counted := watch.lastSum("request_count", testOK)
			latency := watch.lastSum("request_latency_seconds", testLatency)
			faultRow(t, tc.fault, res, counted, latency, 0)
			t.Logf("%s: stack exited %d after %s, %d processes gone; load %s", tc.sig, code, took.Round(time.Millisecond), len(tree), res)
		})
	}
}

// unixgramExporter starts an exporter listening for DogStatsD on a Unix
// datagram socket at path only.
func unixgramExporter(t *testing.T, path string) *launch.Process {
	t.Helper()
	return stacktest.ExporterWith(t, launch.Config{Unixgram: path, UnixgramOnly: true})
}

// TestFaultExporterRestartUnderLoad: the exporter stops and comes back on
// the same address while the load goes on, over a Unix datagram socket and
// over loopback UDP. Sends to a socket nobody receives on fail at once (for
// UDP: statsd reads the ICMP refusal right after each write), so the
// workers keep those counts in their segments and send them to the new
// exporter: 0 lost.
//
// The load pauses once, before the stop, so that the old exporter's final
// count can be read (what it had received but not parsed when it stopped
// would die with it, and no scrape can see it); it runs while the exporter
// is down and across its restart.
func TestFaultExporterRestartUnderLoad(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  func(t *testing.T) launch.Config // the same for both exporters
	}{
		{"unixgram", func(t *testing.T) launch.Config {
			return launch.Config{Unixgram: filepath.Join(t.TempDir(), "statsd.sock"), UnixgramOnly: true}
		}},
		{"udp", func(t *testing.T) launch.Config {
			return launch.Config{StatsdAddr: stacktest.FreeAddr(t, true)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg(t)
			exporter := stacktest.ExporterWith(t, cfg)
			app := stacktest.StartApp(t, 2, "-statsd-addr", exporter.StatsdAddr)
			url := app.URL + "/test/"

			const conc, rate = 4, 4000
			before := runLoad(context.Background(), url, conc, 5000)
			c1, l1 := settledTest(t, exporter.URL)
			if err := exporter.Stop(10 * time.Second); err != nil {
				t.Fatal(err)
			}
			stopped := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			wait := startPacedLoad(ctx, url, conc, rate, 1_000_000)
			app.WaitLog(t, "sending metrics failed", 1, 5*time.Second)
			stacktest.Eventually(t, 5*time.Second, func() (bool, string) {
				return time.Since(stopped) > 1500*time.Millisecond, "the exporter has been down for less than 1.5 s"
			})
			exporter2 := stacktest.ExporterWith(t, cfg)
			waitCounted(t, exporter2.URL, 0)
			restarted := time.Now()
			stacktest.Eventually(t, 5*time.Second, func() (bool, string) {
				return time.Since(restarted) > time.Second, "less than 1 s since the restart"
			})
			cancel()
			during := wait()
			c2, l2 := settledTest(t, exporter2.URL)
			faultRow(t, "exporter restart under load over "+tc.name, before.plus(during), c1+c2, l1+l2, 0)
			t.Logf("before the stop %s, counted %v; while down and after the restart %s, counted %v", before, c1, during, c2)
		})
	}
}

// TestFaultStaleUnixgramSocket: the exporter is killed (SIGKILL), leaving its
// socket file behind; the load goes on for 2 s. Record never waits on the
// network, so the latency clients see does not rise; a fresh exporter on
// the same path (launch removes the stale file) gets every count.
func TestFaultStaleUnixgramSocket(t *testing.T) {
	const p99Bound = 50 * time.Millisecond
	sock := filepath.Join(t.TempDir(), "statsd.sock")
	exporter := unixgramExporter(t, sock)
	app := stacktest.StartApp(t, 2, "-statsd-addr", exporter.StatsdAddr)
	url := app.URL + "/test/"

	// The same paced load before and after the kill, for the latencies.
	const conc, rate = 4, 2000
	load := func() *loadResult {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return runPacedLoad(ctx, url, conc, rate, 1_000_000)
	}
	before := load()
	c1, l1 := settledTest(t, exporter.URL)
	if err := exporter.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exporter.Done()
	if fi, err := os.Lstat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("after SIGKILL the socket file should be left: %v %v", fi, err)
	}
	during := load()
	if !strings.Contains(app.Log(), "sending metrics failed") {
		t.Errorf("no worker logged a failed send while the exporter was dead:\n%s", app.Log())
	}
	if during.failed != 0 {
		t.Errorf("requests failed while the exporter was dead: %s", during)
	}
	if during.p99 > p99Bound {
		t.Errorf("p99 latency %s with the exporter dead (%s before), want at most %s: Record must not wait on the network",
			during.p99, before.p99, p99Bound)
	}
	exporter2 := unixgramExporter(t, sock)
	c2, l2 := settledTest(t, exporter2.URL)
	faultRow(t, "stale unixgram socket (exporter SIGKILLed) under load", before.plus(during), c1+c2, l1+l2, 0)
	t.Logf("p99 latency at %d req/s: %s with the exporter up, %s with it dead (bound %s)", rate, before.p99, during.p99, p99Bound)
}

// TestFaultAcceptEMFILE: the worker runs out of descriptors (its open-files
// limit lowered to a few above what it uses, then idle connections opened
// past it). Its accepts fail with EMFILE; it must retry them rather than
// exit, and once the connections close it serves, and counts, again.
func TestFaultAcceptEMFILE(t *testing.T) {
	exporter := stacktest.Exporter(t)
	app := stacktest.StartApp(t, 1, "-statsd-addr", exporter.StatsdAddr)
	worker := app.Workers()[0]
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", worker))
	if err != nil {
		t.Fatal(err)
	}
	// Lowered from outside, after the Go runtime raised it at start.
	var old unix.Rlimit
	limit := uint64(len(fds) + 8)
	if err := unix.Prlimit(worker, unix.RLIMIT_NOFILE, nil, &old); err != nil {
		t.Fatal(err)
	}
	if err := unix.Prlimit(worker, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: old.Max}, nil); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	const idle = 64
	var conns []net.Conn
	for range idle {
		c, err := net.Dial("tcp", app.Addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// Either the worker retries its accepts or, the bug, it exits.
	stacktest.Eventually(t, 10*time.Second, func() (bool, string) {
		log := app.Log()
		return strings.Contains(log, "accept failed: out of descriptors") || strings.Contains(log, `msg="worker exited"`),
			"neither an accept failure nor an exit logged"
	})
	for _, c := range conns {
		c.Close()
	}
	if strings.Contains(app.Log(), `msg="worker exited"`) {
		t.Fatalf("the worker exited when it ran out of descriptors:\n%s", app.Log())
	}

	const n = 2000
	res := runLoad(context.Background(), app.URL+"/test/", 4, n)
	if res.ok != n {
		t.Errorf("after the descriptors came back: %s, want %d ok", res, n)
	}
	counted, latency := settledTest(t, exporter.URL)
	faultRow(t, fmt.Sprintf("EMFILE: %d idle connections past the worker's open-files limit (%d)", idle, limit), res, counted, latency, 0)
	if now := app.Workers(); len(now) != 1 || now[0] != worker {
		t.Errorf("workers %v, want the same worker %d still serving", now, worker)
	}
	for _, bad := range []string{`msg="worker exited"`, "worker cannot start"} {
		if strings.Contains(app.Log(), bad) {
			t.Errorf("log has %q:\n%s", bad, app.Log())
		}
	}
	if !strings.Contains(app.Log(), "accepting again after running out of descriptors") {
		t.Errorf("the worker did not log that it accepts again:\n%s", app.Log())
	}
}

// TestFaultWorkerTermWhileDraining: a worker SIGTERMed on its own (not by
// the supervisor) drains a slow request longer than -report-timeout. It
// keeps reporting while it drains, so the supervisor does not take it for
// silent and kill it: the request completes with 200. Requests that arrive
// meanwhile wait in the shared socket's queue for the replacement.
// Regression: reports used to stop during the drain.
func TestFaultWorkerTermWhileDraining(t *testing.T) {
	exporter := stacktest.Exporter(t)
	app := stacktest.StartBinary(t, testApp(t), 1, "-statsd-addr", exporter.StatsdAddr, "-report-timeout", "1s")
	victim := app.Workers()[0]

	const conc = 2
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	wait := startPacedLoad(ctx, app.URL+"/test/", conc, 500, 1_000_000)
	waitCounted(t, exporter.URL, 100)

	type answer struct {
		status int
		body   string
		err    error
	}
	slow := make(chan answer, 1)
	go func() {
		c := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(app.URL + "/slow/?ms=3000")
		if err != nil {
			slow <- answer{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- answer{status: resp.StatusCode, body: string(b)}
	}()
	app.WaitLog(t, "slow request started", 1, 5*time.Second)
	if err := syscall.Kill(victim, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	a := <-slow
	if a.err != nil || a.status != 200 || a.body != "slow" {
		t.Errorf("the slow request: %d %q %v, want 200 slow", a.status, a.body, a.err)
	}
	app.WaitLog(t, `msg="worker ready"`, 2, 10*time.Second)
	at := stacktest.Sum(stacktest.Scrape(t, exporter.URL), "request_count", testOK)
	waitCounted(t, exporter.URL, at+100)
	cancel()
	res := wait()
	for _, bad := range []string{"no report within the timeout", "signal: killed"} {
		if strings.Contains(app.Log(), bad) {
			t.Errorf("the draining worker was killed (log has %q):\n%s", bad, app.Log())
		}
	}
	slowOK := &loadResult{ok: 1}
	if a.status != 200 {
		slowOK = &loadResult{failed: 1}
	}
	counted, latency := settledTest(t, exporter.URL)
	slowCounted := settledSum(t, exporter.URL, "request_count", map[string]string{"endpoint": "/slow/", "http_status": "200"})
	slowLatency := settledSum(t, exporter.URL, "request_latency_seconds", map[string]string{"endpoint": "/slow/"})
	faultRow(t, "worker SIGTERMed while draining /slow/?ms=3000 (-report-timeout 1s), /test/ load",
		res.plus(slowOK), counted+slowCounted, latency+slowLatency, 0)
}
