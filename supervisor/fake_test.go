package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeSys stands in for the operating system and the clock: processes that
// the test makes ready, report and exit, a clock it advances, and signals it
// sends. It implements sys for one Supervisor.
type fakeSys struct {
	t           *testing.T
	ticks       chan time.Time
	tickerEnded chan struct{} // closed when Run stops its ticker, on return

	mu       sync.Mutex
	now      time.Time
	procs    []*fakeProc
	attempts []time.Time // when each start was tried, failed ones included
	startErr error       // when set, starts fail with it
	stubborn bool        // processes started now ignore a stop
	sigs     chan<- os.Signal
	nextPID  int
}

func newFakeSys(t *testing.T) *fakeSys {
	return &fakeSys{
		t:           t,
		ticks:       make(chan time.Time),
		tickerEnded: make(chan struct{}),
		now:         time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		nextPID:     1000,
	}
}

func (f *fakeSys) sys() sys {
	return sys{
		start:       f.start,
		signalGroup: f.signalGroup,
		now: func() time.Time {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.now
		},
		ticker: func(time.Duration) (<-chan time.Time, func()) {
			return f.ticks, func() { close(f.tickerEnded) }
		},
		notify: func(c chan<- os.Signal, _ ...os.Signal) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.sigs = c
		},
		stopNotify: func(chan<- os.Signal) {},
	}
}

func (f *fakeSys) start(spec procSpec) (process, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts = append(f.attempts, f.now)
	if f.startErr != nil {
		return nil, f.startErr
	}
	// Like a real child, keep copies of the pipe ends: the supervisor
	// closes its own after the start. A new supervisor (an upgrade) has
	// only the handshake pipe, which the fake's report stands for.
	report, err := dupFile(spec.files[0])
	if err != nil {
		return nil, err
	}
	upgrade := spec.setpgid
	var control *os.File
	if !upgrade {
		if control, err = dupFile(spec.files[1]); err != nil {
			report.Close()
			return nil, err
		}
	}
	f.nextPID++
	p := &fakeProc{
		pid:      f.nextPID,
		spec:     spec,
		report:   report,
		control:  control,
		stopped:  make(chan struct{}),
		exited:   make(chan struct{}),
		stubborn: f.stubborn,
	}
	if !upgrade {
		go p.watchControl()
	}
	f.procs = append(f.procs, p)
	return p, nil
}

// signalGroup finds the group's leader (a new supervisor is started in a
// group of its own): gone is ESRCH, SIGTERM stops it unless it is stubborn,
// SIGKILL kills it.
func (f *fakeSys) signalGroup(pgid int, sig syscall.Signal) error {
	f.mu.Lock()
	var p *fakeProc
	for _, q := range f.procs {
		if q.pid == pgid && q.spec.setpgid {
			p = q
		}
	}
	f.mu.Unlock()
	if p == nil || p.isExited() {
		return syscall.ESRCH
	}
	if sig == 0 {
		return nil
	}
	p.mu.Lock()
	p.groupSignals = append(p.groupSignals, sig)
	p.mu.Unlock()
	switch {
	case sig == syscall.SIGKILL:
		p.exit(errKilled)
	case sig == syscall.SIGTERM && !p.stubborn:
		p.exit(nil)
	}
	return nil
}

func dupFile(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var fd int
	var derr error
	if err := rc.Control(func(raw uintptr) { fd, derr = syscall.Dup(int(raw)) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, derr
	}
	syscall.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// proc returns the i-th process started (from 0), failing the test if there
// is none within the deadline.
func (f *fakeSys) proc(i int) *fakeProc {
	f.t.Helper()
	var p *fakeProc
	eventually(f.t, fmt.Sprintf("process %d started", i), func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		if i < len(f.procs) {
			p = f.procs[i]
		}
		return p != nil
	})
	return p
}

func (f *fakeSys) started() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.procs)
}

func (f *fakeSys) setStartErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.startErr = err
}

func (f *fakeSys) setStubborn(b bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stubborn = b
}

// advance moves the clock and lets the supervisor run its deadline checks:
// the second tick is taken only after the first check has finished. It
// returns early if Run has returned.
func (f *fakeSys) advance(d time.Duration) {
	f.t.Helper()
	f.mu.Lock()
	f.now = f.now.Add(d)
	now := f.now
	f.mu.Unlock()
	for range 2 {
		select {
		case f.ticks <- now:
		case <-f.tickerEnded:
			return
		case <-time.After(5 * time.Second):
			f.t.Fatal("supervisor loop not taking ticks")
		}
	}
}

// signal delivers sig to the supervisor's signal channel.
func (f *fakeSys) signal(sig os.Signal) {
	f.t.Helper()
	var c chan<- os.Signal
	eventually(f.t, "signal handler registered", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		c = f.sigs
		return c != nil
	})
	c <- sig
	// Once the loop has taken the signal, the next tick is taken only after
	// the signal's handling: the test then sees its effects.
	eventually(f.t, "signal taken", func() bool { return len(c) == 0 })
	f.advance(0)
}

// fakeProc is a worker process the test drives.
type fakeProc struct {
	pid      int
	spec     procSpec
	stubborn bool

	mu      sync.Mutex // serialises writes to report with its close
	report  *os.File   // our copy of the report pipe's write end; nil once closed
	control *os.File
	stopped chan struct{} // closed when the supervisor closed the control pipe
	exited  chan struct{}
	exitErr error
	signals []os.Signal
	// groupSignals were sent to its process group.
	groupSignals []syscall.Signal
}

var errKilled = errors.New("signal: killed")

func (p *fakeProc) Pid() int { return p.pid }

func (p *fakeProc) Signal(sig os.Signal) error {
	p.mu.Lock()
	p.signals = append(p.signals, sig)
	p.mu.Unlock()
	if sig == syscall.SIGKILL {
		p.exit(errKilled)
	}
	return nil
}

func (p *fakeProc) Wait() error {
	<-p.exited
	return p.exitErr
}

func (p *fakeProc) watchControl() {
	if _, err := io.Copy(io.Discard, p.control); err == nil { // end-of-file, not our own close
		close(p.stopped)
		if !p.stubborn {
			p.exit(nil)
		}
	}
}

func (p *fakeProc) send(typ byte, payload []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.report != nil {
		_ = writeFrame(p.report, typ, payload)
	}
}

func (p *fakeProc) ready()             { p.send(frameReady, nil) }
func (p *fakeProc) status(st Status)   { p.send(frameStatus, st.encode()) }
func (p *fakeProc) fatal(text string)  { p.send(frameFatal, []byte(text)) }
func (p *fakeProc) exitWith(err error) { p.exit(err) }
func (p *fakeProc) isExited() bool     { return isClosed(p.exited) }
func (p *fakeProc) stopAsked() bool    { return isClosed(p.stopped) }
func (p *fakeProc) killed() bool       { return p.got(syscall.SIGKILL) }
func (p *fakeProc) String() string     { return fmt.Sprintf("pid %d", p.pid) }
func (p *fakeProc) env(key string) string {
	for _, kv := range p.spec.env {
		if len(kv) > len(key) && kv[:len(key)] == key && kv[len(key)] == '=' {
			return kv[len(key)+1:]
		}
	}
	return ""
}

func (p *fakeProc) got(sig os.Signal) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.signals {
		if s == sig {
			return true
		}
	}
	return false
}

// exit ends the process: its pipes close (as the kernel closes a dead
// process's descriptors) and Wait returns err.
func (p *fakeProc) exit(err error) {
	p.exitKeepingPipe(err)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.report != nil {
		p.report.Close()
		p.report = nil
	}
}

// exitKeepingPipe ends the process but leaves the report pipe open, as a
// process it started and that inherited the pipe would.
func (p *fakeProc) exitKeepingPipe(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if isClosed(p.exited) {
		return
	}
	p.exitErr = err
	close(p.exited)
	if p.control != nil {
		p.control.Close()
	}
}

// closePipe closes what exitKeepingPipe left open.
func (p *fakeProc) closePipe() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.report != nil {
		p.report.Close()
		p.report = nil
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// eventually polls cond until it holds, failing the test after a deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5s: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func (p *fakeProc) gotGroup(sig syscall.Signal) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.groupSignals {
		if s == sig {
			return true
		}
	}
	return false
}

// record collects hook calls for assertions; hooks run on the supervisor's
// goroutine, the test reads from its own.
type record struct {
	mu     sync.Mutex
	spawns []Worker
	readys []Worker
	exits  []exitCall
	status []Status
}

type exitCall struct {
	w        Worker
	reason   Reason
	wasReady bool
	err      error
}

func (r *record) hooks() Hooks {
	return Hooks{
		Spawn: func(w Worker) { r.mu.Lock(); r.spawns = append(r.spawns, w); r.mu.Unlock() },
		Ready: func(w Worker) { r.mu.Lock(); r.readys = append(r.readys, w); r.mu.Unlock() },
		Status: func(_ Worker, st Status) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.status = append(r.status, st)
		},
		Exit: func(w Worker, reason Reason, wasReady bool, err error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.exits = append(r.exits, exitCall{w, reason, wasReady, err})
		},
	}
}

// exit returns the Exit hook call for pid, if any.
func (r *record) exit(pid int) (exitCall, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.exits {
		if e.w.PID == pid {
			return e, true
		}
	}
	return exitCall{}, false
}

func (r *record) statusCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.status)
}

func (r *record) readyCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.readys)
}

// harness is a Supervisor on a fakeSys, running in the background.
type harness struct {
	*fakeSys
	s      *Supervisor
	rec    *record
	cancel context.CancelFunc
	done   chan error
}

// startHarness runs a supervisor with opts (Addr and Hooks filled in when
// empty) on fake processes and a fake clock.
func startHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	rec := &record{}
	files := opts.Hooks.Files
	opts.Hooks = rec.hooks()
	opts.Hooks.Files = files
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	opts.Path = "/nonexistent/worker"
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeSys(t)
	s.sys = f.sys()
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{fakeSys: f, s: s, rec: rec, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		f.mu.Lock()
		procs := append([]*fakeProc(nil), f.procs...)
		f.mu.Unlock()
		for _, p := range procs {
			p.exit(nil)
		}
		select {
		case <-h.done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cleanup")
		}
	})
	return h
}

// boot starts n workers and makes them ready.
func (h *harness) boot(n int) []*fakeProc {
	h.t.Helper()
	var ps []*fakeProc
	for i := range n {
		p := h.proc(i)
		p.ready()
		ps = append(ps, p)
	}
	eventually(h.t, "workers ready", func() bool { return h.rec.readyCount() >= n })
	return ps
}

// report sends st from p and waits until the supervisor has handled it.
func (h *harness) report(p *fakeProc, st Status) {
	h.t.Helper()
	n := h.rec.statusCount()
	p.status(st)
	eventually(h.t, "status handled", func() bool { return h.rec.statusCount() > n })
	h.advance(0) // the hook runs mid-handling; a tick is taken after it
}

// waitExit waits for the Exit hook of p.
func (h *harness) waitExit(p *fakeProc) exitCall {
	h.t.Helper()
	var e exitCall
	eventually(h.t, fmt.Sprintf("Exit hook for %s", p), func() bool {
		var ok bool
		e, ok = h.rec.exit(p.pid)
		return ok
	})
	return e
}

// waitRun waits for Run to return.
func (h *harness) waitRun() error {
	h.t.Helper()
	select {
	case err := <-h.done:
		h.done <- err // for Cleanup
		return err
	case <-time.After(5 * time.Second):
		h.t.Fatal("Run did not return")
		return nil
	}
}

// testWriter sends the supervisor's log to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(b[:len(b)-1]))
	return len(b), nil
}
