package forkwatch

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/forkwatch/forkwatch/statsd"
	"github.com/forkwatch/forkwatch/supervisor"
	"github.com/forkwatch/forkwatch/worker"
)

// Options are a server's settings. Each field is one command-line flag (its
// name is in the field's comment) and one environment variable (the flag in
// capitals with a FORKWATCH_ prefix: -statsd-addr is FORKWATCH_STATSD_ADDR).
// The command line beats the environment, which beats App.Defaults, which
// beats DefaultOptions.
//
// A zero means the same in a field and in its flag: "never" for
// HangTimeout, ReportTimeout and MaxRequests, the package default elsewhere.
type Options struct {
	// Listen (-listen) is the TCP address every worker serves.
	Listen string
	// Workers (-workers) is the pool size.
	Workers int
	// ReusePort (-reuseport) makes each worker bind its own SO_REUSEPORT
	// socket instead of inheriting the supervisor's.
	ReusePort bool
	// NoMetrics (-no-metrics) sends no metrics: the no-metrics baseline.
	NoMetrics bool
	// StatsdAddr (-statsd-addr) is where metrics go: host:port (UDP) or
	// unixgram:///path.
	StatsdAddr string
	// AppName (-app-name) is the app_name tag value.
	AppName string
	// FlushInterval (-flush-interval) is how long a worker holds its counts
	// before sending them.
	FlushInterval time.Duration
	// LogLevel (-log-level) is the lowest level logged.
	LogLevel slog.Level
	// Grace (-grace) is how long a stopping worker may finish in-flight
	// requests; it is killed supervisor.KillMargin later (its final flush);
	// 0: supervisor.DefaultGrace.
	Grace time.Duration
	// HangTimeout (-hang-timeout) kills a worker whose oldest request has
	// run this long; 0: never.
	HangTimeout time.Duration
	// ReportTimeout (-report-timeout) kills a worker that has not reported
	// for this long; 0: never.
	ReportTimeout time.Duration
	// ReportInterval (-report-interval) is how often a worker reports its
	// progress to the supervisor.
	ReportInterval time.Duration
	// MaxRequests (-max-requests) recycles a worker after this many
	// requests; 0: never.
	MaxRequests uint64
	// MaxRequestsJitter (-max-requests-jitter) adds a random 0..N to each
	// worker's MaxRequests.
	MaxRequestsJitter uint64
	// AccessLog (-access-log) is where each worker writes one Common Log
	// Format line per request: a file path (opened for appending; every
	// worker writes whole lines) or "-" for standard output; empty: off. The
	// lines go through a buffer that never blocks a request; a line that
	// finds it full is dropped and counted (logged by the worker).
	AccessLog string
	// WorkerProcs (-worker-procs) is each worker's GOMAXPROCS; 0: automatic,
	// the usable CPUs divided by Workers, at least 1 (so 1 for 5 workers on
	// 2 CPUs, as fasthttp's prefork runs its children). Measured with 5
	// workers on 2 CPUs, 6 interleaved wrk rounds each: median 9.97 µs of
	// worker CPU per request and 114.5k req/s with 1, against 10.79 µs and
	// 111.6k req/s with Go's default (2): within the rounds' spread, but
	// never worse (docs/operations.md). Set it to the CPU count for Go's
	// default.
	WorkerProcs int
	// PIDFile (-pidfile) is where the supervisor writes its process ID at
	// start (atomically: a temporary file renamed), removed when it exits
	// if it still holds that ID; empty: none.
	PIDFile string
	// AdminAddr (-admin-addr) is the loopback address of the supervisor's
	// admin endpoint (/healthz, /audit, /debug/pprof/); empty: off.
	AdminAddr string

	// ReadTimeout (-read-timeout) bounds reading one request.
	ReadTimeout time.Duration
	// WriteTimeout (-write-timeout) bounds writing one response.
	WriteTimeout time.Duration
	// IdleTimeout (-idle-timeout) bounds an idle keep-alive connection.
	IdleTimeout time.Duration
	// MaxHeaderBytes (-max-header-bytes) bounds the request line plus
	// headers (larger: 431).
	MaxHeaderBytes int
	// MaxBodyBytes (-max-body-bytes) bounds a request body (larger: 413).
	MaxBodyBytes int
	// MaxConns (-max-conns) bounds the connections one worker serves at once.
	MaxConns int
	// Linger (-linger): after a 400/413/431, how long to read what the
	// client still sends so it gets the response; negative: off.
	Linger time.Duration
}

// DefaultOptions are the settings a server starts from.
func DefaultOptions() Options {
	return Options{
		Listen:         "127.0.0.1:5000",
		Workers:        supervisor.DefaultWorkers,
		StatsdAddr:     statsd.DefaultAddr,
		AppName:        statsd.DefaultAppName,
		FlushInterval:  statsd.DefaultFlushInterval,
		LogLevel:       slog.LevelInfo,
		Grace:          supervisor.DefaultGrace,
		HangTimeout:    supervisor.DefaultHangTimeout,
		ReportTimeout:  supervisor.DefaultReportTimeout,
		ReportInterval: 250 * time.Millisecond,
		ReadTimeout:    worker.DefaultReadTimeout,
		WriteTimeout:   worker.DefaultWriteTimeout,
		IdleTimeout:    worker.DefaultIdleTimeout,
		MaxHeaderBytes: worker.DefaultMaxHeaderBytes,
		MaxBodyBytes:   worker.DefaultMaxBodyBytes,
		MaxConns:       worker.DefaultMaxConns,
		Linger:         worker.DefaultLinger,
	}
}

// envPrefix prefixes every flag's environment variable.
const envPrefix = "FORKWATCH_"

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// errHelp is returned when -h was asked for; usage has been printed.
var errHelp = flag.ErrHelp

// errVersion is returned when -version was asked for.
var errVersion = errors.New("version requested")

// versionFlag is the one flag that is not a setting: it has no Options
// field and no environment variable.
const versionFlag = "version"

// flags binds o's fields to a flag set; the fields' values are the defaults.
func (o *Options) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.Listen, "listen", o.Listen, "`address` the workers serve (host:port)")
	fs.IntVar(&o.Workers, "workers", o.Workers, "worker processes")
	fs.BoolVar(&o.ReusePort, "reuseport", o.ReusePort, "each worker binds its own SO_REUSEPORT socket instead of inheriting one")
	fs.BoolVar(&o.NoMetrics, "no-metrics", o.NoMetrics, "send no metrics (the no-metrics baseline)")
	fs.StringVar(&o.StatsdAddr, "statsd-addr", o.StatsdAddr, "DogStatsD `address`: host:port (UDP) or unixgram:///path")
	fs.StringVar(&o.AppName, "app-name", o.AppName, "app_name tag value")
	fs.DurationVar(&o.FlushInterval, "flush-interval", o.FlushInterval, "how long a worker holds its counts before sending them")
	fs.TextVar(&o.LogLevel, "log-level", o.LogLevel, "log `level`: debug, info, warn, error")
	fs.DurationVar(&o.Grace, "grace", o.Grace, "how long a stopping worker may finish in-flight requests before it is killed")
	fs.DurationVar(&o.HangTimeout, "hang-timeout", o.HangTimeout, "kill a worker whose oldest request has run this long (0: never)")
	fs.DurationVar(&o.ReportTimeout, "report-timeout", o.ReportTimeout, "kill a worker that has not reported for this long (0: never)")
	fs.DurationVar(&o.ReportInterval, "report-interval", o.ReportInterval, "how often a worker reports progress to the supervisor")
	fs.Uint64Var(&o.MaxRequests, "max-requests", o.MaxRequests, "recycle a worker after this many requests (0: never)")
	fs.Uint64Var(&o.MaxRequestsJitter, "max-requests-jitter", o.MaxRequestsJitter, "add a random 0..N to each worker's -max-requests")
	fs.DurationVar(&o.ReadTimeout, "read-timeout", o.ReadTimeout, "limit for reading one request")
	fs.DurationVar(&o.WriteTimeout, "write-timeout", o.WriteTimeout, "limit for writing one response")
	fs.DurationVar(&o.IdleTimeout, "idle-timeout", o.IdleTimeout, "limit for an idle keep-alive connection")
	fs.IntVar(&o.MaxHeaderBytes, "max-header-bytes", o.MaxHeaderBytes, "largest request line plus headers (larger: 431)")
	fs.IntVar(&o.MaxBodyBytes, "max-body-bytes", o.MaxBodyBytes, "largest request body (larger: 413)")
	fs.IntVar(&o.MaxConns, "max-conns", o.MaxConns, "most connections one worker serves at once")
	fs.DurationVar(&o.Linger, "linger", o.Linger, "after a 400/413/431, how long to read what the client still sends so it gets the response (negative: off)")
	fs.StringVar(&o.AccessLog, "access-log", o.AccessLog, "each worker logs every request to `file` (\"-\": standard output) in Common Log Format, never blocking a request; empty: off")
	fs.IntVar(&o.WorkerProcs, "worker-procs", o.WorkerProcs, "GOMAXPROCS of each worker (0: the usable CPUs divided by -workers, at least 1)")
	fs.StringVar(&o.PIDFile, "pidfile", o.PIDFile, "write the supervisor's process ID to `file` at start (atomically), remove it at exit; empty: none")
	fs.StringVar(&o.AdminAddr, "admin-addr", o.AdminAddr, "loopback `address` of the supervisor's admin endpoint (GET /healthz, /audit, /debug/pprof/); empty: off")
	return fs
}

// parseOptions reads args (without the program name) and the environment
// over the defaults in o.
func parseOptions(app *App, o Options, args []string, getenv func(string) string, usageOut io.Writer) (Options, error) {
	fs := o.flags(app.Name)
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s=%q: %v", envName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return o, envErr
	}
	version := fs.Bool(versionFlag, false, "print the version and the Go version, then exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(app, fs, usageOut)
			return o, errHelp
		}
		return o, err
	}
	if *version {
		return o, errVersion
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return o, o.Validate()
}

// Validate reports the first setting that cannot work, naming its flag.
func (o *Options) Validate() error {
	host, port, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return fmt.Errorf("-listen %q: %v", o.Listen, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("-listen %q: port must be a number from 0 to 65535", o.Listen)
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		return fmt.Errorf("-listen %q: host must be an IP address or localhost", o.Listen)
	}
	if o.WorkerProcs < 0 || o.WorkerProcs > 1024 {
		return fmt.Errorf("-worker-procs %d: must be from 0 (automatic) to 1024", o.WorkerProcs)
	}
	if o.Workers < 1 || o.Workers > 1024 {
		return fmt.Errorf("-workers %d: must be from 1 to 1024", o.Workers)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"grace", o.Grace}, {"hang-timeout", o.HangTimeout}, {"report-timeout", o.ReportTimeout},
		{"flush-interval", o.FlushInterval}, {"read-timeout", o.ReadTimeout},
		{"write-timeout", o.WriteTimeout}, {"idle-timeout", o.IdleTimeout}} {
		if d.v < 0 {
			return fmt.Errorf("-%s %s: must not be negative", d.name, d.v)
		}
	}
	if o.ReportInterval <= 0 {
		return fmt.Errorf("-report-interval %s: must be positive", o.ReportInterval)
	}
	if o.ReportTimeout > 0 && o.ReportTimeout <= 2*o.ReportInterval {
		return fmt.Errorf("-report-timeout %s: must be more than twice -report-interval (%s)", o.ReportTimeout, o.ReportInterval)
	}
	if o.MaxRequestsJitter > 0 && o.MaxRequests > ^uint64(0)-o.MaxRequestsJitter {
		return fmt.Errorf("-max-requests %d plus -max-requests-jitter %d: too large", o.MaxRequests, o.MaxRequestsJitter)
	}
	if o.MaxRequestsJitter > 0 && o.MaxRequests == 0 {
		return fmt.Errorf("-max-requests-jitter %d: needs -max-requests", o.MaxRequestsJitter)
	}
	if err := checkAdminAddr(o.AdminAddr); err != nil {
		return err
	}
	if !o.NoMetrics {
		if err := checkStatsdAddr(o.StatsdAddr); err != nil {
			return err
		}
		cfg := statsd.Config{AppName: o.AppName, FlushInterval: o.FlushInterval}
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("-app-name: %v", err)
		}
	}
	wo := o.workerOptions()
	return wo.Validate()
}

func checkStatsdAddr(a string) error {
	if path, ok := strings.CutPrefix(a, "unixgram://"); ok {
		if path == "" || path[0] != '/' {
			return fmt.Errorf("-statsd-addr %q: unixgram:// needs an absolute path", a)
		}
		return nil
	}
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("-statsd-addr %q: %v", a, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("-statsd-addr %q: port must be a number from 1 to 65535", a)
	}
	return nil
}

func (o *Options) workerOptions() worker.Options {
	return worker.Options{
		ReadTimeout:    o.ReadTimeout,
		WriteTimeout:   o.WriteTimeout,
		IdleTimeout:    o.IdleTimeout,
		MaxHeaderBytes: o.MaxHeaderBytes,
		MaxBodyBytes:   o.MaxBodyBytes,
		MaxConns:       o.MaxConns,
		Linger:         o.Linger,
	}
}

func usage(app *App, fs *flag.FlagSet, w io.Writer) {
	if app.About != "" {
		fmt.Fprintln(w, app.About)
	}
	fmt.Fprintf(w, `Signals to the supervisor: TERM/INT stop gracefully (again, a second or more
later: at once), HUP reloads the workers one at a time, TTIN adds a worker, TTOU
removes one, USR2 upgrades the supervisor itself (a new one of the binary on
disk takes over the socket; the old one drains and exits). Under systemd (deploy/systemd) a socket passed by socket activation
(LISTEN_FDS) is served instead of -listen, and with NOTIFY_SOCKET the supervisor
reports READY=1, RELOADING=1 and STOPPING=1. See docs/operations.md.

Flags (each also from the environment variable shown):
`)
	fs.VisitAll(func(f *flag.Flag) {
		name, help := flag.UnquoteUsage(f)
		if f.Name == versionFlag {
			fmt.Fprintf(w, "  -%s\n    \t%s\n", f.Name, help)
			return
		}
		fmt.Fprintf(w, "  -%s %s\n    \t%s (default %q, env %s)\n", f.Name, name, help, f.DefValue, envName(f.Name))
	})
}

// workerProcs is a worker's GOMAXPROCS on a machine with cpus usable CPUs.
func (o *Options) workerProcs(cpus int) int {
	if o.WorkerProcs > 0 {
		return o.WorkerProcs
	}
	return max(1, cpus/max(1, o.Workers))
}
