// Package stacktest starts the real forkwatch stack for tests: the webapp
// binary (supervisor and workers), statsd_exporter and Prometheus, each on a
// loopback port chosen free at test time, through the same bridge package
// that `make run` uses. Every process it starts is stopped in t.Cleanup, by
// PID (the webapp by its own process group), even when the test fails.
package stacktest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/forkwatch/forkwatch/internal/launch"
	"github.com/forkwatch/forkwatch/internal/proctree"
	"github.com/forkwatch/forkwatch/internal/verify"
)

// Root returns the project root (the directory holding go.mod).
func Root(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("stacktest: cannot locate source")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// FreeAddr returns a loopback host:port free for TCP (and, with udp, for UDP
// too) at the time of the call.
func FreeAddr(t testing.TB, udp bool) string {
	t.Helper()
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("stacktest: free port: %v", err)
		}
		addr := l.Addr().String()
		if !udp {
			l.Close()
			return addr
		}
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr
		}
	}
	t.Fatal("stacktest: no free port")
	return ""
}

var (
	buildMu  sync.Mutex
	built    = map[string]string{}
	buildDir string
)

// Webapp builds cmd/webapp once per test binary and returns its path.
func Webapp(t testing.TB) string {
	t.Helper()
	return Build(t, "./cmd/webapp")
}

// Fwctl builds cmd/fwctl (fwctl load, verify, audit) once per test binary.
func Fwctl(t testing.TB) string {
	t.Helper()
	return Build(t, "./cmd/fwctl")
}

// Build builds the main package at pkg (relative to the project root) once
// per test binary and returns the binary's path.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := built[pkg]; ok {
		return bin
	}
	if buildDir == "" {
		dir, err := os.MkdirTemp("", "forkwatch-bin-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = dir
	}
	bin := filepath.Join(buildDir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = Root(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	built[pkg] = bin
	return bin
}

// Exporter starts statsd_exporter on free loopback ports.
func Exporter(t testing.TB) *launch.Process {
	t.Helper()
	return ExporterWith(t, launch.Config{})
}

// ExporterWith starts statsd_exporter with cfg; empty addresses get free ports.
func ExporterWith(t testing.TB, cfg launch.Config) *launch.Process {
	t.Helper()
	cfg.Root = Root(t)
	if cfg.StatsdAddr == "" {
		cfg.StatsdAddr = FreeAddr(t, true)
	}
	if cfg.ExporterAddr == "" {
		cfg.ExporterAddr = FreeAddr(t, false)
	}
	cfg.Stdout, cfg.Stderr = testWriter{t, "exporter"}, testWriter{t, "exporter"}
	p, err := launch.StartExporter(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(10 * time.Second) })
	return p
}

// Prometheus starts Prometheus scraping the exporter at exporterURL.
func Prometheus(t testing.TB, exporterURL string) *launch.Process {
	t.Helper()
	cfg := launch.Config{
		Root:           Root(t),
		Dir:            t.TempDir(),
		ExporterAddr:   strings.TrimPrefix(exporterURL, "http://"),
		PrometheusAddr: FreeAddr(t, false),
		Stdout:         io.Discard,
		Stderr:         io.Discard,
	}
	p, err := launch.StartPrometheus(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(15 * time.Second) })
	return p
}

// App is a running webapp supervisor with its workers.
type App struct {
	*launch.Process
	URL  string // http://127.0.0.1:port
	Addr string
	log  *SyncBuffer
}

// StartApp starts the webapp binary serving a free port with args added
// (e.g. "-statsd-addr", addr) and waits until its workers are all ready.
// Readiness comes from the supervisor's log, not from requests, so that no
// probe request is counted.
func StartApp(t testing.TB, workers int, args ...string) *App {
	t.Helper()
	return StartBinary(t, Webapp(t), workers, args...)
}

// StartBinary is StartApp for another binary built on package forkwatch.
func StartBinary(t testing.TB, bin string, workers int, args ...string) *App {
	t.Helper()
	addr := FreeAddr(t, false)
	all := append([]string{"-workers", strconv.Itoa(workers)}, args...)
	a := StartBinaryArgs(t, bin, addr, all...)
	a.WaitLog(t, `msg="worker ready"`, workers, 30*time.Second)
	return a
}

// StartAppArgs starts the webapp serving addr with args. It does not wait
// for readiness.
func StartAppArgs(t testing.TB, addr string, args ...string) *App {
	t.Helper()
	return StartBinaryArgs(t, Webapp(t), addr, args...)
}

// StartBinaryArgs is StartAppArgs for another binary. The app is stopped in
// t.Cleanup (SIGTERM, then its whole process group is killed).
func StartBinaryArgs(t testing.TB, bin, addr string, args ...string) *App {
	t.Helper()
	log := &SyncBuffer{}
	p, err := launch.StartWebapp(launch.Webapp{Bin: bin, Addr: addr, Args: args, Stdout: log, Stderr: log})
	if err != nil {
		t.Fatal(err)
	}
	a := &App{Process: p, URL: "http://" + addr, Addr: addr, log: log}
	t.Cleanup(func() {
		_ = p.Stop(20 * time.Second)
		if t.Failed() {
			t.Logf("webapp log:\n%s", a.Log())
		}
	})
	return a
}

// StartCommand starts another program (cmd/stack, say) in its own process
// group through launch.StartCommand, its output kept for Log and WaitLog.
// It is stopped in t.Cleanup like a webapp; the App has no URL.
func StartCommand(t testing.TB, name, bin string, args ...string) *App {
	t.Helper()
	log := &SyncBuffer{}
	p, err := launch.StartCommand(name, bin, args, nil, "", log, log)
	if err != nil {
		t.Fatal(err)
	}
	a := &App{Process: p, log: log}
	t.Cleanup(func() {
		_ = p.Stop(20 * time.Second)
		if t.Failed() {
			t.Logf("%s log:\n%s", name, a.Log())
		}
	})
	return a
}

// WaitExit waits until the supervisor has exited, failing the test if it
// has not within timeout, and returns its exit code.
func (a *App) WaitExit(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-a.Done():
	case <-time.After(timeout):
		t.Fatalf("supervisor still running after %s", timeout)
	}
	return a.ExitCode()
}

// StopWithin sends SIGTERM to the supervisor and waits as WaitExit does.
func (a *App) StopWithin(t testing.TB, timeout time.Duration) int {
	t.Helper()
	_ = a.Process.Signal(syscall.SIGTERM)
	return a.WaitExit(t, timeout)
}

// Log returns what the app has written so far.
func (a *App) Log() string { return a.log.String() }

// WaitLog waits until the log holds at least n lines containing s.
func (a *App) WaitLog(t testing.TB, s string, n int, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, func() (bool, string) {
		got := strings.Count(a.Log(), s)
		return got >= n, fmt.Sprintf("%d of %d log lines with %q", got, n, s)
	})
}

// Workers returns the PIDs of the supervisor's worker processes.
func (a *App) Workers() []int {
	return proctree.Children(a.PID())
}

// Eventually polls cond every 50ms until it holds or timeout passes; cond's
// string says what was seen, for the failure message.
func Eventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Scrape reads an exporter's /metrics into metric families.
func Scrape(t testing.TB, exporterURL string) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := verify.Scrape(context.Background(), exporterURL)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	return fams
}

// Series is one sample: its labels and value.
type Series struct {
	Labels map[string]string
	Value  float64
}

// Samples returns every sample of a metric in fams (a histogram's value is
// its count).
func Samples(fams map[string]*dto.MetricFamily, name string) []Series {
	f := fams[name]
	if f == nil {
		return nil
	}
	out := make([]Series, 0, len(f.Metric))
	for _, m := range f.Metric {
		out = append(out, Series{Labels: verify.Labels(m), Value: verify.Value(m)})
	}
	return out
}

// Sum adds the samples of name whose labels include every pair in match.
func Sum(fams map[string]*dto.MetricFamily, name string, match map[string]string) float64 {
	return verify.Sum(fams, name, match)
}

// Query runs an instant PromQL query and returns the result vector.
func Query(t testing.TB, promURL, expr string) []Series {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	vec, err := (&verify.Prometheus{URL: promURL}).Vector(ctx, expr)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]Series, 0, len(vec))
	for _, s := range vec {
		labels := make(map[string]string, len(s.Metric))
		for k, v := range s.Metric {
			labels[string(k)] = string(v)
		}
		out = append(out, Series{Labels: labels, Value: float64(s.Value)})
	}
	return out
}

type testWriter struct {
	t      testing.TB
	prefix string
}

func (w testWriter) Write(b []byte) (int, error) {
	// Quiet unless asked: go test -v shows exporter logs.
	if testing.Verbose() {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			fmt.Fprintf(os.Stderr, "%s: %s\n", w.prefix, sc.Text())
		}
	}
	return len(b), nil
}

// SyncBuffer is a bytes.Buffer safe for a process's output and a test reading it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
