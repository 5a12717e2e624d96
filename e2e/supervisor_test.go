//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/forkwatch/forkwatch/internal/proctree"
	"github.com/forkwatch/forkwatch/internal/stacktest"
)

var readyLine = regexp.MustCompile(`msg="worker ready" worker=\d+ pid=(\d+)`)

// readyPIDs lists the PIDs the supervisor has logged as ready, in order.
func readyPIDs(log string) []int {
	var out []int
	for _, m := range readyLine.FindAllStringSubmatch(log, -1) {
		pid, _ := strconv.Atoi(m[1])
		out = append(out, pid)
	}
	return out
}

func testApp(t *testing.T) string { return stacktest.Build(t, "./e2e/testdata/testapp") }

var testOK = map[string]string{"endpoint": "/test/", "http_status": "200"}

// TestKillWorkerUnderLoad: kill -9 one worker while clients send requests.
// A replacement is ready quickly, the pool is whole again, no counter in the
// exporter ever goes down, and no count is lost: the supervisor sends what
// the dead worker left in its segment. At most the requests in flight on the
// victim (counted, then reset before the answer went out, and retried by the
// client) are counted twice.
func TestKillWorkerUnderLoad(t *testing.T) {
	exporter := stacktest.Exporter(t)
	app := stacktest.StartApp(t, 5, "-statsd-addr", exporter.StatsdAddr)
	before := app.Workers()
	if len(before) != 5 {
		t.Fatalf("workers %v, want 5", before)
	}
	watch := watchCounters(t, exporter.URL)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	start := time.Now()
	wait := startLoad(ctx, app.URL+"/test/", 8, 1_000_000)
	stacktest.Eventually(t, 5*time.Second, func() (bool, string) {
		v := stacktest.Sum(stacktest.Scrape(t, exporter.URL), "request_count", testOK)
		return v > 1000, fmt.Sprintf("%v counted so far", v)
	})

	victim := before[0]
	readyBefore := len(readyPIDs(app.Log()))
	killed := time.Now()
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var respawn time.Duration
	stacktest.Eventually(t, 5*time.Second, func() (bool, string) {
		pids := readyPIDs(app.Log())
		if len(pids) > readyBefore {
			respawn = time.Since(killed)
			return true, ""
		}
		return false, "no new worker ready"
	})
	stacktest.Eventually(t, 5*time.Second, func() (bool, string) {
		now := app.Workers()
		return len(now) == 5 && !slices.Contains(now, victim), fmt.Sprintf("workers %v (killed %d)", now, victim)
	})
	res := wait()
	took := time.Since(start)

	counted := settledSum(t, exporter.URL, "request_count", testOK)
	histo := settledSum(t, exporter.URL, "request_latency_seconds", map[string]string{"endpoint": "/test/"})
	decreases, scrapes := watch.result()
	if len(decreases) > 0 {
		t.Errorf("counters went down in %d of %d scrapes: %v", len(decreases), scrapes, decreases)
	}
	ok, failed := float64(res.ok), float64(res.failed)
	app.StopWithin(t, 20*time.Second)
	faultRow(t, "worker SIGKILL under load", res, counted, histo, 8)
	if respawn > 2*time.Second {
		t.Errorf("respawn took %s, want under 2 s (the acceptance check holds 1 s; this machine is noisy)", respawn)
	}
	if restarts := stacktest.Sum(stacktest.Scrape(t, exporter.URL), "forkwatch_worker_restarts_total", map[string]string{"reason": "crash"}); restarts != 1 {
		t.Errorf("forkwatch_worker_restarts_total{reason=crash} = %v, want 1", restarts)
	}
	t.Logf("kill -9 under load: respawn ready after %s; %v ok, %v failed in %s; counted %v; %d scrapes, no decrease",
		respawn.Round(time.Millisecond), ok, failed, took.Round(time.Millisecond), counted, scrapes)
}

// TestReloadUnderLoad: SIGHUP replaces every worker while clients send
// requests: no request fails and every count arrives.
func TestReloadUnderLoad(t *testing.T) {
	exporter := stacktest.Exporter(t)
	app := stacktest.StartApp(t, 5, "-statsd-addr", exporter.StatsdAddr)
	old := app.Workers()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := startLoad(ctx, app.URL+"/test/", 8, 1_000_000)
	stacktest.Eventually(t, 5*time.Second, func() (bool, string) {
		v := stacktest.Sum(stacktest.Scrape(t, exporter.URL), "request_count", testOK)
		return v > 1000, fmt.Sprintf("%v counted so far", v)
	})
	hup := time.Now()
	app.Signal(syscall.SIGHUP)
	app.WaitLog(t, `msg="reload done"`, 1, 30*time.Second)
	reloadTook := time.Since(hup)
	stacktest.Eventually(t, 10*time.Second, func() (bool, string) {
		now := app.Workers()
		for _, p := range now {
			if slices.Contains(old, p) {
				return false, fmt.Sprintf("workers %v still include old ones %v", now, old)
			}
		}
		return len(now) == 5, fmt.Sprintf("workers %v", now)
	})
	// Keep the load on the new workers for a moment, then stop it.
	stacktest.Eventually(t, 5*time.Second, func() (bool, string) {
		return time.Since(hup) > reloadTook+500*time.Millisecond, ""
	})
	cancel()
	res := wait()
	if res.failed != 0 {
		t.Errorf("requests failed during reload: %s", res)
	}
	counted := settledSum(t, exporter.URL, "request_count", testOK)
	histo := settledSum(t, exporter.URL, "request_latency_seconds", map[string]string{"endpoint": "/test/"})
	// Old workers drain: nothing is reset, so nothing may count twice.
	faultRow(t, "HUP reload under load", res, counted, histo, 0)
	if n := stacktest.Sum(stacktest.Scrape(t, exporter.URL), "forkwatch_worker_restarts_total", map[string]string{"reason": "reload"}); n != 5 {
		t.Errorf("restarts with reason reload = %v, want 5", n)
	}
	t.Logf("SIGHUP under load: reload took %s; %s; counted %v", reloadTook.Round(time.Millisecond), res, counted)
}

// TestStopUnderLoad: SIGTERM while slow requests are in flight and clients
// send more. The in-flight requests complete, every response is counted,
// the supervisor exits 0 and no worker is left.
func TestStopUnderLoad(t *testing.T) {
	exporter := stacktest.Exporter(t)
	app := stacktest.StartBinary(t, testApp(t), 3, "-statsd-addr", exporter.StatsdAddr, "-grace", "10s")
	workers := app.Workers()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	wait := startLoad(ctx, app.URL+"/test/", 4, 1_000_000)

	type slowResult struct {
		status int
		body   string
		err    error
	}
	const slow = 3
	slowDone := make(chan slowResult, slow)
	for i := 0; i < slow; i++ {
		go func() {
			resp, err := http.Get(app.URL + "/slow/?ms=1500")
			if err != nil {
				slowDone <- slowResult{err: err}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			slowDone <- slowResult{status: resp.StatusCode, body: string(b)}
		}()
	}
	app.WaitLog(t, "slow request started", slow, 5*time.Second)
	app.Signal(syscall.SIGTERM)
	for i := 0; i < slow; i++ {
		r := <-slowDone
		if r.err != nil || r.status != 200 || r.body != "slow" {
			t.Errorf("in-flight request: %d %q %v, want 200 slow", r.status, r.body, r.err)
		}
	}
	code := app.WaitExit(t, 15*time.Second)
	cancel()
	res := wait()
	if code != 0 {
		t.Errorf("supervisor exit code %d, want 0", code)
	}
	for _, pid := range workers {
		if proctree.Alive(pid) {
			t.Errorf("worker %d still running after the supervisor exited", pid)
		}
	}
	for _, bad := range []string{"signal: killed", "killing"} {
		if strings.Contains(app.Log(), bad) {
			t.Errorf("a worker was killed during the stop (log has %q):\n%s", bad, app.Log())
		}
	}
	counted := settledSum(t, exporter.URL, "request_count", testOK)
	histo := settledSum(t, exporter.URL, "request_latency_seconds", map[string]string{"endpoint": "/test/"})
	// The workers drain: nothing answered is reset, nothing counts twice.
	faultRow(t, "supervisor SIGTERM under load, slow requests in flight", res, counted, histo, 0)
	slowCounted := stacktest.Sum(stacktest.Scrape(t, exporter.URL), "request_count", map[string]string{"endpoint": "/slow/"})
	if slowCounted != slow {
		t.Errorf("slow requests counted %v, want %d", slowCounted, slow)
	}
	t.Logf("SIGTERM under load: %s (failures after the socket closed are refused connections); counted %v", res, counted)
}

// TestHungWorker: a handler that really blocks forever. The worker's reports
// show the stuck request growing older; after -hang-timeout the supervisor
// kills the worker, logs the route, replaces it, and the restart is counted
// with reason timeout.
func TestHungWorker(t *testing.T) {
	exporter := stacktest.Exporter(t)
	app := stacktest.StartBinary(t, testApp(t), 2, "-statsd-addr", exporter.StatsdAddr, "-hang-timeout", "1s")
	sent := time.Now()
	hung := make(chan error, 1)
	go func() {
		c := &http.Client{Timeout: 15 * time.Second}
		_, err := c.Get(app.URL + "/hang/")
		hung <- err
	}()
	app.WaitLog(t, `msg="worker hung: a job ran past the timeout; killing it"`, 1, 10*time.Second)
	killedAfter := time.Since(sent)
	if !strings.Contains(app.Log(), "job=/hang/") {
		t.Errorf("kill log does not name the route /hang/:\n%s", app.Log())
	}
	app.WaitLog(t, `msg="worker ready"`, 3, 10*time.Second)
	if err := <-hung; err == nil {
		t.Error("the hung request got a response; its worker was killed")
	}
	stacktest.Eventually(t, 10*time.Second, func() (bool, string) {
		n := stacktest.Sum(stacktest.Scrape(t, exporter.URL), "forkwatch_worker_restarts_total", map[string]string{"reason": "timeout"})
		return n == 1, fmt.Sprintf("restarts{reason=timeout} = %v", n)
	})
	// The pool still serves.
	resp, err := http.Get(app.URL + "/test/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the kill: %v %v", resp, err)
	}
	resp.Body.Close()
	t.Logf("hung worker killed %s after its request started (timeout 1s)", killedAfter.Round(time.Millisecond))
}

// TestRecycle: -max-requests replaces workers as they reach it, several
// times, with no failed request and every count in.
func TestRecycle(t *testing.T) {
	exporter := stacktest.Exporter(t)
	app := stacktest.StartApp(t, 2, "-statsd-addr", exporter.StatsdAddr, "-max-requests", "300", "-max-requests-jitter", "50")
	const n = 3000
	res := runLoad(context.Background(), app.URL+"/test/", 4, n)
	if res.failed != 0 || res.ok != n {
		t.Errorf("across recycles: %s, want %d ok", res, n)
	}
	counted := settledSum(t, exporter.URL, "request_count", testOK)
	histo := settledSum(t, exporter.URL, "request_latency_seconds", map[string]string{"endpoint": "/test/"})
	faultRow(t, "recycle (-max-requests 300 -max-requests-jitter 50) under load", res, counted, histo, 0)
	stacktest.Eventually(t, 10*time.Second, func() (bool, string) {
		r := stacktest.Sum(stacktest.Scrape(t, exporter.URL), "forkwatch_worker_restarts_total", map[string]string{"reason": "recycle"})
		return r >= 3, fmt.Sprintf("recycles counted: %v, want at least 3", r)
	})
	t.Logf("%d requests over %d recycles: %s", n, strings.Count(app.Log(), `msg="recycling worker"`), res)
}

// TestStartupFailure: a worker whose start-up fails makes the supervisor
// exit non-zero with the worker's error, quickly.
func TestStartupFailure(t *testing.T) {
	addr := stacktest.FreeAddr(t, false)
	cmd := exec.Command(testApp(t), "-listen", addr, "-no-metrics")
	cmd.Env = append(os.Environ(), "TESTAPP_FAIL=config file /etc/shop.yml: no such file")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t.Cleanup(func() {
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	})
	start := time.Now()
	out, err := runWithTimeout(cmd, 10*time.Second)
	if err == nil {
		t.Fatalf("supervisor exited 0; output:\n%s", out)
	}
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if !strings.Contains(out, "config file /etc/shop.yml: no such file") || !strings.Contains(out, "no worker became ready") {
		t.Errorf("output does not carry the worker's error:\n%s", out)
	}
	t.Logf("start-up failure reported in %s", time.Since(start).Round(time.Millisecond))
}

func runWithTimeout(cmd *exec.Cmd, d time.Duration) (string, error) {
	var buf strings.Builder
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return buf.String(), err
	case <-time.After(d):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return buf.String(), fmt.Errorf("still running after %s", d)
	}
}

// TestScaleSignals: SIGTTIN adds a worker, SIGTTOU removes one.
func TestScaleSignals(t *testing.T) {
	app := stacktest.StartApp(t, 2, "-no-metrics")
	app.Signal(syscall.SIGTTIN)
	stacktest.Eventually(t, 10*time.Second, func() (bool, string) {
		return len(app.Workers()) == 3 && len(readyPIDs(app.Log())) == 3, fmt.Sprintf("workers %v", app.Workers())
	})
	// One signal at a time: a second one sent before the first is handled
	// merges with it, as pending signals do.
	for _, want := range []int{2, 1} {
		app.Signal(syscall.SIGTTOU)
		stacktest.Eventually(t, 10*time.Second, func() (bool, string) {
			return len(app.Workers()) == want, fmt.Sprintf("workers %v, want %d", app.Workers(), want)
		})
	}
	app.Signal(syscall.SIGTTOU) // one too many: the last worker stays
	app.WaitLog(t, "not removing the last worker", 1, 5*time.Second)
	if n := len(app.Workers()); n != 1 {
		t.Errorf("after a third SIGTTOU %d workers, want 1", n)
	}
	resp, err := http.Get(app.URL + "/test/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("with one worker: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestSecondSignalForcesStop: with a request that will never finish, the
// first SIGTERM waits for the grace period; a second one, sent at least a
// second later (closer ones are the same stop), stops at once.
func TestSecondSignalForcesStop(t *testing.T) {
	app := stacktest.StartBinary(t, testApp(t), 1, "-no-metrics", "-grace", "60s", "-hang-timeout", "0")
	go func() {
		c := &http.Client{Timeout: 30 * time.Second}
		if resp, err := c.Get(app.URL + "/hang/"); err == nil {
			resp.Body.Close()
		}
	}()
	app.WaitLog(t, "hang request started", 1, 5*time.Second)
	app.Signal(syscall.SIGTERM)
	app.WaitLog(t, `msg="stopping workers"`, 1, 5*time.Second)
	first := time.Now()
	// Repeat SIGTERM until one is far enough from the first to escalate.
	stacktest.Eventually(t, 10*time.Second, func() (bool, string) {
		app.Signal(syscall.SIGTERM)
		return strings.Contains(app.Log(), "second stop signal"), "no escalation logged"
	})
	second := time.Now()
	if since := second.Sub(first); since < time.Second {
		t.Errorf("a SIGTERM %s after the first escalated; closer than a second must be the same stop", since)
	}
	select {
	case <-app.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10s after the second SIGTERM (grace is 60s)")
	}
	if !strings.Contains(app.Log(), "second stop signal") {
		t.Errorf("the forced stop is not logged:\n%s", app.Log())
	}
	t.Logf("second SIGTERM stopped the pool in %s", time.Since(second).Round(time.Millisecond))
}

// TestSilentWorker: a worker that stops reporting at all (here: stopped with
// SIGSTOP, so nothing in it runs) is killed after -report-timeout and
// replaced.
func TestSilentWorker(t *testing.T) {
	exporter := stacktest.Exporter(t)
	app := stacktest.StartApp(t, 2, "-statsd-addr", exporter.StatsdAddr, "-report-timeout", "1s")
	victim := app.Workers()[0]
	stopped := time.Now()
	if err := syscall.Kill(victim, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	app.WaitLog(t, `msg="worker hung: no report within the timeout; killing it"`, 1, 10*time.Second)
	killedAfter := time.Since(stopped)
	stacktest.Eventually(t, 10*time.Second, func() (bool, string) {
		now := app.Workers()
		return len(now) == 2 && !slices.Contains(now, victim), fmt.Sprintf("workers %v (stopped %d)", now, victim)
	})
	stacktest.Eventually(t, 10*time.Second, func() (bool, string) {
		n := stacktest.Sum(stacktest.Scrape(t, exporter.URL), "forkwatch_worker_restarts_total", map[string]string{"reason": "timeout"})
		return n == 1, fmt.Sprintf("restarts{reason=timeout} = %v", n)
	})
	t.Logf("silent worker killed %s after SIGSTOP (report timeout 1s)", killedAfter.Round(time.Millisecond))
}

// TestCrashLoopBacksOff: a slot whose worker keeps crashing right after it
// starts is respawned with growing delays, and never given up.
func TestCrashLoopBacksOff(t *testing.T) {
	app := stacktest.StartBinary(t, testApp(t), 1, "-no-metrics")
	client := &http.Client{Timeout: 5 * time.Second}
	const crashes = 4
	for i := 1; i <= crashes; i++ {
		if resp, err := client.Get(app.URL + "/crash/"); err == nil {
			resp.Body.Close()
			t.Fatalf("crash %d: got a response", i)
		}
		app.WaitLog(t, `msg="worker ready"`, i+1, 10*time.Second)
	}
	for _, want := range []string{"crashes=2 delay=100ms", "crashes=3 delay=200ms", "crashes=4 delay=400ms"} {
		if !strings.Contains(app.Log(), want) {
			t.Errorf("log lacks backoff %q:\n%s", want, app.Log())
		}
	}
	resp, err := client.Get(app.URL + "/test/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after %d crashes: %v %v", crashes, resp, err)
	}
	resp.Body.Close()
}

// TestReusePort: with -reuseport every worker binds its own socket on the
// same port; the kernel spreads new connections over them.
func TestReusePort(t *testing.T) {
	exporter := stacktest.Exporter(t)
	app := stacktest.StartApp(t, 3, "-reuseport", "-statsd-addr", exporter.StatsdAddr)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	const n = 300
	for i := 0; i < n; i++ {
		if msg := check(client, app.URL, demoCase{path: "/test/", status: 200, body: "rest"}); msg != "" {
			t.Fatal(msg)
		}
	}
	if got := settledSum(t, exporter.URL, "request_count", testOK); got != n {
		t.Errorf("counted %v, want %d", got, n)
	}
	app.StopWithin(t, 20*time.Second)
	busy := 0
	for _, h := range handledPerWorker(app.Log()) {
		if h > 0 {
			busy++
		}
	}
	if busy < 2 {
		t.Errorf("handled per worker %v: want more than one worker serving", handledPerWorker(app.Log()))
	}
}
