package supervisor

import (
	"bufio"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// upgradeRecord collects the pool hooks an upgrade calls.
type upgradeRecord struct {
	mu       sync.Mutex
	upgraded []upgradedCall
	stopping int
}

type upgradedCall struct {
	pid int
	err error
}

func (r *upgradeRecord) hooks() PoolHooks {
	return PoolHooks{
		Upgraded: func(pid int, err error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.upgraded = append(r.upgraded, upgradedCall{pid, err})
		},
		Stopping: func() { r.mu.Lock(); r.stopping++; r.mu.Unlock() },
	}
}

func (r *upgradeRecord) calls() []upgradedCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]upgradedCall(nil), r.upgraded...)
}

func (r *upgradeRecord) stops() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopping
}

// waitUpgraded waits for the n-th call of PoolHooks.Upgraded.
func (r *upgradeRecord) waitUpgraded(t *testing.T, n int) upgradedCall {
	t.Helper()
	eventually(t, "Upgraded hook", func() bool { return len(r.calls()) >= n })
	return r.calls()[n-1]
}

func startUpgradeHarness(t *testing.T, opts Options) (*harness, *upgradeRecord, []*fakeProc) {
	t.Helper()
	rec := &upgradeRecord{}
	opts.Pool = rec.hooks()
	h := startHarness(t, opts)
	return h, rec, h.boot(opts.Workers)
}

// TestUpgradeHandsOver: SIGUSR2 starts the binary as a new supervisor in its
// own process group, with the handshake pipe, the shared socket and
// UpgradeEnv; the old workers serve until it says it is ready, then drain,
// and Run returns nil without PoolHooks.Stopping (the service goes on).
func TestUpgradeHandsOver(t *testing.T) {
	h, rec, old := startUpgradeHarness(t, Options{Workers: 2, UpgradeEnv: []string{"NOTIFY_SOCKET=/run/notify"}})
	h.signal(syscall.SIGUSR2)
	n := h.proc(2)
	if !n.spec.setpgid || n.spec.path != "/nonexistent/worker" {
		t.Errorf("new supervisor %s, setpgid %v: want the binary at Path in its own group", n.spec.path, n.spec.setpgid)
	}
	if got := n.env(envUpgradeFDs); got != "2" {
		t.Errorf("%s=%q, want 2 (pipe and socket)", envUpgradeFDs, got)
	}
	if n.env("NOTIFY_SOCKET") != "/run/notify" || n.env(envWorkerID) != "" {
		t.Errorf("new supervisor's environment %q: want UpgradeEnv, no worker ID", n.spec.env)
	}
	if len(n.spec.files) != 2 || n.spec.files[1] != old[0].spec.files[2] {
		t.Errorf("new supervisor's files %v: want the pipe, then the workers' socket %v", n.spec.files, old[0].spec.files[2])
	}
	h.advance(DefaultReadyTimeout) // not yet past ReadyTimeout + KillMargin
	for _, p := range old {
		if p.stopAsked() {
			t.Fatal("old worker told to stop before the new supervisor is ready")
		}
	}
	n.ready()
	for _, p := range old {
		if e := h.waitExit(p); e.reason != ReasonShutdown {
			t.Errorf("old worker exited for %q, want shutdown", e.reason)
		}
	}
	if err := h.waitRun(); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if c := rec.waitUpgraded(t, 1); c.pid != n.pid || c.err != nil {
		t.Errorf("Upgraded(%d, %v), want (%d, nil)", c.pid, c.err, n.pid)
	}
	if rec.stops() != 0 {
		t.Error("PoolHooks.Stopping called after a successful upgrade")
	}
	if n.gotGroup(syscall.SIGTERM) || n.got(syscall.SIGKILL) {
		t.Error("the new supervisor was signalled")
	}
}

// TestUpgradeFails: a new supervisor that cannot start, exits before it is
// ready or is not ready in time aborts the upgrade: the old workers keep
// serving, Upgraded gets the new one's error, and whatever is left in its
// process group is asked to stop, then killed.
func TestUpgradeFails(t *testing.T) {
	const grace = 5 * time.Second
	for name, tc := range map[string]struct {
		startErr error
		fail     func(h *harness, n *fakeProc)
		stubborn bool // the new one ignores SIGTERM
		wantErr  string
		wantTerm bool // its group was sent SIGTERM
		wantKill bool // then SIGKILL, Grace + KillMargin later
	}{
		"binary does not start": {startErr: syscall.ENOEXEC, wantErr: "exec format error"},
		"exits with its error": {
			fail:    func(_ *harness, n *fakeProc) { n.fatal("no worker became ready: boom"); n.exitWith(errCrash) },
			wantErr: "no worker became ready: boom",
		},
		"exits silently": {
			fail:    func(_ *harness, n *fakeProc) { n.exitWith(errCrash) },
			wantErr: "exit status 1",
		},
		"not ready in time": {
			fail:     func(h *harness, _ *fakeProc) { h.advance(DefaultReadyTimeout + KillMargin + time.Millisecond) },
			wantErr:  "not ready within",
			wantTerm: true,
		},
		"not ready in time, ignores SIGTERM": {
			fail:     func(h *harness, _ *fakeProc) { h.advance(DefaultReadyTimeout + KillMargin + time.Millisecond) },
			stubborn: true,
			wantErr:  "not ready within",
			wantTerm: true, wantKill: true,
		},
	} {
		t.Run(name, func(t *testing.T) {
			h, rec, old := startUpgradeHarness(t, Options{Workers: 2, Grace: grace})
			h.setStartErr(tc.startErr)
			h.setStubborn(tc.stubborn)
			h.signal(syscall.SIGUSR2)
			var n *fakeProc
			if tc.startErr == nil {
				n = h.proc(2)
				tc.fail(h, n)
			}
			c := rec.waitUpgraded(t, 1)
			if !errors.Is(c.err, ErrUpgradeAborted) || !strings.Contains(c.err.Error(), tc.wantErr) {
				t.Fatalf("Upgraded(%d, %v), want ErrUpgradeAborted with %q", c.pid, c.err, tc.wantErr)
			}
			if n != nil {
				if got := n.gotGroup(syscall.SIGTERM); got != tc.wantTerm {
					t.Errorf("its group sent SIGTERM: %v, want %v", got, tc.wantTerm)
				}
				h.advance(grace + KillMargin)
				if n.gotGroup(syscall.SIGKILL) {
					t.Error("its group killed before Grace + KillMargin")
				}
				h.advance(time.Millisecond)
				if got := n.gotGroup(syscall.SIGKILL); got != tc.wantKill {
					t.Errorf("its group killed: %v, want %v", got, tc.wantKill)
				}
			}
			for _, p := range old {
				if p.stopAsked() || p.isExited() {
					t.Fatal("an old worker was stopped: the old supervisor must keep serving")
				}
			}
			// The pool still works: a later upgrade is tried afresh.
			h.setStartErr(nil)
			h.setStubborn(false)
			before := h.started()
			h.signal(syscall.SIGUSR2)
			h.proc(before).ready()
			if err := h.waitRun(); err != nil {
				t.Fatalf("Run = %v after the second upgrade", err)
			}
		})
	}
}

// TestUpgradeTwice: a second SIGUSR2 while the new supervisor starts is
// ignored.
func TestUpgradeTwice(t *testing.T) {
	h, rec, _ := startUpgradeHarness(t, Options{Workers: 1})
	h.signal(syscall.SIGUSR2)
	n := h.proc(1)
	h.signal(syscall.SIGUSR2)
	h.advance(time.Second)
	if got := h.started(); got != 2 {
		t.Fatalf("%d processes started, want 2 (one worker, one new supervisor)", got)
	}
	n.ready()
	if err := h.waitRun(); err != nil {
		t.Fatal(err)
	}
	if calls := rec.calls(); len(calls) != 1 || calls[0].err != nil {
		t.Errorf("Upgraded calls %v, want one success", calls)
	}
}

// TestStopDuringUpgrade: a stop while the new supervisor starts abandons
// the upgrade (its group is told to stop) and is a normal stop.
func TestStopDuringUpgrade(t *testing.T) {
	h, rec, _ := startUpgradeHarness(t, Options{Workers: 1})
	h.signal(syscall.SIGUSR2)
	n := h.proc(1)
	h.signal(syscall.SIGTERM)
	if c := rec.waitUpgraded(t, 1); !errors.Is(c.err, ErrUpgradeAborted) {
		t.Errorf("Upgraded(%d, %v), want aborted", c.pid, c.err)
	}
	if err := h.waitRun(); err != nil {
		t.Fatal(err)
	}
	if !n.gotGroup(syscall.SIGTERM) || rec.stops() != 1 {
		t.Errorf("new supervisor's group sent SIGTERM: %v; Stopping calls %d; want true, 1", n.gotGroup(syscall.SIGTERM), rec.stops())
	}
}

// TestHandoff: the new supervisor's side. It serves the handed-over socket
// and writes a ready frame once every worker is ready, after
// PoolHooks.Serving; a pool that cannot boot writes its error instead.
func TestHandoff(t *testing.T) {
	for name, tc := range map[string]struct {
		boot      bool
		wantFrame byte
		wantText  string
	}{
		"ready":       {boot: true, wantFrame: frameReady},
		"cannot boot": {wantFrame: frameFatal, wantText: "bad config"},
	} {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			sock, err := ln.(*net.TCPListener).File()
			if err != nil {
				t.Fatal(err)
			}
			pipeR, pipeW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer pipeR.Close()
			served := make(chan struct{})
			h := startHarness(t, Options{
				Workers: 2,
				Handoff: &Handoff{Listener: sock, pipe: pipeW},
				Pool:    PoolHooks{Serving: func(int) { close(served) }},
			})
			if got := <-h.s.Addr(); got != ln.Addr().String() {
				t.Errorf("serves %s, want the handed-over %s", got, ln.Addr())
			}
			if tc.boot {
				h.boot(2)
			} else {
				p := h.proc(0)
				p.fatal("bad config")
				p.exitWith(errCrash)
			}
			_ = pipeR.SetReadDeadline(time.Now().Add(5 * time.Second))
			typ, payload, err := readFrame(bufio.NewReader(pipeR))
			if err != nil || typ != tc.wantFrame || !strings.Contains(string(payload), tc.wantText) {
				t.Fatalf("frame %q %q, %v; want %q with %q", typ, payload, err, tc.wantFrame, tc.wantText)
			}
			if tc.boot {
				select {
				case <-served:
				default:
					t.Error("ready frame before PoolHooks.Serving")
				}
			} else if err := h.waitRun(); !errors.Is(err, ErrBoot) {
				t.Errorf("Run = %v, want ErrBoot", err)
			}
		})
	}
}

func TestUpgradeFDs(t *testing.T) {
	for text, tc := range map[string]struct {
		n   int
		err bool
	}{
		"":  {},
		"2": {n: 2},
		"3": {n: 3},
		"1": {err: true},
		"x": {err: true},
	} {
		n, err := upgradeFDs(text)
		if n != tc.n || (err != nil) != tc.err {
			t.Errorf("upgradeFDs(%q) = %d, %v; want %d, error %v", text, n, err, tc.n, tc.err)
		}
	}
	if _, err := New(Options{Handoff: &Handoff{}, ReusePort: true}); err == nil {
		t.Error("Handoff with ReusePort accepted")
	}
}
