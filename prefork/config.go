package prefork

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"forkwatch/statsd"
	"forkwatch/supervisor"
	"forkwatch/worker"
)

// config is everything the serve command takes from flags and environment.
type config struct {
	listen      string
	workers     int
	reusePort   bool
	metrics     bool
	statsdAddr  string
	appName     string
	flush       time.Duration
	logLevel    slog.Level
	grace       time.Duration
	hangTimeout time.Duration
	reportEvery time.Duration
	silentAfter time.Duration
	maxRequests uint64
	maxJitter   uint64
	adminAddr   string

	readTimeout    time.Duration
	writeTimeout   time.Duration
	idleTimeout    time.Duration
	maxHeaderBytes int
	maxBodyBytes   int
	maxConns       int
	linger         time.Duration
}

// envPrefix prefixes every flag's environment variable: -statsd-addr is
// FORKWATCH_STATSD_ADDR.
const envPrefix = "FORKWATCH_"

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// errHelp is returned when -h was asked for; usage has been printed.
var errHelp = flag.ErrHelp

// parseConfig reads args (without the program name) and the environment. A
// flag given on the command line beats its environment variable.
func parseConfig(app App, args []string, getenv func(string) string, usageOut io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet(app.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:5000", "`address` the workers serve (host:port)")
	fs.IntVar(&c.workers, "workers", supervisor.DefaultWorkers, "worker processes")
	fs.BoolVar(&c.reusePort, "reuseport", false, "each worker binds its own SO_REUSEPORT socket instead of inheriting one")
	fs.BoolVar(&c.metrics, "metrics", true, "send DogStatsD metrics (false: the no-metrics baseline)")
	fs.StringVar(&c.statsdAddr, "statsd-addr", statsd.DefaultAddr, "DogStatsD `address`: host:port (UDP) or unixgram:///path")
	fs.StringVar(&c.appName, "app-name", statsd.DefaultAppName, "app_name tag value")
	fs.DurationVar(&c.flush, "flush-interval", statsd.DefaultFlushInterval, "how long the metrics client aggregates before sending")
	fs.TextVar(&c.logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn, error")
	fs.DurationVar(&c.grace, "grace", 10*time.Second, "how long a stopping worker may finish in-flight requests before it is killed")
	fs.DurationVar(&c.hangTimeout, "hang-timeout", 30*time.Second, "kill a worker whose oldest request has run this long (0: never)")
	fs.DurationVar(&c.silentAfter, "report-timeout", 10*time.Second, "kill a worker that has not reported for this long (0: never)")
	fs.DurationVar(&c.reportEvery, "report-interval", 250*time.Millisecond, "how often a worker reports progress to the supervisor")
	fs.Uint64Var(&c.maxRequests, "max-requests", 0, "recycle a worker after this many requests (0: never)")
	fs.Uint64Var(&c.maxJitter, "max-requests-jitter", 0, "add a random 0..N to each worker's -max-requests")
	fs.DurationVar(&c.readTimeout, "read-timeout", worker.DefaultReadTimeout, "limit for reading one request")
	fs.DurationVar(&c.writeTimeout, "write-timeout", worker.DefaultWriteTimeout, "limit for writing one response")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", worker.DefaultIdleTimeout, "limit for an idle keep-alive connection")
	fs.IntVar(&c.maxHeaderBytes, "max-header-bytes", worker.DefaultMaxHeaderBytes, "largest request line plus headers (larger: 431)")
	fs.IntVar(&c.maxBodyBytes, "max-body-bytes", worker.DefaultMaxBodyBytes, "largest request body (larger: 413)")
	fs.IntVar(&c.maxConns, "max-conns", worker.DefaultMaxConns, "most connections one worker serves at once")
	fs.DurationVar(&c.linger, "linger", worker.DefaultLinger, "after a 400/413/431, how long to read what the client still sends so it gets the response (negative: off)")
	fs.StringVar(&c.adminAddr, "admin-addr", "", "loopback `address` of the supervisor's admin endpoint (GET /audit, for webapp audit); empty: off")

	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s=%q: %v", envName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(app, fs, usageOut)
			return nil, errHelp
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return c, c.validate()
}

func (c *config) validate() error {
	host, port, err := net.SplitHostPort(c.listen)
	if err != nil {
		return fmt.Errorf("-listen %q: %v", c.listen, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("-listen %q: port must be a number from 0 to 65535", c.listen)
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		return fmt.Errorf("-listen %q: host must be an IP address or localhost", c.listen)
	}
	if c.workers < 1 || c.workers > 1024 {
		return fmt.Errorf("-workers %d: must be from 1 to 1024", c.workers)
	}
	for name, d := range map[string]time.Duration{"grace": c.grace, "hang-timeout": c.hangTimeout,
		"report-timeout": c.silentAfter, "flush-interval": c.flush, "read-timeout": c.readTimeout,
		"write-timeout": c.writeTimeout, "idle-timeout": c.idleTimeout} {
		if d < 0 {
			return fmt.Errorf("-%s %s: must not be negative", name, d)
		}
	}
	if c.reportEvery <= 0 {
		return fmt.Errorf("-report-interval %s: must be positive", c.reportEvery)
	}
	if c.silentAfter > 0 && c.silentAfter <= 2*c.reportEvery {
		return fmt.Errorf("-report-timeout %s: must be more than twice -report-interval (%s)", c.silentAfter, c.reportEvery)
	}
	if err := checkAdminAddr(c.adminAddr); err != nil {
		return err
	}
	if c.metrics {
		if err := checkStatsdAddr(c.statsdAddr); err != nil {
			return err
		}
		cfg := statsd.Config{AppName: c.appName, FlushInterval: c.flush}
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("-app-name: %v", err)
		}
	}
	wo := c.workerOptions()
	if err := wo.Validate(); err != nil {
		return err
	}
	return nil
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

func (c *config) workerOptions() worker.Options {
	return worker.Options{
		ReadTimeout:    c.readTimeout,
		WriteTimeout:   c.writeTimeout,
		IdleTimeout:    c.idleTimeout,
		MaxHeaderBytes: c.maxHeaderBytes,
		MaxBodyBytes:   c.maxBodyBytes,
		MaxConns:       c.maxConns,
		Linger:         c.linger,
	}
}

func (c *config) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: c.logLevel}))
}

func usage(app App, fs *flag.FlagSet, w io.Writer) {
	if app.About != "" {
		fmt.Fprintln(w, app.About)
	}
	fmt.Fprintf(w, `Signals to the supervisor: TERM/INT stop gracefully (twice: at once), HUP reloads
the workers one at a time, TTIN adds a worker, TTOU removes one.

Flags (each also from the environment variable shown):
`)
	fs.SetOutput(w)
	fs.VisitAll(func(f *flag.Flag) {
		name, help := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  -%s %s\n    \t%s (default %q, env %s)\n", f.Name, name, help, f.DefValue, envName(f.Name))
	})
}
