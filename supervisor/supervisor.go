package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Supervisor runs and watches a pool of workers. Create it with New and start
// it with Run.
type Supervisor struct {
	opts Options

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
	stopping  bool
	bound     chan string
	serving   bool // PoolHooks.Serving was called
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
	cmd        *exec.Cmd
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
	reload bool
	scale  int
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
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	return &Supervisor{
		opts:   opts,
		cmds:   make(chan command, 8),
		procs:  make(map[*proc]struct{}),
		events: make(chan event, 64),
		bound:  make(chan string, 1),
	}, nil
}

// Reload replaces every worker, one at a time, as SIGHUP does.
func (s *Supervisor) Reload() { s.cmds <- command{reload: true} }

// Scale adds (delta > 0) or removes (delta < 0) worker slots, as SIGTTIN and
// SIGTTOU do. The pool never shrinks below one worker.
func (s *Supervisor) Scale(delta int) { s.cmds <- command{scale: delta} }

// Addr returns a channel that yields the address the pool serves once it is
// bound (useful with port 0).
func (s *Supervisor) Addr() <-chan string { return s.bound }

// Run binds the socket, starts the pool and supervises it until ctx is done
// or a stop signal arrives, then stops the workers. It returns nil after a
// normal stop, or an error if the pool could not start.
func (s *Supervisor) Run(ctx context.Context) error {
	if err := s.bind(); err != nil {
		return err
	}
	defer func() {
		if s.listener != nil {
			s.listener.Close()
		}
	}()
	log := s.opts.Logger
	log.Info("supervisor started", "pid", os.Getpid(), "addr", s.addr, "workers", s.opts.Workers,
		"reuseport", s.opts.ReusePort, "path", s.opts.Path)

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGTTIN, syscall.SIGTTOU)
	defer signal.Stop(sigs)

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

	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	ctxDone := ctx.Done()
	var bootErr error
	for len(s.procs) > 0 || !s.stopping {
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
			if c.scale != 0 {
				s.scale(c.scale)
			}
		case ev := <-s.events:
			if err := s.handle(ev); err != nil && bootErr == nil {
				bootErr = err
				s.killAll()
				s.stopping = true
			}
		case now := <-ticker.C:
			if err := s.check(now); err != nil && bootErr == nil {
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
		if s.stopping {
			log.Warn("second stop signal: killing workers now", "signal", sig.String(), "workers", len(s.procs))
			s.killAll()
			return
		}
		s.shutdown(sig.String())
	case syscall.SIGHUP:
		s.startReload()
	case syscall.SIGTTIN:
		s.scale(1)
	case syscall.SIGTTOU:
		s.scale(-1)
	}
}

func (s *Supervisor) shutdown(why string) {
	if s.stopping {
		return
	}
	s.stopping = true
	s.reload = nil
	s.stoppingHook()
	s.opts.Logger.Info("stopping workers", "why", why, "workers", len(s.procs), "grace", s.opts.StopTimeout)
	for p := range s.procs {
		s.stop(p, ReasonShutdown)
	}
}

// spawn starts a worker for sl. With a reason it is a replacement (sl.next)
// that takes over the slot once ready; otherwise it becomes the slot's worker.
func (s *Supervisor) spawn(sl *slot, why Reason) error {
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
	recycleAt := s.opts.MaxJobs
	if recycleAt > 0 && s.opts.MaxJobsJitter > 0 {
		recycleAt += rand.Uint64N(s.opts.MaxJobsJitter + 1)
	}
	cmd := exec.Command(s.opts.Path, s.opts.Args...)
	cmd.Env = append(append([]string(nil), s.opts.Env...), envWorkerID+"="+strconv.Itoa(sl.id))
	if recycleAt > 0 {
		cmd.Env = append(cmd.Env, envMaxJobs+"="+strconv.FormatUint(recycleAt, 10))
	}
	if s.opts.ReusePort {
		cmd.Env = append(cmd.Env, envReusePort+"="+s.addr)
	}
	cmd.Stdout, cmd.Stderr = s.opts.Stdout, s.opts.Stderr
	cmd.ExtraFiles = []*os.File{reportW, controlR}
	if s.listener != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, s.listener)
	}
	err = cmd.Start()
	reportW.Close()
	controlR.Close()
	if err != nil {
		reportR.Close()
		controlW.Close()
		return fmt.Errorf("supervisor: start worker %d: %w", sl.id, err)
	}
	p := &proc{
		slot:      sl,
		pid:       cmd.Process.Pid,
		cmd:       cmd,
		control:   controlW,
		started:   time.Now(),
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
func (s *Supervisor) watch(p *proc, report *os.File) {
	defer s.wg.Done()
	r := bufio.NewReader(report)
	for {
		typ, payload, err := readFrame(r)
		if err != nil {
			break
		}
		s.events <- event{p: p, typ: typ, payload: payload}
	}
	report.Close()
	err := p.cmd.Wait()
	s.events <- event{p: p, err: err}
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
		p.status, p.statusAt = st, time.Now()
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
	p.readyAt, p.statusAt = time.Now(), time.Now()
	s.everReady = true
	sl := p.slot
	s.opts.Logger.Info("worker ready", "worker", sl.id, "pid", p.pid, "after", time.Since(p.started).Round(time.Millisecond))
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
	attrs := []any{"worker", sl.id, "pid", p.pid, "reason", string(reason),
		"ran", time.Since(p.started).Round(time.Millisecond), "handled", p.status.Handled}
	if err != nil {
		attrs = append(attrs, "status", err.Error())
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
		if cur := sl.cur; cur != nil && cur.recycleAt > 0 {
			cur.recycleAt = cur.status.Handled + s.opts.MaxJobs // try again later
		}
		if sl.cur == nil { // the worker it was to replace died meanwhile
			sl.respawnAt = time.Now().Add(s.backoff(sl.crashes))
			sl.crashes++
		}
		if p.why == ReasonReload && !s.stopping {
			log.Error("reload aborted: new worker failed to start; old workers keep serving",
				"worker", sl.id, "pid", p.pid, "err", p.fatalOr(err))
			s.reload = nil
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
			if wasReady && time.Since(p.readyAt) >= stableAfter {
				sl.crashes = 0
			}
			delay = s.backoff(sl.crashes)
			sl.crashes++
		}
		sl.respawnAt = time.Now().Add(delay)
		if delay > 0 {
			log.Warn("worker crashing repeatedly: backing off", "worker", sl.id, "crashes", sl.crashes, "delay", delay)
		}
		s.respawnDue(time.Now())
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
	p.stopReason, p.stopAt = why, time.Now()
	p.control.Close()
}

func (s *Supervisor) kill(p *proc) {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
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
	for p := range s.procs {
		sl := p.slot
		switch {
		case p.stopReason != "":
			if now.Sub(p.stopAt) > s.opts.StopTimeout && !p.stopAt.IsZero() {
				log.Warn("worker did not stop within the grace period: killing it", "worker", sl.id, "pid", p.pid,
					"reason", string(p.stopReason), "grace", s.opts.StopTimeout)
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
				s.opts.Logger.Error("respawn failed", "worker", sl.id, "err", err)
				sl.respawnAt = now.Add(s.backoff(sl.crashes + 1))
			}
		}
	}
}

func (s *Supervisor) maybeRecycle(p *proc) {
	sl := p.slot
	if s.opts.MaxJobs == 0 || s.stopping || sl.cur != p || sl.next != nil || p.stopReason != "" ||
		p.readyAt.IsZero() || p.status.Handled < p.recycleAt || len(s.reload) > 0 {
		return
	}
	s.opts.Logger.Info("recycling worker", "worker", sl.id, "pid", p.pid, "handled", p.status.Handled)
	if err := s.spawn(sl, ReasonRecycle); err != nil {
		s.opts.Logger.Error("recycle failed", "worker", sl.id, "err", err)
	}
}

func (s *Supervisor) startReload() {
	if s.stopping {
		return
	}
	if len(s.reload) > 0 {
		s.opts.Logger.Warn("reload already in progress")
		return
	}
	s.opts.Logger.Info("reloading workers", "workers", len(s.slots), "path", s.opts.Path)
	s.reloading()
	for _, sl := range s.slots {
		s.reload = append(s.reload, sl.id)
	}
	s.nextReload()
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
			s.opts.Logger.Error("reload aborted", "worker", sl.id, "err", err)
			s.reload = nil
			s.reloaded(fmt.Errorf("%w: %w", ErrReloadAborted, err))
		}
		return
	}
	s.opts.Logger.Info("reload done")
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
			s.opts.Logger.Error("scale up failed", "worker", sl.id, "err", err)
			sl.respawnAt = time.Now().Add(s.backoff(1))
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
