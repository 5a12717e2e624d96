package supervisor

import (
	"errors"
	"math"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

var errCrash = errors.New("exit status 1")

// TestRespawnBackoff: a worker that crashes soon after starting is respawned
// after a delay that doubles with each crash in a row up to BackoffMax; one
// that had served for stableAfter starts the count again.
func TestRespawnBackoff(t *testing.T) {
	h := startHarness(t, Options{Workers: 1, BackoffMin: 100 * time.Millisecond, BackoffMax: 300 * time.Millisecond})
	steps := []struct {
		ran       time.Duration // how long the worker served before crashing
		wantDelay time.Duration // until its replacement starts
	}{
		{ran: time.Second, wantDelay: 0}, // the first crash: at once
		{ran: time.Second, wantDelay: 100 * time.Millisecond},
		{ran: time.Second, wantDelay: 200 * time.Millisecond},
		{ran: time.Second, wantDelay: 300 * time.Millisecond}, // capped
		{ran: time.Second, wantDelay: 300 * time.Millisecond},
		{ran: stableAfter, wantDelay: 0}, // served long enough: not a crash loop
		{ran: time.Second, wantDelay: 100 * time.Millisecond},
	}
	for i, st := range steps {
		p := h.proc(i)
		p.ready()
		eventually(t, "ready", func() bool { return h.rec.readyCount() > i })
		h.advance(st.ran)
		p.exitWith(errCrash)
		if e := h.waitExit(p); e.reason != ReasonCrash || !e.wasReady || e.err != errCrash {
			t.Fatalf("step %d: Exit(%+v), want a crash of a ready worker", i, e)
		}
		if st.wantDelay > 0 {
			h.advance(st.wantDelay - time.Millisecond)
			if n := h.started(); n != i+1 {
				t.Fatalf("step %d: respawned before %s", i, st.wantDelay)
			}
			h.advance(time.Millisecond)
		}
		h.proc(i + 1)
	}
}

// TestFailedRespawnBacksOff: when the worker cannot even be started (the
// binary was deleted), the retries back off like crashes instead of
// repeating every tick.
func TestFailedRespawnBacksOff(t *testing.T) {
	h := startHarness(t, Options{Workers: 1, BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second})
	p := h.boot(1)[0]
	h.setStartErr(syscall.ENOENT)
	p.exitWith(errCrash)
	h.waitExit(p)
	for range 100 { // 5s
		h.advance(50 * time.Millisecond)
	}
	h.mu.Lock()
	attempts := append([]time.Time(nil), h.attempts[1:]...)
	h.mu.Unlock()
	// At once, then 200ms, 400ms, 800ms and 1s apart: 7 tries in 5s.
	if len(attempts) > 8 {
		t.Errorf("%d failed starts in 5s, want at most 8 (backing off to 1s)", len(attempts))
	}
	for i := 2; i < len(attempts); i++ {
		prev, gap := attempts[i-1].Sub(attempts[i-2]), attempts[i].Sub(attempts[i-1])
		if gap < prev && gap < time.Second {
			t.Errorf("retry %d came %s after the one before, which came after %s: not backing off", i, gap, prev)
		}
	}
	h.setStartErr(nil)
	h.advance(time.Second)
	h.proc(1).ready()
	eventually(t, "the slot serves again", func() bool { return h.rec.readyCount() == 2 })
}

// TestReloadOrder: SIGHUP replaces one slot at a time, each new worker ready
// before the old one is told to stop.
func TestReloadOrder(t *testing.T) {
	h := startHarness(t, Options{Workers: 2})
	old := h.boot(2)
	h.signal(syscall.SIGHUP)
	for i, o := range old {
		n := h.proc(2 + i)
		if got, want := n.env(envWorkerID), strconv.Itoa(i+1); got != want {
			t.Fatalf("replacement %d serves slot %s, want %s", i, got, want)
		}
		if h.started() != 3+i {
			t.Fatalf("%d processes started: replacing two slots at once", h.started())
		}
		if o.stopAsked() {
			t.Fatalf("slot %d: old worker told to stop before its replacement is ready", i+1)
		}
		n.ready()
		if e := h.waitExit(o); e.reason != ReasonReload {
			t.Fatalf("slot %d: old worker exited for %q, want reload", i+1, e.reason)
		}
	}
	h.advance(tick)
	if n := h.started(); n != 4 {
		t.Errorf("%d processes started, want 4 (2 + one per slot)", n)
	}
}

// TestReloadDuringReload: a SIGHUP while a reload is under way runs one more
// full reload after it, so every worker ends on the binary of the last HUP.
func TestReloadDuringReload(t *testing.T) {
	h := startHarness(t, Options{Workers: 2})
	h.boot(2)
	h.signal(syscall.SIGHUP)
	h.proc(2)
	h.signal(syscall.SIGHUP) // the binary changed again: slot 1's new worker may be stale
	for i := 2; i < 6; i++ {
		h.proc(i).ready()
	}
	eventually(t, "second reload done", func() bool { return h.rec.readyCount() == 6 })
	h.advance(tick)
	if n := h.started(); n != 6 {
		t.Errorf("%d processes started, want 6 (2 + two reloads of 2 slots)", n)
	}
	for i, slot := range []string{"1", "2", "1", "2"} {
		if got := h.proc(2 + i).env(envWorkerID); got != slot {
			t.Errorf("reload start %d is for slot %s, want %s", i, got, slot)
		}
	}
}

// TestHangKill: the supervisor kills a worker whose oldest request has run
// past HangTimeout, or that has not reported for ReportTimeout, and replaces
// it; zero timeouts never kill.
func TestHangKill(t *testing.T) {
	for name, tc := range map[string]struct {
		opts   Options
		status *Status       // reported right after ready
		before time.Duration // the clock at which it is not yet killed
		kill   bool          // killed 1ms later
	}{
		"oldest request past hang timeout": {
			opts:   Options{HangTimeout: 5 * time.Second},
			status: &Status{Handled: 3, Busy: time.Second, BusyWith: "/slow"},
			before: 4 * time.Second, kill: true,
		},
		"idle worker not hung": {
			opts:   Options{HangTimeout: 5 * time.Second},
			status: &Status{Handled: 3},
			before: time.Hour,
		},
		"silent past report timeout": {
			opts:   Options{ReportTimeout: 3 * time.Second},
			before: 3 * time.Second, kill: true,
		},
		"zero timeouts never kill": {
			status: &Status{Busy: time.Hour},
			before: 24 * time.Hour,
		},
	} {
		t.Run(name, func(t *testing.T) {
			tc.opts.Workers = 1
			h := startHarness(t, tc.opts)
			p := h.boot(1)[0]
			if tc.status != nil {
				h.report(p, *tc.status)
			}
			h.advance(tc.before)
			if p.killed() {
				t.Fatalf("killed at %s", tc.before)
			}
			h.advance(time.Millisecond)
			if !tc.kill {
				if p.killed() {
					t.Fatal("killed")
				}
				return
			}
			if e := h.waitExit(p); e.reason != ReasonTimeout || !p.killed() {
				t.Fatalf("Exit reason %q, killed %v; want timeout, killed", e.reason, p.killed())
			}
			h.proc(1) // replaced at once
		})
	}
}

// TestRecycle: after MaxRequests (plus its jitter) a worker is replaced, its
// replacement ready before it is told to stop.
func TestRecycle(t *testing.T) {
	for name, tc := range map[string]struct {
		max, jitter uint64
	}{
		"no jitter":   {max: 100},
		"with jitter": {max: 100, jitter: 10},
	} {
		t.Run(name, func(t *testing.T) {
			h := startHarness(t, Options{Workers: 1, MaxRequests: tc.max, MaxRequestsJitter: tc.jitter})
			p := h.boot(1)[0]
			limit, err := strconv.ParseUint(p.env(envMaxRequests), 10, 64)
			if err != nil || limit < tc.max || limit > tc.max+tc.jitter {
				t.Fatalf("%s=%q, want %d..%d", envMaxRequests, p.env(envMaxRequests), tc.max, tc.max+tc.jitter)
			}
			h.report(p, Status{Handled: limit - 1})
			if n := h.started(); n != 1 {
				t.Fatalf("recycled below the limit (%d processes)", n)
			}
			h.report(p, Status{Handled: limit})
			n := h.proc(1)
			if p.stopAsked() {
				t.Fatal("old worker told to stop before its replacement is ready")
			}
			n.ready()
			if e := h.waitExit(p); e.reason != ReasonRecycle {
				t.Fatalf("Exit reason %q, want recycle", e.reason)
			}
		})
	}
}

// TestScale: SIGTTIN adds a slot, SIGTTOU removes the last one, never the
// only one.
func TestScale(t *testing.T) {
	h := startHarness(t, Options{Workers: 1})
	first := h.boot(1)[0]
	h.signal(syscall.SIGTTIN)
	added := h.proc(1)
	if got := added.env(envWorkerID); got != "2" {
		t.Fatalf("added worker serves slot %s, want 2", got)
	}
	added.ready()
	h.signal(syscall.SIGTTOU)
	if e := h.waitExit(added); e.reason != ReasonScale {
		t.Fatalf("removed worker exited for %q, want scale", e.reason)
	}
	h.signal(syscall.SIGTTOU)
	h.advance(time.Minute)
	if first.stopAsked() || h.started() != 2 {
		t.Errorf("last worker stopped (%v) or slot respawned (%d started)", first.stopAsked(), h.started())
	}
}

// TestStopGrace: a stop asks every worker to finish; one still running
// Grace plus KillMargin later is killed, and Run returns nil.
func TestStopGrace(t *testing.T) {
	h := startHarness(t, Options{Workers: 2, Grace: 10 * time.Second})
	h.setStubborn(true)
	ps := h.boot(2)
	h.cancel()
	for _, p := range ps {
		eventually(t, "stop asked", p.stopAsked)
	}
	h.advance(10*time.Second + KillMargin)
	for _, p := range ps {
		if p.killed() {
			t.Fatal("killed within Grace + KillMargin")
		}
	}
	h.advance(time.Millisecond)
	if err := h.waitRun(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	for _, p := range ps {
		if e := h.waitExit(p); !p.killed() || e.reason != ReasonShutdown {
			t.Errorf("%s: killed %v, reason %q; want killed, shutdown", p, p.killed(), e.reason)
		}
	}
}

// TestSecondStopSignal: a second stop signal kills the workers at once only
// when it comes signalMerge or more after the first; closer ones (Ctrl-C to
// the process group, then a parent's SIGTERM) are the same stop.
func TestSecondStopSignal(t *testing.T) {
	for name, tc := range map[string]struct {
		gap  time.Duration
		kill bool
	}{
		"at once":             {gap: 0},
		"just under a second": {gap: signalMerge - time.Millisecond},
		"a second later":      {gap: signalMerge, kill: true},
	} {
		t.Run(name, func(t *testing.T) {
			h := startHarness(t, Options{Workers: 1, Grace: time.Minute})
			h.setStubborn(true)
			p := h.boot(1)[0]
			h.signal(syscall.SIGINT)
			eventually(t, "stop asked", p.stopAsked)
			h.advance(tc.gap)
			h.signal(syscall.SIGTERM)
			if !tc.kill {
				if p.killed() {
					t.Fatal("a signal within signalMerge of the first killed the workers")
				}
				return
			}
			eventually(t, "killed", p.killed)
			if err := h.waitRun(); err != nil {
				t.Fatalf("Run = %v", err)
			}
		})
	}
}

// TestListenerClosedAtStop: once a stop begins, the supervisor's copy of the
// socket is closed, so a new client is refused rather than queued for no one.
func TestListenerClosedAtStop(t *testing.T) {
	h := startHarness(t, Options{Workers: 1})
	h.setStubborn(true)
	p := h.boot(1)[0]
	addr := <-h.s.Addr()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("before the stop: %v", err)
	}
	c.Close()
	h.cancel()
	eventually(t, "stop asked", p.stopAsked)
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("a connection was accepted after the stop began")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after the stop: %v, want connection refused", err)
	}
}

// TestExitSeenFromProcess: a worker whose report pipe is still held open (by
// a process it started) is seen to exit when it exits, and what it reported
// before is delivered first.
func TestExitSeenFromProcess(t *testing.T) {
	h := startHarness(t, Options{Workers: 1})
	p := h.boot(1)[0]
	p.status(Status{Handled: 7})
	p.exitKeepingPipe(errCrash)
	t.Cleanup(p.closePipe)
	if e := h.waitExit(p); e.reason != ReasonCrash {
		t.Fatalf("Exit reason %q, want crash", e.reason)
	}
	h.rec.mu.Lock()
	st := h.rec.status
	h.rec.mu.Unlock()
	if len(st) != 1 || st[0].Handled != 7 {
		t.Errorf("statuses before the exit: %+v, want the one with Handled 7", st)
	}
	h.proc(1) // respawned
}

// TestFilesHook: the files from Hooks.Files follow the supervisor's own
// descriptors and their count is in the environment; an error fails the
// start, which backs off like a crash.
func TestFilesHook(t *testing.T) {
	seg, err := os.CreateTemp(t.TempDir(), "segment")
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	var mu sync.Mutex
	fail := false
	calls := 0
	h := startHarness(t, Options{Workers: 1, BackoffMin: 100 * time.Millisecond, Hooks: Hooks{
		Files: func(w Worker) ([]*os.File, error) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if w.ID != 1 || w.PID != 0 {
				t.Errorf("Files(%+v), want slot 1, no pid", w)
			}
			if fail {
				return nil, errors.New("no shared memory")
			}
			return []*os.File{seg}, nil
		},
	}})
	p := h.boot(1)[0]
	if len(p.spec.files) != 4 || p.spec.files[3] != seg || p.env(envFiles) != "1" {
		t.Fatalf("files %v, %s=%q; want report, control, listener, segment and 1",
			p.spec.files, envFiles, p.env(envFiles))
	}
	mu.Lock()
	fail = true
	mu.Unlock()
	p.exitWith(errCrash)
	h.waitExit(p)
	h.advance(150 * time.Millisecond) // at once, then 200ms later
	mu.Lock()
	n := calls
	fail = false
	mu.Unlock()
	if n != 2 {
		t.Fatalf("Files called %d times, want 2 (boot, failed respawn)", n)
	}
	h.advance(50 * time.Millisecond)
	h.proc(1)
}

func TestValidateLimits(t *testing.T) {
	for name, tc := range map[string]struct {
		o  Options
		ok bool
	}{
		"max jitter":                 {Options{Addr: ":0", MaxRequests: 1, MaxRequestsJitter: math.MaxUint64}, false},
		"max jitter without max":     {Options{Addr: ":0", MaxRequestsJitter: math.MaxUint64}, false},
		"sum overflows":              {Options{Addr: ":0", MaxRequests: math.MaxUint64 / 2, MaxRequestsJitter: math.MaxUint64/2 + 2}, false},
		"sum fits":                   {Options{Addr: ":0", MaxRequests: math.MaxUint64 / 2, MaxRequestsJitter: math.MaxUint64 / 2}, true},
		"negative hang timeout":      {Options{Addr: ":0", HangTimeout: -1}, false},
		"negative report timeout":    {Options{Addr: ":0", ReportTimeout: -1}, false},
		"negative ready timeout":     {Options{Addr: ":0", ReadyTimeout: -1}, false},
		"zero is never or default":   {Options{Addr: ":0"}, true},
		"big but valid max requests": {Options{Addr: ":0", MaxRequests: math.MaxUint64}, true},
		"negative backoff":           {Options{Addr: ":0", BackoffMax: -time.Second}, false},
	} {
		if err := tc.o.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", name, err, tc.ok)
		}
	}
}
