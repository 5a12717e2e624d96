package supervisor

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
)

// Defaults for the zero values of Options.
const (
	DefaultWorkers       = 5
	DefaultReadyTimeout  = 30 * time.Second
	DefaultStopTimeout   = 30 * time.Second
	DefaultHangTimeout   = 30 * time.Second
	DefaultReportTimeout = 10 * time.Second
	DefaultBackoffMin    = 100 * time.Millisecond
	DefaultBackoffMax    = 10 * time.Second
	// stableAfter is how long a worker must have been ready before its exit
	// no longer counts as one more crash in a row for the backoff.
	stableAfter = 5 * time.Second
	// tick is how often the supervisor checks deadlines (respawns, hangs,
	// stragglers); it bounds how late a deadline is noticed.
	tick = 25 * time.Millisecond
)

// Reason says why a worker exited.
type Reason string

// The reasons a worker exits.
const (
	ReasonCrash    Reason = "crash"    // it exited without being asked
	ReasonTimeout  Reason = "timeout"  // it hung and was killed
	ReasonRecycle  Reason = "recycle"  // it reached Options.MaxJobs
	ReasonReload   Reason = "reload"   // SIGHUP replaced it
	ReasonScale    Reason = "scale"    // SIGTTOU removed its slot
	ReasonShutdown Reason = "shutdown" // the pool is stopping
	ReasonStartup  Reason = "startup"  // it never became ready
)

// Worker identifies one worker process in hooks.
type Worker struct {
	ID  int // slot number, from 1
	PID int
}

// Hooks are called from the supervisor's event goroutine and must not block.
type Hooks struct {
	// Spawn is called after a worker process has started.
	Spawn func(w Worker)
	// Ready is called when a worker reports that it serves.
	Ready func(w Worker)
	// Exit is called when a worker has exited; wasReady tells whether it
	// had ever become ready. err is the exit status, nil for a clean exit.
	Exit func(w Worker, reason Reason, wasReady bool, err error)
	// Status is called with each progress report.
	Status func(w Worker, s Status)
	// Message is called with each message a worker sent with Child.Send.
	Message func(w Worker, msg []byte)
}

// Options configure a Supervisor. The zero value of each field is usable
// except Addr, which is needed unless Listener is set.
type Options struct {
	// Addr is the TCP address every worker serves, e.g. "127.0.0.1:5000".
	Addr string
	// Workers is the pool size. Default 5.
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

	// ReadyTimeout bounds how long a new worker may take to become ready.
	// Default 30s.
	ReadyTimeout time.Duration
	// StopTimeout is the grace period a stopping worker has to finish its
	// in-flight jobs before it is killed. Default 30s.
	StopTimeout time.Duration
	// HangTimeout is how long a single job may be in progress before its
	// worker is deemed hung and killed. Default 30s; negative disables.
	HangTimeout time.Duration
	// ReportTimeout is how long a ready worker may go without any report
	// before it is deemed hung. Default 10s; negative disables.
	ReportTimeout time.Duration
	// MaxJobs recycles a worker after this many jobs. Default 0: never.
	MaxJobs uint64
	// MaxJobsJitter adds a random 0..MaxJobsJitter to each worker's MaxJobs
	// so that workers do not recycle together.
	MaxJobsJitter uint64
	// BackoffMin and BackoffMax bound the delay before respawning a slot
	// whose worker crashed again soon after starting. The first crash is
	// respawned at once. Defaults 100ms and 10s.
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
}

// ErrNoAddr is returned by Validate when Options.Addr is empty.
var ErrNoAddr = errors.New("supervisor: no listen address")

// Validate reports the first option that cannot work.
func (o *Options) Validate() error {
	switch {
	case o.Addr == "" && o.Listener == nil:
		return ErrNoAddr
	case o.Listener != nil && o.ReusePort:
		return errors.New("supervisor: an inherited Listener cannot be used with ReusePort")
	case o.Workers < 0:
		return fmt.Errorf("supervisor: workers %d: must be at least 1", o.Workers)
	case o.ReadyTimeout < 0, o.StopTimeout < 0, o.BackoffMin < 0, o.BackoffMax < 0:
		return errors.New("supervisor: timeouts and backoffs must not be negative")
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
	if o.StopTimeout == 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	if o.HangTimeout == 0 {
		o.HangTimeout = DefaultHangTimeout
	}
	if o.ReportTimeout == 0 {
		o.ReportTimeout = DefaultReportTimeout
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
