// Package launch starts and stops the processes of a forkwatch stack: the
// webapp (supervisor and workers), statsd_exporter (DogStatsD in, Prometheus
// metrics out) and Prometheus (scrapes the exporter, answers queries).
//
// It is the one place that knows their flags, configuration files, readiness
// and stop order, so `make run` (cmd/stack), `make bench` (cmd/bench) and the
// tests start exactly the same thing. The exporter and Prometheus run in
// process groups of their own, so a terminal's Ctrl-C reaches only the
// program that started them, which stops them in order once the app is
// gone: Prometheus after a last scrape, then the exporter (the app's drain
// flushes its last counts to it). The webapp runs in a group of its own too,
// except under `make run` (Webapp.InCallerGroup), where the terminal's Ctrl-C
// reaches its supervisor directly, as it would without the stack.
// docker-compose.yml repeats ExporterFlags for the official images; a test
// keeps the two in step.
package launch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/forkwatch/forkwatch/internal/proctree"
	"github.com/forkwatch/forkwatch/statsd"
)

// Defaults: every address is on loopback, so nothing is reachable from
// another host unless the user says so.
const (
	// DefaultStatsdAddr is where the workers send by default: the
	// exporter listens where they look.
	DefaultStatsdAddr     = statsd.DefaultAddr
	DefaultExporterAddr   = "127.0.0.1:9102"
	DefaultPrometheusAddr = "127.0.0.1:9090"

	// ReadBuffer is the exporter's UDP receive buffer: every loss measured
	// at saturation was this kernel buffer overflowing, 4 MiB absorbs the
	// bursts of five workers flushing together. The kernel caps it at
	// net.core.rmem_max.
	ReadBuffer = 4 << 20
	// PacketQueue is the exporter's queue between its UDP reader and its
	// parser (default 10000); a deeper queue rides out parser stalls.
	PacketQueue = 100000

	startTimeout = 90 * time.Second
)

// Config says where the exporter and Prometheus listen and where its files are.
type Config struct {
	// Root is the project checkout holding mapping.yml, prometheus.yml and
	// rules.yml. Default ".".
	Root string
	// Dir holds Prometheus's generated config and its data. Required for
	// Prometheus.
	Dir string
	// StatsdAddr is the exporter's DogStatsD address, UDP and TCP. Default
	// DefaultStatsdAddr.
	StatsdAddr string
	// Mapping is the exporter's mapping file. Default Root/mapping.yml.
	Mapping string
	// Unixgram, if set, is a Unix datagram socket path the exporter also
	// listens on, with file mode 0660: only the owner and group may send.
	// A stale socket left by an exporter that died is removed first.
	Unixgram string
	// UnixgramOnly turns the UDP and TCP listeners off, so that with
	// Unixgram set metrics never touch the network and file permissions
	// decide who can write them.
	UnixgramOnly bool
	// ExporterAddr is the exporter's web address. Default DefaultExporterAddr.
	ExporterAddr string
	// PrometheusAddr is Prometheus's web address. Default
	// DefaultPrometheusAddr.
	PrometheusAddr string
	// Stdout and Stderr receive the processes' output. Default: discarded.
	Stdout, Stderr io.Writer
	// Logger receives warnings (such as a small rmem_max). Default
	// slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Root == "" {
		c.Root = "."
	}
	if c.StatsdAddr == "" {
		c.StatsdAddr = DefaultStatsdAddr
	}
	if c.ExporterAddr == "" {
		c.ExporterAddr = DefaultExporterAddr
	}
	if c.PrometheusAddr == "" {
		c.PrometheusAddr = DefaultPrometheusAddr
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// ExporterFlags are the statsd_exporter flags forkwatch runs with. The
// mapping path is given relative to the project root.
func ExporterFlags(statsdAddr, webAddr, mapping string) []string {
	return []string{
		"--web.listen-address=" + webAddr,
		"--statsd.listen-udp=" + statsdAddr,
		"--statsd.listen-tcp=" + statsdAddr,
		"--statsd.mapping-config=" + mapping,
		"--statsd.read-buffer=" + strconv.Itoa(ReadBuffer),
		"--statsd.udp-packet-queue-size=" + strconv.Itoa(PacketQueue),
	}
}

// ExporterGOGC is the exporter's garbage-collector target (the GOGC
// environment variable). Parsing one latency sample per request makes
// garbage; collecting less often cut the exporter's CPU per request by
// about 18% (0.31 -> 0.255 CPU s per 100k requests, two runs each of
// `hey -n 200000 -c 50` against 5 workers) for about 11 MiB more RSS
// (19 -> 30 MiB). docker-compose.yml and deploy/k8s set the same.
const ExporterGOGC = "400"

// Process is a started webapp, exporter or Prometheus.
type Process struct {
	Name string
	// URL is the base URL of its web interface.
	URL string
	// StatsdAddr is where an exporter receives DogStatsD, in the form
	// webapp's -statsd-addr takes: host:port (UDP), or unixgram:///path when
	// it listens on a Unix socket alone.
	StatsdAddr string
	cmd        *exec.Cmd
	ownGroup   bool
	done       chan struct{}
	err        error
}

// PID returns the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the process's exit status once Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// ExitCode is the process's exit code once Done is closed (-1: killed by a
// signal).
func (p *Process) ExitCode() int {
	<-p.done
	return p.cmd.ProcessState.ExitCode()
}

// Signal sends sig to the process (not its group).
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop asks the process to exit (SIGTERM) and, if it has not within
// timeout, kills its whole process group (a webapp's workers too).
func (p *Process) Stop(timeout time.Duration) error {
	select {
	case <-p.done:
		p.killGroup()
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.killGroup()
		<-p.done
		return fmt.Errorf("launch: %s did not stop within %s: killed", p.Name, timeout)
	}
	p.killGroup()
	return nil
}

// killGroup kills whatever is left of the process's group: children that
// outlived it (a hung worker, say). Only this process's own group, by its
// PID: nothing else is touched.
func (p *Process) killGroup() {
	if p.ownGroup {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	} else {
		_ = p.cmd.Process.Kill()
	}
}

// Webapp says how to start a forkwatch binary.
type Webapp struct {
	// Bin is the binary, e.g. bin/webapp.
	Bin string
	// Addr is the address it serves (its -listen); URL is made from it.
	Addr string
	// Args are its arguments (-listen is added from Addr).
	Args []string
	// Env is added to this process's environment.
	Env []string
	// Stdout and Stderr receive its output (and its workers'). Default:
	// discarded.
	Stdout, Stderr io.Writer
	// InCallerGroup keeps it in the caller's process group, so a terminal's
	// Ctrl-C reaches the supervisor directly (it takes the caller's
	// forwarded SIGTERM, milliseconds later, as the same stop). Stop then
	// kills only the supervisor, never the group.
	InCallerGroup bool
}

// StartWebapp starts a forkwatch binary (in its own process group unless
// InCallerGroup). It does
// not wait for readiness: the supervisor logs "worker ready" per worker,
// which a caller can watch for in Stderr, and every HTTP probe would be a
// counted request.
func StartWebapp(w Webapp) (*Process, error) {
	args := append([]string{"-listen", w.Addr}, w.Args...)
	var env []string
	if len(w.Env) > 0 {
		env = append(os.Environ(), w.Env...)
	}
	return startProcess("webapp", w.Bin, args, env, "", w.Stdout, w.Stderr, "http://"+w.Addr, !w.InCallerGroup)
}

// StartCommand starts any other program (the Python original under uwsgi,
// fasthttp's prefork for the benchmark) the way StartWebapp starts forkwatch:
// in its own process group, env added to this process's environment, in dir
// ("" = the current directory), stopped by Process.Stop (SIGTERM, then the
// group is killed). It does not wait for readiness; the Process has no URL.
func StartCommand(name, bin string, args, env []string, dir string, stdout, stderr io.Writer) (*Process, error) {
	var full []string
	if len(env) > 0 {
		full = append(os.Environ(), env...)
	}
	return startProcess(name, bin, args, full, dir, stdout, stderr, "", true)
}

// startProcess starts bin, in its own process group if ownGroup; env nil
// means this process's environment. If this process dies first, the child
// gets SIGTERM (Pdeathsig), so a killed launcher leaves nothing behind.
func startProcess(name, bin string, args, env []string, dir string, stdout, stderr io.Writer, url string, ownGroup bool) (*Process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: ownGroup, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("launch: start %s: %w", name, err)
	}
	p := &Process{Name: name, URL: url, cmd: cmd, done: make(chan struct{}), ownGroup: ownGroup}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// ExporterPath returns the statsd_exporter binary pinned in go.mod as a tool,
// building it on first use (`go tool -n` prints the cached binary's path).
func ExporterPath(ctx context.Context, root string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "tool", "-n", "statsd_exporter")
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("launch: build statsd_exporter (go tool -n statsd_exporter): %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// StartExporter starts statsd_exporter and waits until it serves /metrics.
func StartExporter(ctx context.Context, cfg Config) (*Process, error) {
	cfg.setDefaults()
	bin, err := ExporterPath(ctx, cfg.Root)
	if err != nil {
		return nil, err
	}
	if max, err := readRmemMax(); err == nil && max < ReadBuffer {
		cfg.Logger.Warn("net.core.rmem_max is below the exporter's read buffer: the kernel will cap it and bursts may be dropped",
			"rmem_max", max, "want", ReadBuffer, "fix", fmt.Sprintf("sudo sysctl -w net.core.rmem_max=%d", ReadBuffer))
	}
	mapping := cfg.Mapping
	if mapping == "" {
		mapping = filepath.Join(cfg.Root, "mapping.yml")
	}
	args := ExporterFlags(cfg.StatsdAddr, cfg.ExporterAddr, mapping)
	if cfg.UnixgramOnly && cfg.Unixgram == "" {
		return nil, errors.New("launch: UnixgramOnly needs a Unixgram path")
	}
	if cfg.Unixgram != "" {
		if err := removeStaleSocket(cfg.Unixgram); err != nil {
			return nil, err
		}
		args = append(args, "--statsd.listen-unixgram="+cfg.Unixgram, "--statsd.unixsocket-mode=660")
		if cfg.UnixgramOnly {
			// The exporter reads "" as off (it rejects a repeated flag).
			for i, a := range args {
				if strings.HasPrefix(a, "--statsd.listen-udp=") || strings.HasPrefix(a, "--statsd.listen-tcp=") {
					args[i] = a[:strings.IndexByte(a, '=')+1]
				}
			}
		}
	}
	env := append(os.Environ(), "GOGC="+ExporterGOGC)
	p, err := start(ctx, cfg, "statsd_exporter", bin, args, env, "http://"+cfg.ExporterAddr, "/metrics", isExporter)
	if err != nil {
		return nil, err
	}
	p.StatsdAddr = cfg.StatsdAddr
	if cfg.UnixgramOnly {
		p.StatsdAddr = "unixgram://" + cfg.Unixgram
	}
	return p, nil
}

// StartPrometheus writes Prometheus's config into cfg.Dir (a copy of the
// project's prometheus.yml and rules.yml, plus a file_sd target file that
// points at cfg.ExporterAddr), starts Debian's prometheus binary with its data
// under cfg.Dir, and waits until it is ready.
func StartPrometheus(ctx context.Context, cfg Config) (*Process, error) {
	cfg.setDefaults()
	if cfg.Dir == "" {
		return nil, errors.New("launch: Prometheus needs a directory for its config and data")
	}
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		return nil, errors.New("launch: no prometheus binary on PATH: install it with 'sudo apt-get install -y prometheus'")
	}
	conf, err := WritePrometheusConfig(cfg.Root, cfg.Dir, cfg.ExporterAddr)
	if err != nil {
		return nil, err
	}
	args := []string{
		"--config.file=" + conf,
		"--storage.tsdb.path=" + filepath.Join(cfg.Dir, "data"),
		"--web.listen-address=" + cfg.PrometheusAddr,
		// No --web.enable-lifecycle: nothing here needs /-/quit or
		// /-/reload, and they would let any local process stop it.
	}
	return start(ctx, cfg, "prometheus", bin, args, nil, "http://"+cfg.PrometheusAddr, "/-/ready",
		isPrometheus(cfg.PrometheusAddr, conf))
}

// ErrNotOurs is returned when the address a process was started on
// answers, but not as that process: another program holds the port (and
// ours, failing to bind, is about to exit).
var ErrNotOurs = errors.New("launch: another program answers on the port")

// isExporter checks that a /metrics answer is a statsd_exporter's, and
// that the exporter answering is ours: it holds the listening socket (read
// from /proc; skipped where that cannot be read). Another exporter on the
// port, from another run, would answer the same metrics.
func isExporter(_ context.Context, _ *http.Client, p *Process, base string, body []byte) error {
	if !bytes.Contains(body, []byte("\nstatsd_exporter_")) {
		return fmt.Errorf("%w: its /metrics has no statsd_exporter_ metrics", ErrNotOurs)
	}
	u, err := neturl.Parse(base)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil || p.cmd == nil {
		return nil
	}
	if _, err := os.Stat("/proc/self/net/tcp"); err != nil {
		return nil // no /proc to ask
	}
	ours, err := proctree.ListensOn(p.PID(), port)
	if err != nil {
		// Typically ours has just exited (it could not bind): asked again,
		// waitHTTP sees the exit.
		return fmt.Errorf("launch: who holds port %d: %w", port, err)
	}
	if !ours {
		return fmt.Errorf("%w: a statsd_exporter that is not the one started (pid %d)", ErrNotOurs, p.PID())
	}
	return nil
}

// isPrometheus checks that the Prometheus answering is the one started
// here: its flags name our listen address and config file.
func isPrometheus(listen, config string) checkFunc {
	return func(ctx context.Context, client *http.Client, _ *Process, base string, _ []byte) error {
		req, err := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/status/flags", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var flags struct {
			Data map[string]string `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&flags); err != nil {
			return fmt.Errorf("%w: /api/v1/status/flags: %v", ErrNotOurs, err)
		}
		if got := flags.Data["web.listen-address"]; got != listen {
			return fmt.Errorf("%w: a Prometheus with --web.listen-address=%s", ErrNotOurs, got)
		}
		if got := flags.Data["config.file"]; got != config {
			return fmt.Errorf("%w: a Prometheus with --config.file=%s", ErrNotOurs, got)
		}
		return nil
	}
}

// WritePrometheusConfig lays out dir as Prometheus's config directory: the
// project's prometheus.yml (unchanged) and rules.yml, and
// targets/exporter.yml naming exporterAddr. It returns the config path.
func WritePrometheusConfig(root, dir, exporterAddr string) (string, error) {
	if err := os.MkdirAll(filepath.Join(dir, "targets"), 0o755); err != nil {
		return "", fmt.Errorf("launch: %w", err)
	}
	for _, name := range []string{"prometheus.yml", "rules.yml"} {
		b, err := os.ReadFile(filepath.Join(root, name))
		if errors.Is(err, os.ErrNotExist) && name != "prometheus.yml" {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("launch: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return "", fmt.Errorf("launch: %w", err)
		}
	}
	targets := fmt.Sprintf("# written by forkwatch's launch package for a local run\n- targets: ['%s']\n", exporterAddr)
	if err := os.WriteFile(filepath.Join(dir, "targets", "exporter.yml"), []byte(targets), 0o644); err != nil {
		return "", fmt.Errorf("launch: %w", err)
	}
	return filepath.Join(dir, "prometheus.yml"), nil
}

// checkFunc tells whether the process answering at base (probe's body
// given) is the one started; an error wrapping ErrNotOurs says it is not.
type checkFunc func(ctx context.Context, client *http.Client, p *Process, base string, body []byte) error

// start runs bin and waits until url+probe answers 200 and check accepts
// the answer.
func start(ctx context.Context, cfg Config, name, bin string, args, env []string, url, probe string, check checkFunc) (*Process, error) {
	p, err := startProcess(name, bin, args, env, "", cfg.Stdout, cfg.Stderr, url, true)
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, p, url, probe, check); err != nil {
		_ = p.Stop(5 * time.Second)
		return nil, err
	}
	return p, nil
}

func waitHTTP(ctx context.Context, p *Process, base, probe string, check checkFunc) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	url := base + probe
	for {
		resp, err := client.Get(url)
		if err == nil {
			body, rerr := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && rerr == nil {
				err := check(ctx, client, p, base, body)
				if err == nil {
					return nil
				}
				if errors.Is(err, ErrNotOurs) {
					return fmt.Errorf("launch: %s: %s: %w", p.Name, base, err)
				}
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("launch: %s exited before it was ready: %v", p.Name, p.err)
		case <-ctx.Done():
			return fmt.Errorf("launch: %s not ready at %s: %w", p.Name, url, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// removeStaleSocket removes path if it is a Unix socket nobody receives on:
// the exporter refuses to start when its socket path exists, and one that
// was killed leaves it behind. A live socket or any other file is an error.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("launch: unixgram socket: %w", err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("launch: unixgram path %s exists and is not a socket", path)
	}
	if c, err := net.Dial("unixgram", path); err == nil {
		c.Close()
		return fmt.Errorf("launch: unixgram socket %s is in use by another process", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("launch: remove stale unixgram socket: %w", err)
	}
	return nil
}

func readRmemMax() (int, error) {
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
