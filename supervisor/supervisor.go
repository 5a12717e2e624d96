package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Supervisor runs and watches a pool of workers. Create it with New and start
// it with Run.
type Supervisor struct {
	opts Options
	sys  sys

	cmds chan command // Reload and Scale calls, into the event loop

	// Owned by the event loop.
	listener  *os.File // non-blocking dup of the shared socket; nil in reuseport mode
	addr      string   // the bound address, with the real port
	slots     []*slot
	procs     map[*proc]struct{}
	events    chan event
	wg        sync.WaitGroup
	everReady bool
	reload    []int // slot ids still to replace in the current reload
	reloading bool  // a reload is under way (its last slot may be starting)
	reloadDue bool  // a SIGHUP came during the reload: run one more after it
	stopping  bool
	stopBegan time.Time // when stopping began, to merge close stop signals
	bound     chan string
	serving   bool // PoolHooks.Serving was called

	up         *upgrade // the new supervisor of an upgrade under way
	upEvents   chan upgradeEvent
	handedOver bool       // a new supervisor serves: this one stops
	leftovers  []leftover // what failed new supervisors left, being stopped
}

type slot struct {
	id        int
	cur       *proc     // the serving (or starting) worker; nil while waiting to respawn
	next      *proc     // a replacement that is starting
	crashes   int       // crashes in a row, for the backoff
	respawnAt time.Time // when cur is nil: when to start a new one
}

type proc struct {
	slot       *slot
	pid        int
	process    process
	control    *os.File // our write end; closing it asks the worker to stop
	started    time.Time
	readyAt    time.Time // zero until ready
	stopReason Reason    // set when we asked it to stop (or killed it)
	stopAt     time.Time
	why        Reason // for a replacement: why it replaces the slot's worker (reload, recycle)
	status     Status
	statusAt   time.Time
	recycleAt  uint64
	fatal      string // what the worker said before failing
}

type event struct {
	p       *proc
	typ     byte // a frame type, or 0 for "the process exited"
	payload []byte
	err     error
}

type command struct {
	reload  bool
	upgrade bool
	scale   int
}

// New checks opts and prepares a Supervisor; it starts nothing.
func New(opts Options) (*Supervisor, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	if opts.Path == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("supervisor: find own executable: %w", err)
		}
		opts.Path = exe
	}
	if opts.Args == nil {
		opts.Args = os.Args[1:]
	}
	if opts.Env == nil {
		opts.Env = os.Environ()
	}
	if opts.UpgradeEnv == nil {
		opts.UpgradeEnv = opts.Env
	}
	if opts.Handoff != nil {
		opts.Listener = opts.Handoff.Listener
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	return &Supervisor{
		opts:   opts,
		sys:    realSys(),
		cmds:   make(chan command, 8),
		procs:  make(map[*proc]struct{}),
		events: make(chan event, 64),
		bound:  make(chan string, 1),
		// Room for every event of one new supervisor (ready or fatal, then
		// its exit), which may come after Run returned.
		upEvents: make(chan upgradeEvent, 4),
	}, nil
}

// Reload replaces every worker, one at a time, as SIGHUP does; during a
// reload it schedules one more after it.
func (s *Supervisor) Reload() { s.cmds <- command{reload: true} }

// Upgrade starts a new supervisor of the binary at Options.Path that takes
// over the socket, as SIGUSR2 does; this one stops once it is ready.
func (s *Supervisor) Upgrade() { s.cmds <- command{upgrade: true} }

// Scale adds (delta > 0) or removes (delta < 0) worker slots, as SIGTTIN and
// SIGTTOU do. The pool never shrinks below one worker.
func (s *Supervisor) Scale(delta int) { s.cmds <- command{scale: delta} }

// Addr returns a channel that yields the address the pool serves once it is
// bound (useful with port 0).
func (s *Supervisor) Addr() <-chan string { return s.bound }

// Run binds the socket, starts the pool and supervises it until ctx is done
// or a stop signal arrives, then stops the workers. It returns nil after a
// normal stop, or an error if the pool could not start.
//
// While Run runs, a write to a closed stdout or stderr (the reader of the
// log went away) fails with EPIPE instead of killing the process.
func (s *Supervisor) Run(ctx context.Context) (err error) {
	if h := s.opts.Handoff; h != nil {
		// The old supervisor waits for our word: a failure is its to log.
		// After ready, this does nothing.
		defer func() { h.Fail(err) }()
	}
	// Go's runtime kills a process that writes to a broken stdout or stderr
	// unless SIGPIPE is handled; the pool must outlive its log reader (`2>&1
	// | tee log`, then tee dies). Notify rather than Ignore: an ignored
	// signal stays ignored across exec, in the workers and what they start.
	sigpipe := make(chan os.Signal, 1)
	signal.Notify(sigpipe, syscall.SIGPIPE)
	defer signal.Stop(sigpipe)

	if err := s.bind(); err != nil {
		return err
	}
	defer s.closeListener()
	log := s.opts.Logger
	log.Info("supervisor started", "pid", os.Getpid(), "addr", s.addr, "workers", s.opts.Workers,
		"reuseport", s.opts.ReusePort, "path", s.opts.Path)

	sigs := make(chan os.Signal, 4)
	s.sys.notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGUSR2)
	defer s.sys.stopNotify(sigs)

	for i := 1; i <= s.opts.Workers; i++ {
		sl := &slot{id: i}
		s.slots = append(s.slots, sl)
		if err := s.spawn(sl, ""); err != nil {
			s.stopping = true
			s.killAll()
			s.wait()
			return err
		}
	}

	ticks, stopTicker := s.sys.ticker(tick)
	defer stopTicker()
	ctxDone := ctx.Done()
	var bootErr error
	for len(s.procs) > 0 || len(s.leftovers) > 0 || !s.stopping {
		select {
		case <-ctxDone:
			ctxDone = nil
			s.shutdown("context done")
		case sig := <-sigs:
			s.signal(sig)
		case c := <-s.cmds:
			if c.reload {
				s.startReload()
			}
			if c.upgrade {
				s.startUpgrade()
			}
			if c.scale != 0 {
				s.scale(c.scale)
			}
		case ev := <-s.upEvents:
			s.handleUpgrade(ev)
		case ev := <-s.events:
			if err := s.handle(ev); err != nil && bootErr == nil {
				bootErr = err
				s.killAll()
				s.stopping = true
			}
		case <-ticks:
			if err := s.check(s.sys.now()); err != nil && bootErr == nil {
				bootErr = err
				s.killAll()
				s.stopping = true
			}
		}
	}
	s.wait()
	if bootErr != nil {
		return bootErr
	}
	log.Info("supervisor stopped")
	return nil
}

// closeListener closes the supervisor's copy of the shared socket. Once no
// worker holds it either, the kernel refuses new connections instead of
// queueing them for nobody.
func (s *Supervisor) closeListener() {
	if s.listener != nil {
		s.listener.Close()
		s.listener = nil
	}
}

func (s *Supervisor) bind() error {
	if s.opts.Listener != nil {
		return s.inherit()
	}
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("supervisor: listen %s: %w", s.opts.Addr, err)
	}
	s.addr = ln.Addr().String()
	if s.opts.ReusePort {
		// Workers bind their own sockets on the address we just learned; ours
		// only checked that the address is usable and fixed its port.
		ln.Close()
	} else {
		f, err := nonBlockingDup(ln.(*net.TCPListener))
		ln.Close() // the dup keeps the socket open
		if err != nil {
			return err
		}
		s.listener = f
	}
	s.bound <- s.addr
	return nil
}

// nonBlockingDup duplicates the listener's descriptor without the blocking
// mode switch that (*net.TCPListener).File and (*os.File).Fd perform: the
// socket's O_NONBLOCK flag is shared by every process holding it, and a
// blocking accept cannot be interrupted by a worker's graceful shutdown.
func nonBlockingDup(ln *net.TCPListener) (*os.File, error) {
	rc, err := ln.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("supervisor: listener fd: %w", err)
	}
	var fd int
	var derr error
	if err := rc.Control(func(raw uintptr) { fd, derr = syscall.Dup(int(raw)) }); err != nil {
		return nil, fmt.Errorf("supervisor: listener fd: %w", err)
	}
	if derr != nil {
		return nil, fmt.Errorf("supervisor: dup listener: %w", derr)
	}
	syscall.CloseOnExec(fd)
	// os.NewFile on a non-blocking descriptor keeps Fd from switching it.
	return os.NewFile(uintptr(fd), "listener"), nil
}

func (s *Supervisor) signal(sig os.Signal) {
	log := s.opts.Logger
	switch sig {
	case syscall.SIGTERM, syscall.SIGINT:
		if !s.stopping {
			s.shutdown(sig.String())
			return
		}
		// A terminal's Ctrl-C reaches the whole process group, and a parent
		// often forwards its own SIGTERM right after: only a signal sent
		// deliberately later escalates.
		if since := s.sys.now().Sub(s.stopBegan); since < signalMerge {
			log.Info("stop signal soon after the first: same stop", "signal", sig.String(), "after", since)
			return
		}
		log.Warn("second stop signal: killing workers now", "signal", sig.String(), "workers", len(s.procs))
		s.killAll()
	case syscall.SIGHUP:
		s.startReload()
	case syscall.SIGTTIN:
		s.scale(1)
	case syscall.SIGTTOU:
		s.scale(-1)
	case syscall.SIGUSR2:
		s.startUpgrade()
	}
}

func (s *Supervisor) shutdown(why string) { s.stopPool(why, true) }

// stopPool stops every worker. After an upgrade it is not the service that
// stops (the new supervisor holds the socket), so PoolHooks.Stopping is not
// called.
func (s *Supervisor) stopPool(why string, serviceStops bool) {
	if s.stopping {
		return
	}
	s.stopping, s.stopBegan = true, s.sys.now()
	s.reload, s.reloading, s.reloadDue = nil, false, false
	// New connections get a refusal rather than a queue no worker serves:
	// the workers close their copies as they stop. After an upgrade the new
	// supervisor holds the socket: they queue for its workers.
	s.closeListener()
	if up := s.up; up != nil {
		s.up = nil
		s.opts.Logger.Warn("stopping: abandoning the upgrade under way", "new_pid", up.pid)
		s.abandon(up)
		s.upgraded(up.pid, fmt.Errorf("%w: this supervisor is stopping", ErrUpgradeAborted))
	}
	if serviceStops {
		s.stoppingHook()
	}
	s.opts.Logger.Info("stopping workers", "why", why, "workers", len(s.procs),
		"grace", s.opts.Grace, "kill_after", s.opts.Grace+KillMargin)
	for p := range s.procs {
		s.stop(p, ReasonShutdown)
	}
}

// spawn starts a worker for sl. With a reason it is a replacement (sl.next)
// that takes over the slot once ready; otherwise it becomes the slot's worker.
func (s *Supervisor) spawn(sl *slot, why Reason) error {
	var extra []*os.File
	if h := s.opts.Hooks.Files; h != nil {
		var err error
		if extra, err = h(Worker{ID: sl.id}); err != nil {
			return fmt.Errorf("supervisor: start worker %d: files: %w", sl.id, err)
		}
	}
	reportR, reportW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("supervisor: start worker %d: %w", sl.id, err)
	}
	controlR, controlW, err := os.Pipe()
	if err != nil {
		reportR.Close()
		reportW.Close()
		return fmt.Errorf("supervisor: start worker %d: %w", sl.id, err)
	}
	// Validate made sure neither the sum nor the draw's range overflows.
	recycleAt := s.opts.MaxRequests
	if recycleAt > 0 && s.opts.MaxRequestsJitter > 0 {
		recycleAt += rand.Uint64N(s.opts.MaxRequestsJitter + 1)
	}
	spec := procSpec{
		path:   s.opts.Path,
		args:   s.opts.Args,
		env:    append(append([]string(nil), s.opts.Env...), envWorkerID+"="+strconv.Itoa(sl.id)),
		stdout: s.opts.Stdout,
		stderr: s.opts.Stderr,
		files:  []*os.File{reportW, controlR},
	}
	if recycleAt > 0 {
		spec.env = append(spec.env, envMaxRequests+"="+strconv.FormatUint(recycleAt, 10))
	}
	if s.opts.ReusePort {
		spec.env = append(spec.env, envReusePort+"="+s.addr)
	} else {
		spec.files = append(spec.files, s.listener)
	}
	if len(extra) > 0 {
		spec.env = append(spec.env, envFiles+"="+strconv.Itoa(len(extra)))
		spec.files = append(spec.files, extra...)
	}
	proc0, err := s.sys.start(spec)
	reportW.Close()
	controlR.Close()
	if err != nil {
		reportR.Close()
		controlW.Close()
		return fmt.Errorf("supervisor: start worker %d: %w", sl.id, err)
	}
	p := &proc{
		slot:      sl,
		pid:       proc0.Pid(),
		process:   proc0,
		control:   controlW,
		started:   s.sys.now(),
		why:       why,
		recycleAt: recycleAt,
	}
	replacing := sl.cur
	if why != "" {
		sl.next = p
	} else {
		sl.cur = p
	}
	s.procs[p] = struct{}{}
	s.wg.Add(1)
	go s.watch(p, reportR)
	s.opts.Logger.Info("worker started", "worker", sl.id, "pid", p.pid, "replacing", pidOf(replacing), "why", string(why))
	if h := s.opts.Hooks.Spawn; h != nil {
		h(Worker{ID: sl.id, PID: p.pid})
	}
	return nil
}

func pidOf(p *proc) int {
	if p == nil {
		return 0
	}
	return p.pid
}

// watch forwards p's frames, then its exit, to the event loop: one goroutine
// per worker keeps a worker's frames ordered before its exit.
//
// The exit is the process's own (Wait), not the report pipe's end-of-file: a
// process the worker started may hold the pipe open long after the worker is
// gone. When Wait returns first, the frames already in the pipe are still
// delivered; whatever such a process writes later is not.
func (s *Supervisor) watch(p *proc, report *os.File) {
	defer s.wg.Done()
	exited := make(chan error, 1)
	go func() {
		err := p.process.Wait()
		// A deadline in the past wakes the reader; it then drains the pipe
		// without waiting (reportReader).
		_ = report.SetReadDeadline(time.Unix(1, 0))
		exited <- err
	}()
	r := bufio.NewReader(&reportReader{f: report})
	for {
		typ, payload, err := readFrame(r)
		if err != nil {
			break
		}
		s.events <- event{p: p, typ: typ, payload: payload}
	}
	err := <-exited
	report.Close()
	s.events <- event{p: p, err: err}
}

// reportReader reads a worker's report pipe until end-of-file, or, once the
// worker has exited (its watcher set a past read deadline), until the pipe
// is empty.
type reportReader struct {
	f        *os.File
	draining bool
}

func (r *reportReader) Read(b []byte) (int, error) {
	if !r.draining {
		n, err := r.f.Read(b)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		r.draining = true
		if err := r.f.SetReadDeadline(time.Time{}); err != nil {
			return 0, io.EOF
		}
	}
	rc, err := r.f.SyscallConn()
	if err != nil {
		return 0, io.EOF
	}
	var n int
	var rerr error
	// Returning true reads once, without waiting for the pipe to be ready.
	err = rc.Read(func(fd uintptr) bool {
		n, rerr = unix.Read(int(fd), b)
		return true
	})
	if err != nil || rerr != nil || n <= 0 {
		return 0, io.EOF // empty (EAGAIN), or at end-of-file
	}
	return n, nil
}

// wait drains events until every watcher goroutine has finished.
func (s *Supervisor) wait() {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	for {
		select {
		case ev := <-s.events:
			if ev.typ == 0 {
				s.exited(ev.p, ev.err)
			}
		case <-done:
			return
		}
	}
}

func (s *Supervisor) handle(ev event) error {
	p := ev.p
	w := Worker{ID: p.slot.id, PID: p.pid}
	switch ev.typ {
	case 0:
		return s.exited(p, ev.err)
	case frameReady:
		s.ready(p)
	case frameStatus:
		st, err := decodeStatus(ev.payload)
		if err != nil {
			s.opts.Logger.Warn("bad status frame", "worker", w.ID, "pid", w.PID, "err", err)
			return nil
		}
		p.status, p.statusAt = st, s.sys.now()
		if h := s.opts.Hooks.Status; h != nil {
			h(w, st)
		}
		s.maybeRecycle(p)
	case frameMessage:
		if h := s.opts.Hooks.Message; h != nil {
			h(w, ev.payload)
		}
	case frameFatal:
		p.fatal = string(ev.payload)
		s.opts.Logger.Error("worker cannot start", "worker", w.ID, "pid", w.PID, "err", p.fatal)
	}
	return nil
}

func (s *Supervisor) ready(p *proc) {
	if !p.readyAt.IsZero() {
		return
	}
	now := s.sys.now()
	p.readyAt, p.statusAt = now, now
	s.everReady = true
	sl := p.slot
	s.opts.Logger.Info("worker ready", "worker", sl.id, "pid", p.pid, "after", now.Sub(p.started).Round(time.Millisecond))
	if h := s.opts.Hooks.Ready; h != nil {
		h(Worker{ID: sl.id, PID: p.pid})
	}
	defer s.servingCheck()
	if s.stopping || p.stopReason != "" {
		s.stop(p, ReasonShutdown)
		return
	}
	if sl.next == p {
		old := sl.cur
		sl.next, sl.cur = nil, p
		if old != nil { // nil if it died while p was starting
			s.stop(old, p.why)
		}
		if p.why == ReasonReload {
			s.nextReload()
		}
	}
}

func (s *Supervisor) exited(p *proc, err error) error {
	if _, ok := s.procs[p]; !ok {
		return nil
	}
	delete(s.procs, p)
	p.control.Close()
	sl := p.slot
	wasReady := !p.readyAt.IsZero()
	reason := p.stopReason
	if reason == "" {
		reason = ReasonCrash
		if !wasReady {
			reason = ReasonStartup
		}
	}
	log := s.opts.Logger
	now := s.sys.now()
	attrs := []any{"worker", sl.id, "pid", p.pid, "reason", string(reason),
		"ran", now.Sub(p.started).Round(time.Millisecond), "handled", p.status.Handled}
	if err != nil {
		attrs = append(attrs, "status", exitStatus(err))
	}
	if p.stopReason == "" || p.stopReason == ReasonTimeout {
		log.Warn("worker exited", attrs...)
	} else {
		log.Info("worker exited", attrs...)
	}
	if h := s.opts.Hooks.Exit; h != nil {
		h(Worker{ID: sl.id, PID: p.pid}, reason, wasReady, err)
	}

	switch {
	case sl.next == p:
		// A replacement died before taking over: the old worker keeps serving.
		sl.next = nil
		s.recycleLater(sl.cur)
		if sl.cur == nil { // the worker it was to replace died meanwhile
			sl.respawnAt = now.Add(s.backoff(sl.crashes))
			sl.crashes++
		}
		switch {
		case p.why != ReasonReload || s.stopping:
		case p.stopReason == ReasonScale:
			s.nextReload() // its slot is gone: nothing to replace there
		default:
			log.Error("reload aborted: new worker failed to start; old workers keep serving",
				"worker", sl.id, "pid", p.pid, "err", p.fatalOr(err))
			s.endReload()
			s.reloaded(fmt.Errorf("%w: worker %d: %s", ErrReloadAborted, sl.id, p.fatalOr(err)))
		}
	case sl.cur == p:
		sl.cur = nil
		if s.stopping || p.stopReason == ReasonScale || sl.next != nil {
			break // nothing to start, or a replacement already starting takes over
		}
		if !s.everReady {
			return fmt.Errorf("%w: worker %d (pid %d): %s", ErrBoot, sl.id, p.pid, p.fatalOr(err))
		}
		delay := time.Duration(0)
		if reason == ReasonCrash || reason == ReasonStartup {
			if wasReady && now.Sub(p.readyAt) >= stableAfter {
				sl.crashes = 0
			}
			delay = s.backoff(sl.crashes)
			sl.crashes++
		}
		sl.respawnAt = now.Add(delay)
		if delay > 0 {
			log.Warn("worker crashing repeatedly: backing off", "worker", sl.id, "crashes", sl.crashes, "delay", delay)
		}
		s.respawnDue(now)
	}
	return nil
}

func (p *proc) fatalOr(err error) string {
	if p.fatal != "" {
		return p.fatal
	}
	if err == nil {
		return "exited before becoming ready"
	}
	return err.Error()
}

func (s *Supervisor) backoff(crashes int) time.Duration {
	if crashes == 0 {
		return 0
	}
	d := s.opts.BackoffMin << min(crashes-1, 30)
	if d <= 0 || d > s.opts.BackoffMax {
		d = s.opts.BackoffMax
	}
	return d
}

// stop asks p to finish its work and exit.
func (s *Supervisor) stop(p *proc, why Reason) {
	if p.stopReason != "" {
		return
	}
	p.stopReason, p.stopAt = why, s.sys.now()
	p.control.Close()
}

func (s *Supervisor) kill(p *proc) {
	_ = p.process.Signal(syscall.SIGKILL) // an error means it is gone already
}

func (s *Supervisor) killAll() {
	for p := range s.procs {
		if p.stopReason == "" {
			p.stopReason = ReasonShutdown
		}
		s.kill(p)
	}
}

// check runs the deadlines: respawns, start-up timeouts, hangs, stragglers.
func (s *Supervisor) check(now time.Time) error {
	log := s.opts.Logger
	s.alive(now)
	if !s.stopping {
		s.respawnDue(now)
	}
	s.checkUpgrade(now)
	for p := range s.procs {
		sl := p.slot
		switch {
		case p.stopReason != "":
			if !p.stopAt.IsZero() && now.Sub(p.stopAt) > s.opts.Grace+KillMargin {
				log.Warn("worker did not stop within the grace period: killing it", "worker", sl.id, "pid", p.pid,
					"reason", string(p.stopReason), "grace", s.opts.Grace, "kill_margin", KillMargin)
				p.stopAt = time.Time{} // kill once
				s.kill(p)
			}
		case p.readyAt.IsZero():
			if now.Sub(p.started) > s.opts.ReadyTimeout {
				log.Error("worker not ready in time: killing it", "worker", sl.id, "pid", p.pid, "timeout", s.opts.ReadyTimeout)
				if p.fatal == "" {
					p.fatal = fmt.Sprintf("not ready within %s", s.opts.ReadyTimeout)
				}
				p.stopReason = ReasonStartup
				s.kill(p)
			}
		default:
			busy := p.status.Busy
			if busy > 0 {
				busy += now.Sub(p.statusAt)
			}
			silent := now.Sub(p.statusAt)
			switch {
			case s.opts.HangTimeout > 0 && busy > s.opts.HangTimeout:
				log.Error("worker hung: a job ran past the timeout; killing it", "worker", sl.id, "pid", p.pid,
					"job", p.status.BusyWith, "busy", busy.Round(time.Millisecond), "timeout", s.opts.HangTimeout)
				p.stopReason, p.stopAt = ReasonTimeout, time.Time{}
				s.kill(p)
			case s.opts.ReportTimeout > 0 && silent > s.opts.ReportTimeout:
				log.Error("worker hung: no report within the timeout; killing it", "worker", sl.id, "pid", p.pid,
					"job", p.status.BusyWith, "silent", silent.Round(time.Millisecond), "timeout", s.opts.ReportTimeout)
				p.stopReason, p.stopAt = ReasonTimeout, time.Time{}
				s.kill(p)
			}
		}
	}
	return nil
}

func (s *Supervisor) respawnDue(now time.Time) {
	for _, sl := range s.slots {
		if sl.cur == nil && sl.next == nil && !now.Before(sl.respawnAt) {
			if err := s.spawn(sl, ""); err != nil {
				s.spawnFailed(sl, now, "respawn failed: backing off", err)
			}
		}
	}
}

// spawnFailed schedules another try for a slot whose worker could not be
// started, backing off as for a crash: a missing binary must not make the
// supervisor spin.
func (s *Supervisor) spawnFailed(sl *slot, now time.Time, msg string, err error) {
	sl.crashes++
	delay := s.backoff(sl.crashes)
	sl.respawnAt = now.Add(delay)
	s.opts.Logger.Error(msg, "worker", sl.id, "crashes", sl.crashes, "delay", delay, "err", err)
}

func (s *Supervisor) maybeRecycle(p *proc) {
	sl := p.slot
	if s.opts.MaxRequests == 0 || s.stopping || sl.cur != p || sl.next != nil || p.stopReason != "" ||
		p.readyAt.IsZero() || p.status.Handled < p.recycleAt || s.reloading {
		return
	}
	s.opts.Logger.Info("recycling worker", "worker", sl.id, "pid", p.pid, "handled", p.status.Handled)
	if err := s.spawn(sl, ReasonRecycle); err != nil {
		s.opts.Logger.Error("recycle failed: the worker keeps serving", "worker", sl.id, "err", err)
		s.recycleLater(p)
	}
}

// recycleLater moves p's recycle limit MaxRequests further, after a
// replacement failed, so that not every report retries at once.
func (s *Supervisor) recycleLater(p *proc) {
	if p == nil || p.recycleAt == 0 {
		return
	}
	p.recycleAt = p.status.Handled + min(s.opts.MaxRequests, math.MaxUint64-p.status.Handled)
}

// startReload starts replacing every slot's worker, one at a time. During a
// reload it schedules one more full reload after it instead: a slot already
// replaced may run an older binary than the one on disk now.
func (s *Supervisor) startReload() {
	if s.stopping {
		return
	}
	if s.reloading {
		s.opts.Logger.Info("reload already in progress: reloading again after it")
		s.reloadDue = true
		return
	}
	s.opts.Logger.Info("reloading workers", "workers", len(s.slots), "path", s.opts.Path)
	s.reloading = true
	s.reloadStarted()
	for _, sl := range s.slots {
		s.reload = append(s.reload, sl.id)
	}
	s.nextReload()
}

// endReload ends the current reload, done or aborted, and starts the one a
// SIGHUP during it asked for.
func (s *Supervisor) endReload() {
	s.reload, s.reloading = nil, false
	if s.reloadDue {
		s.reloadDue = false
		s.startReload()
	}
}

// nextReload replaces the next slot of the current reload.
func (s *Supervisor) nextReload() {
	for len(s.reload) > 0 {
		id := s.reload[0]
		s.reload = s.reload[1:]
		sl := s.slotByID(id)
		if sl == nil || sl.cur == nil {
			continue // gone, or respawning (which runs the new binary anyway)
		}
		if sl.next != nil {
			// A recycle is under way: turn it into this reload's step.
			sl.next.why = ReasonReload
			return
		}
		if err := s.spawn(sl, ReasonReload); err != nil {
			s.opts.Logger.Error("reload aborted: old workers keep serving", "worker", sl.id, "err", err)
			s.endReload()
			s.reloaded(fmt.Errorf("%w: %w", ErrReloadAborted, err))
		}
		return
	}
	s.opts.Logger.Info("reload done")
	s.endReload()
	s.reloaded(nil)
}

func (s *Supervisor) slotByID(id int) *slot {
	for _, sl := range s.slots {
		if sl.id == id {
			return sl
		}
	}
	return nil
}

func (s *Supervisor) scale(delta int) {
	if s.stopping {
		return
	}
	for ; delta > 0; delta-- {
		sl := &slot{id: len(s.slots) + 1}
		s.slots = append(s.slots, sl)
		s.opts.Logger.Info("adding worker", "worker", sl.id, "workers", len(s.slots))
		if err := s.spawn(sl, ""); err != nil {
			s.spawnFailed(sl, s.sys.now(), "scale up failed: backing off", err)
		}
	}
	for ; delta < 0 && len(s.slots) > 1; delta++ {
		sl := s.slots[len(s.slots)-1]
		s.slots = s.slots[:len(s.slots)-1]
		s.opts.Logger.Info("removing worker", "worker", sl.id, "workers", len(s.slots))
		for _, p := range []*proc{sl.cur, sl.next} {
			if p != nil {
				s.stop(p, ReasonScale)
			}
		}
	}
	if delta < 0 {
		s.opts.Logger.Warn("not removing the last worker")
	}
	s.scaled()
}

// ErrBoot wraps the error Run returns when no worker ever became ready.
var ErrBoot = errors.New("supervisor: no worker became ready")

// exitStatus says how a worker ended, naming a signal the way an operator
// reads it ("killed by SIGKILL", not Go's "signal: killed"), so a log shows
// at a glance which exits were kills and by what.
func exitStatus(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
			switch {
			case ws.Signaled():
				return "killed by " + unix.SignalName(ws.Signal())
			case ws.Exited():
				return "exit code " + strconv.Itoa(ws.ExitStatus())
			}
		}
	}
	return err.Error()
}
