package supervisor

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"time"
)

// Defaults. The zero value of an Options field means the default named here,
// or "never" where its doc comment says so; the flags of a command use these
// as their own defaults.
const (
	// DefaultWorkers is the pool size when Options.Workers is 0.
	DefaultWorkers = 5
	// DefaultReadyTimeout is Options.ReadyTimeout when it is 0.
	DefaultReadyTimeout = 30 * time.Second
	// DefaultGrace is Options.Grace when it is 0.
	DefaultGrace = 10 * time.Second
	// DefaultHangTimeout is a sensible Options.HangTimeout for a web server;
	// the zero value means never.
	DefaultHangTimeout = 30 * time.Second
	// DefaultReportTimeout is a sensible Options.ReportTimeout; the zero
	// value means never.
	DefaultReportTimeout = 10 * time.Second
	// DefaultBackoffMin and DefaultBackoffMax bound the respawn backoff when
	// Options.BackoffMin and BackoffMax are 0.
	DefaultBackoffMin = 100 * time.Millisecond
	DefaultBackoffMax = 10 * time.Second
)

// KillMargin is how long a stopping worker has, after Options.Grace, to
// flush its final metrics and exit before the supervisor kills it (SIGKILL).
// A worker should spend at most Grace draining its in-flight requests.
const KillMargin = 2 * time.Second

const (
	// stableAfter is how long a worker must have been ready before its exit
	// no longer counts as one more crash in a row for the backoff.
	stableAfter = 5 * time.Second
	// tick is how often the supervisor checks deadlines (respawns, hangs,
	// stragglers); it bounds how late a deadline is noticed.
	tick = 25 * time.Millisecond
	// signalMerge is how far apart two stop signals must be for the second
	// to mean "kill the workers now". Closer signals are one stop: a
	// terminal's Ctrl-C reaches the whole process group, and a parent (a
	// shell, make, a test harness) often forwards its own SIGTERM right after.
	signalMerge = time.Second
)

// Reason says why a worker exited.
type Reason string

// The reasons a worker exits.
const (
	ReasonCrash    Reason = "crash"    // it exited without being asked
	ReasonTimeout  Reason = "timeout"  // it hung and was killed
	ReasonRecycle  Reason = "recycle"  // it reached Options.MaxRequests
	ReasonReload   Reason = "reload"   // SIGHUP replaced it
	ReasonScale    Reason = "scale"    // SIGTTOU removed its slot
	ReasonShutdown Reason = "shutdown" // the pool is stopping
	ReasonStartup  Reason = "startup"  // it never became ready
)

// Worker identifies one worker process in hooks.
type Worker struct {
	ID  int // slot number, from 1
	PID int // 0 before the process exists (Hooks.Files)
}

// Hooks observe, and in one case extend, a worker's life. Every hook is
// called from the supervisor's single event goroutine, in the order the
// events happened, and must not block: the supervisor watches no deadline
// while a hook runs. A nil hook is skipped.
type Hooks struct {
	// Files is called before each worker process is started, with the slot
	// it will serve (PID 0). The files it returns are passed to the worker
	// after the supervisor's own descriptors, in order, and the worker reads
	// them with Child.Files. The supervisor does not close them. An error
	// fails that start like any other (a respawn backs off and retries).
	Files func(w Worker) ([]*os.File, error)
	// Spawn is called after a worker process has started.
	Spawn func(w Worker)
	// Ready is called when a worker reports that it serves.
	Ready func(w Worker)
	// Exit is called when a worker has exited and been reaped, so whatever
	// it wrote (to a file from Files, say) is final. wasReady tells whether
	// it had ever become ready; err is the exit status, nil for a clean exit.
	Exit func(w Worker, reason Reason, wasReady bool, err error)
	// Status is called with each progress report.
	Status func(w Worker, s Status)
	// Message is called with each message a worker sent with Child.Send.
	Message func(w Worker, msg []byte)
}

// Options configure a Supervisor. The zero value of each field is usable
// except Addr, which is needed unless Listener is set. Durations must not
// be negative.
type Options struct {
	// Addr is the TCP address every worker serves, e.g. "127.0.0.1:5000".
	Addr string
	// Workers is the pool size. 0: DefaultWorkers.
	Workers int
	// ReusePort makes each worker bind its own SO_REUSEPORT socket instead of
	// inheriting the supervisor's. On reload or recycle, connections queued
	// on a departing worker's socket are reset by the kernel.
	ReusePort bool

	// Path is the worker executable. Default: this process's executable, as
	// resolved at New, so a reload runs whatever binary is at that path then.
	Path string
	// Args are the worker's arguments, without argv[0]. Default os.Args[1:].
	Args []string
	// Env is the worker's environment. Default os.Environ().
	Env []string
	// Stdout and Stderr receive the workers' output. Default os.Stdout and
	// os.Stderr.
	Stdout, Stderr io.Writer

	// ReadyTimeout bounds how long a new worker may take to become ready
	// before it is killed. 0: DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// Grace is how long a stopping worker may finish its in-flight requests.
	// The supervisor kills it (SIGKILL) if it is still running Grace plus
	// KillMargin after it was told to stop. 0: DefaultGrace.
	Grace time.Duration
	// HangTimeout is how long a worker's oldest in-flight request may run
	// before the worker is deemed hung, killed and replaced. 0: never.
	HangTimeout time.Duration
	// ReportTimeout is how long a ready worker may go without any report
	// before it is deemed hung, killed and replaced. 0: never.
	ReportTimeout time.Duration
	// MaxRequests recycles a worker (its replacement ready first) after it
	// has handled this many requests, like gunicorn's --max-requests.
	// 0: never.
	MaxRequests uint64
	// MaxRequestsJitter adds a random 0..MaxRequestsJitter to each worker's
	// MaxRequests so that workers do not recycle together. Ignored when
	// MaxRequests is 0.
	MaxRequestsJitter uint64
	// BackoffMin and BackoffMax bound the delay before respawning a slot
	// whose worker crashed again soon after starting, or could not be
	// started. The first crash is respawned at once. 0: DefaultBackoffMin
	// and DefaultBackoffMax.
	BackoffMin, BackoffMax time.Duration

	// Logger receives lifecycle events. Default slog.Default().
	Logger *slog.Logger
	// Hooks observe lifecycle events.
	Hooks Hooks

	// Listener, if set, is an already-bound listening TCP socket to serve
	// instead of binding Addr (systemd socket activation: see Listeners).
	// The supervisor takes it over and closes it when Run returns. Not with
	// ReusePort.
	Listener *os.File
	// Pool are hooks that observe the pool as a whole (see PoolHooks).
	Pool PoolHooks

	// Handoff, from Upgraded, makes this supervisor the new one of an
	// upgrade: it serves Handoff.Listener and, once every worker is ready
	// (after PoolHooks.Serving), tells the old supervisor, which then
	// stops; if Run fails first, it tells the old one why. Not with
	// Listener or ReusePort.
	Handoff *Handoff
	// UpgradeEnv is the environment of the new supervisor an upgrade
	// (SIGUSR2) starts. Default Env. A service manager's variables that
	// the workers must not see but a supervisor needs (NOTIFY_SOCKET)
	// belong here, not in Env.
	UpgradeEnv []string
}

// ErrNoAddr is returned by Validate when Options.Addr is empty.
var ErrNoAddr = errors.New("supervisor: no listen address")

// Validate reports the first option that cannot work.
func (o *Options) Validate() error {
	if o.Addr == "" && o.Listener == nil && o.Handoff == nil {
		return ErrNoAddr
	}
	if o.Listener != nil && o.ReusePort {
		return errors.New("supervisor: an inherited Listener cannot be used with ReusePort")
	}
	if o.Handoff != nil && (o.Listener != nil || o.ReusePort) {
		return errors.New("supervisor: a Handoff brings its own listener: not with Listener or ReusePort")
	}
	if o.Workers < 0 {
		return fmt.Errorf("supervisor: workers %d: must not be negative (0: %d)", o.Workers, DefaultWorkers)
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{
		{"ready timeout", o.ReadyTimeout}, {"grace", o.Grace}, {"hang timeout", o.HangTimeout},
		{"report timeout", o.ReportTimeout}, {"backoff min", o.BackoffMin}, {"backoff max", o.BackoffMax},
	} {
		if d.d < 0 {
			return fmt.Errorf("supervisor: %s %s: must not be negative", d.name, d.d)
		}
	}
	// The worker's limit is MaxRequests plus a draw from 0..MaxRequestsJitter:
	// the sum must fit, and so must the draw's range (jitter+1).
	if o.MaxRequests > 0 && o.MaxRequestsJitter > math.MaxUint64-o.MaxRequests {
		return fmt.Errorf("supervisor: max requests %d plus jitter %d overflows a uint64", o.MaxRequests, o.MaxRequestsJitter)
	}
	if o.MaxRequestsJitter == math.MaxUint64 {
		return fmt.Errorf("supervisor: max requests jitter %d: must be less than %d", o.MaxRequestsJitter, uint64(math.MaxUint64))
	}
	return nil
}

func (o *Options) setDefaults() {
	if o.Workers == 0 {
		o.Workers = DefaultWorkers
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	if o.Grace == 0 {
		o.Grace = DefaultGrace
	}
	if o.BackoffMin == 0 {
		o.BackoffMin = DefaultBackoffMin
	}
	if o.BackoffMax == 0 {
		o.BackoffMax = DefaultBackoffMax
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}
