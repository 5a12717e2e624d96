package supervisor

import (
	"errors"
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
