//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/forkwatch/forkwatch/internal/launch"
	"github.com/forkwatch/forkwatch/internal/proctree"
	"github.com/forkwatch/forkwatch/internal/stacktest"
)

// upgradeApp is a webapp started from a copy of the binary in a temporary
// directory (so that a test may replace it on disk), logging to a file: a
// new supervisor inherits the log, and a pipe would keep the old one's
// Wait from returning until the new one exits too.
type upgradeApp struct {
	*launch.Process
	bin, pidFile, logFile, url, admin string
}

func startUpgradeApp(t *testing.T, env []string, args ...string) *upgradeApp {
	t.Helper()
	dir := t.TempDir()
	a := &upgradeApp{
		bin:     filepath.Join(dir, "webapp"),
		pidFile: filepath.Join(dir, "webapp.pid"),
		logFile: filepath.Join(dir, "webapp.log"),
		admin:   stacktest.FreeAddr(t, false),
	}
	copyFile(t, stacktest.Webapp(t), a.bin)
	if err := os.Chmod(a.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(a.logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close() // the processes hold their own copies
	addr := stacktest.FreeAddr(t, false)
	a.url = "http://" + addr
	args = append([]string{"-workers", "5", "-pidfile", a.pidFile, "-admin-addr", a.admin, "-grace", "5s"}, args...)
	p, err := launch.StartWebapp(launch.Webapp{Bin: a.bin, Addr: addr, Args: args, Env: env, Stdout: log, Stderr: log})
	if err != nil {
		t.Fatal(err)
	}
	a.Process = p
	t.Cleanup(func() {
		// A new supervisor runs in a process group of its own.
		if pid := a.pid(); pid > 0 && pid != p.PID() {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			stacktest.Eventually(t, 20*time.Second, func() (bool, string) {
				return syscall.Kill(pid, 0) != nil, "new supervisor still running"
			})
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
		_ = p.Stop(20 * time.Second)
		if t.Failed() {
			t.Logf("webapp log:\n%s", a.log())
		}
	})
	stacktest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := strings.Count(a.log(), `msg="worker ready"`)
		return n >= 5, fmt.Sprintf("%d of 5 workers ready", n)
	})
	return a
}

func (a *upgradeApp) log() string {
	b, _ := os.ReadFile(a.logFile)
	return string(b)
}

// pid is the PID the pid file names, 0 if none.
func (a *upgradeApp) pid() int {
	b, _ := os.ReadFile(a.pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// TestUpgradeUnderLoad: SIGUSR2 while clients send requests. A new
// supervisor of the binary on disk takes over the socket and the admin
// endpoint, the old one drains and exits 0 by itself, no request fails,
// every answer is counted, the pid file names the new supervisor, and the
// pool gauge is 5 afterwards.
func TestUpgradeUnderLoad(t *testing.T) {
	exporter := stacktest.Exporter(t)
	app := startUpgradeApp(t, nil, "-statsd-addr", exporter.StatsdAddr)
	old := app.PID()
	if got := app.pid(); got != old {
		t.Fatalf("pid file names %d, want the supervisor %d", got, old)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := startLoad(ctx, app.url+"/test/", 8, 1_000_000)
	stacktest.Eventually(t, 5*time.Second, func() (bool, string) {
		v := stacktest.Sum(stacktest.Scrape(t, exporter.URL), "request_count", testOK)
		return v > 1000, fmt.Sprintf("%v counted so far", v)
	})
	usr2 := time.Now()
	if err := app.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	select {
	case <-app.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("old supervisor still running 30s after SIGUSR2")
	}
	if code := app.ExitCode(); code != 0 {
		t.Errorf("old supervisor exit code %d, want 0", code)
	}
	tookOver := time.Since(usr2)
	newPID := app.pid()
	if newPID == old || newPID == 0 || syscall.Kill(newPID, 0) != nil {
		t.Fatalf("pid file names %d after the upgrade (old %d): want a running new supervisor", newPID, old)
	}
	// The load goes on against the new pool for a while.
	atExit := stacktest.Sum(stacktest.Scrape(t, exporter.URL), "request_count", testOK)
	stacktest.Eventually(t, 10*time.Second, func() (bool, string) {
		v := stacktest.Sum(stacktest.Scrape(t, exporter.URL), "request_count", testOK)
		return v > atExit+1000, fmt.Sprintf("%v counted, %v when the old supervisor exited", v, atExit)
	})
	cancel()
	res := wait()
	if res.failed != 0 {
		t.Errorf("requests failed during the upgrade: %s", res)
	}
	if workers := proctree.Children(newPID); len(workers) != 5 {
		t.Errorf("new supervisor's workers %v, want 5", workers)
	}
	get(t, "http://"+app.admin+"/healthz", "{\"ready\":5,\"configured\":5}\n")
	counted := settledSum(t, exporter.URL, "request_count", testOK)
	if counted != float64(res.ok) {
		t.Errorf("exporter counted %v, clients got %d responses: %v lost", counted, res.ok, float64(res.ok)-counted)
	}
	stacktest.Eventually(t, 10*time.Second, func() (bool, string) {
		v := stacktest.Sum(stacktest.Scrape(t, exporter.URL), "forkwatch_workers", nil)
		return v == 5, fmt.Sprintf("forkwatch_workers %v", v)
	})
	if n := strings.Count(app.log(), "supervisor stopped"); n != 1 {
		t.Errorf("%d supervisors logged a stop, want 1 (the old one)", n)
	}
	t.Logf("SIGUSR2 under load: old supervisor %d gone after %s, new %d; %s; counted %v",
		old, tookOver.Round(time.Millisecond), newPID, res, counted)
}

// TestUpgradeFailingBinary: the binary on disk has been replaced by one
// that exits 1. SIGUSR2 starts it, it fails, and the old supervisor keeps
// serving and logs why; the pid file still names it.
func TestUpgradeFailingBinary(t *testing.T) {
	app := startUpgradeApp(t, nil, "-no-metrics")
	bad := app.bin + ".new"
	script := "#!/bin/sh\necho 'new build: config error' >&2\nexit 1\n"
	if err := os.WriteFile(bad, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	// Renamed over it: the running binary cannot be written in place.
	if err := os.Rename(bad, app.bin); err != nil {
		t.Fatal(err)
	}
	if err := app.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	stacktest.Eventually(t, 10*time.Second, func() (bool, string) {
		return strings.Contains(app.log(), `msg="upgrade aborted`), "no upgrade aborted in the log"
	})
	log := app.log()
	if !strings.Contains(log, "new build: config error") || !strings.Contains(log, `status="exit code 1"`) {
		t.Errorf("the log does not say why the new supervisor failed")
	}
	select {
	case <-app.Done():
		t.Fatal("the old supervisor exited")
	default:
	}
	get(t, app.url+"/test/", "rest")
	get(t, "http://"+app.admin+"/healthz", "{\"ready\":5,\"configured\":5}\n")
	if got := app.pid(); got != app.PID() {
		t.Errorf("pid file names %d, want the old supervisor %d", got, app.PID())
	}
}

// TestUpgradeNotifiesSystemd: under systemd (NOTIFY_SOCKET) the new
// supervisor says READY=1 with MAINPID=<its PID> before the old one leaves,
// and the old one sends nothing that reads as the service stopping.
func TestUpgradeNotifiesSystemd(t *testing.T) {
	path := "@forkwatch-e2e-upgrade-notify-" + strconv.Itoa(os.Getpid())
	notifications, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notifications.Close()
	next := func(timeout time.Duration) (string, error) {
		buf := make([]byte, 4096)
		_ = notifications.SetReadDeadline(time.Now().Add(timeout))
		n, err := notifications.Read(buf)
		return string(buf[:n]), err
	}
	app := startUpgradeApp(t, []string{"NOTIFY_SOCKET=" + path}, "-no-metrics")
	if got, err := next(10 * time.Second); got != "READY=1" {
		t.Fatalf("first notification %q, %v; want READY=1", got, err)
	}
	if err := app.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	got, err := next(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-app.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("old supervisor still running 30s after SIGUSR2")
	}
	newPID := app.pid()
	if want := "READY=1\nMAINPID=" + strconv.Itoa(newPID); got != want {
		t.Errorf("notification after SIGUSR2 %q, want %q", got, want)
	}
	if got, err := next(time.Second); err == nil {
		t.Errorf("notification %q after the handover, want none (the service goes on)", got)
	}
	_ = syscall.Kill(newPID, syscall.SIGTERM)
	if got, err := next(10 * time.Second); got != "STOPPING=1" {
		t.Errorf("notification at the new supervisor's SIGTERM %q, %v; want STOPPING=1", got, err)
	}
}

// TestStackFollowsUpgrade: `make run` (cmd/stack) keeps running when its
// webapp is upgraded with SIGUSR2 (the old supervisor exits once the new one
// serves), and Ctrl-C then stops the new supervisor too: nothing is left.
func TestStackFollowsUpgrade(t *testing.T) {
	dir := t.TempDir()
	appAddr := stacktest.FreeAddr(t, false)
	stack := stacktest.StartCommand(t, "stack", stacktest.Build(t, "./cmd/stack"),
		"-app", appAddr, "-statsd", stacktest.FreeAddr(t, true), "-exporter", stacktest.FreeAddr(t, false),
		"-prometheus", stacktest.FreeAddr(t, false), "-admin", stacktest.FreeAddr(t, false),
		"-dir", dir, "-root", stacktest.Root(t), "-webapp", stacktest.Webapp(t))
	stack.WaitLog(t, `msg="worker ready"`, 5, 60*time.Second)
	pidFile := filepath.Join(dir, "webapp.pid")
	readPID := func() int {
		b, _ := os.ReadFile(pidFile)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return pid
	}
	old := readPID()
	if old == 0 {
		t.Fatalf("no pid file at %s", pidFile)
	}
	if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	stack.WaitLog(t, "following the new supervisor", 1, 30*time.Second)
	upgraded := readPID()
	if upgraded == old || !proctree.Alive(upgraded) {
		t.Fatalf("pid file names %d after the upgrade (old %d), want a new live supervisor", upgraded, old)
	}
	get(t, "http://"+appAddr+"/test/", "rest")
	if err := syscall.Kill(-stack.PID(), syscall.SIGINT); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	if code := stack.WaitExit(t, 30*time.Second); code != 0 {
		t.Errorf("stack exit code %d, want 0", code)
	}
	if proctree.Alive(upgraded) {
		t.Errorf("the upgraded supervisor %d is still running after the stack stopped", upgraded)
	}
}
