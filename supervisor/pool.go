package supervisor

import (
	"errors"
	"os"
	"time"
)

// PoolHooks observe the pool as a whole, for a service manager's readiness
// protocol (see Notify), health checks and pool gauges. Like Hooks they are
// called from the supervisor's event goroutine, in order, and must not
// block.
type PoolHooks struct {
	// Serving is called once, when every worker of the first boot is ready.
	Serving func(workers int)
	// Reloading is called when a reload (SIGHUP or Reload) starts.
	Reloading func()
	// Reloaded is called when that reload ends: err is nil when every slot
	// was replaced, else why it was aborted (the old workers keep serving).
	// A reload cut short by a stop ends with Stopping instead.
	Reloaded func(err error)
	// Stopping is called once, when the pool starts to stop.
	Stopping func()
	// Scaled is called with the new number of slots after SIGTTIN,
	// SIGTTOU or Scale.
	Scaled func(workers int)
	// UpgradeFiles, if set, is called at an upgrade (SIGUSR2) for files to
	// pass to the new supervisor after the listening socket (an admin
	// endpoint's socket, say); it reads them as Handoff.Files. The
	// supervisor closes them once the new process has started.
	UpgradeFiles func() ([]*os.File, error)
	// Upgraded is called when an upgrade ends: err is nil when the new
	// supervisor (pid) serves, and this one now stops its workers and
	// returns from Run (Stopping is not called: the service goes on);
	// else why the upgrade was aborted (wrapping ErrUpgradeAborted), and
	// this one keeps serving. pid is 0 if no process was started.
	Upgraded func(pid int, err error)
	// Alive is called every time the event loop checks its deadlines
	// (about every 25ms): a heartbeat that stops if the loop is stuck.
	Alive func(now time.Time)
}

// ErrReloadAborted is passed to PoolHooks.Reloaded when a new worker failed
// to start and the reload stopped.
var ErrReloadAborted = errors.New("supervisor: reload aborted")

// servingCheck calls PoolHooks.Serving the first time every slot's worker
// is ready.
func (s *Supervisor) servingCheck() {
	if s.serving || s.stopping {
		return
	}
	for _, sl := range s.slots {
		if sl.cur == nil || sl.cur.readyAt.IsZero() {
			return
		}
	}
	s.serving = true
	if h := s.opts.Pool.Serving; h != nil {
		h(len(s.slots))
	}
	// After Serving, which writes the pid file and tells systemd the new
	// main PID: the old supervisor stops once it reads this.
	if h := s.opts.Handoff; h != nil {
		if err := h.ready(); err != nil {
			s.opts.Logger.Error("upgrade: cannot tell the old supervisor that this one serves", "err", err)
			return
		}
		s.opts.Logger.Info("upgrade: told the old supervisor that this one serves", "old_pid", os.Getppid())
	}
}

func (s *Supervisor) reloadStarted() {
	if h := s.opts.Pool.Reloading; h != nil {
		h()
	}
}

func (s *Supervisor) reloaded(err error) {
	if h := s.opts.Pool.Reloaded; h != nil {
		h(err)
	}
}

func (s *Supervisor) stoppingHook() {
	if h := s.opts.Pool.Stopping; h != nil {
		h()
	}
}

func (s *Supervisor) scaled() {
	if h := s.opts.Pool.Scaled; h != nil {
		h(len(s.slots))
	}
}

func (s *Supervisor) alive(now time.Time) {
	if h := s.opts.Pool.Alive; h != nil {
		h(now)
	}
}
