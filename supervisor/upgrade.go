package supervisor

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The new supervisor's side of an upgrade (see Upgraded).
const (
	// envUpgradeFDs marks a new supervisor and counts its inherited
	// descriptors, as LISTEN_FDS does for socket activation.
	envUpgradeFDs = "FORKWATCH_UPGRADE_FDS"
	// upgradeReadyFD and upgradeListenerFD are the new supervisor's first
	// two inherited descriptors.
	upgradeReadyFD    = 3
	upgradeListenerFD = 4
)

// ErrUpgradeAborted is passed to PoolHooks.Upgraded when the new supervisor
// failed to start, exited or was not ready in time: this one keeps serving.
var ErrUpgradeAborted = errors.New("supervisor: upgrade aborted")

// Handoff is what an upgrading supervisor handed to the new one it started
// (see Upgraded). Pass it as Options.Handoff.
type Handoff struct {
	// Listener is the listening socket the old supervisor served; the
	// new one serves it (Options.Listener must be nil).
	Listener *os.File
	// Files are the files the old supervisor's PoolHooks.UpgradeFiles
	// returned, in the same order. They are close-on-exec.
	Files []*os.File

	once sync.Once
	pipe *os.File // the handshake pipe's write end
}

// Upgraded returns what the supervisor that started this process on SIGUSR2
// handed over, or nil when this process was not started by an upgrade.
//
// An upgrade (SIGUSR2, like gunicorn's USR2 or tableflip's Upgrade) starts
// the binary at Options.Path as a new supervisor that inherits the listening
// socket, the way socket activation passes it (Listeners):
//
//	descriptor 3  the write end of the handshake pipe
//	descriptor 4  the listening socket
//	descriptor 5… the files from PoolHooks.UpgradeFiles, in order
//	FORKWATCH_UPGRADE_FDS=<how many of those, from 3>
//
// The new supervisor starts its own pool on the socket and, once every
// worker is ready (after its PoolHooks.Serving), writes a ready frame on the
// pipe; a failure to boot writes a fatal frame with its error instead. Only
// the ready frame makes the old supervisor stop its workers (drain and
// flush, as for SIGTERM) and return from Run. The socket stays open all
// along: some process always holds it, so no client is refused.
//
// Upgraded unsets FORKWATCH_UPGRADE_FDS either way, so that the workers (which
// inherit the environment) do not take descriptor 3 for a pipe of theirs,
// and marks the descriptors close-on-exec. Call it before New.
func Upgraded() (*Handoff, error) {
	text := os.Getenv(envUpgradeFDs)
	os.Unsetenv(envUpgradeFDs)
	n, err := upgradeFDs(text)
	if err != nil || n == 0 {
		return nil, err
	}
	for fd := upgradeReadyFD; fd < upgradeReadyFD+n; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return nil, fmt.Errorf("supervisor: upgrade: inherited descriptor %d: %w", fd, err)
		}
		unix.CloseOnExec(fd)
	}
	// Non-blocking before os.NewFile, so that (*os.File).Fd never switches
	// the shared socket to blocking (see nonBlockingDup).
	if err := unix.SetNonblock(upgradeListenerFD, true); err != nil {
		return nil, fmt.Errorf("supervisor: upgrade: listener: %w", err)
	}
	h := &Handoff{
		pipe:     os.NewFile(upgradeReadyFD, "upgrade-handshake"),
		Listener: os.NewFile(upgradeListenerFD, "upgrade-listener"),
	}
	for fd := upgradeListenerFD + 1; fd < upgradeReadyFD+n; fd++ {
		h.Files = append(h.Files, os.NewFile(uintptr(fd), "upgrade-file-"+strconv.Itoa(fd)))
	}
	return h, nil
}

// upgradeFDs parses FORKWATCH_UPGRADE_FDS: 0 when unset, else at least the
// pipe and the socket.
func upgradeFDs(text string) (int, error) {
	if text == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(text)
	if err != nil || n < 2 {
		return 0, fmt.Errorf("supervisor: upgrade: bad %s=%q (want 2 or more)", envUpgradeFDs, text)
	}
	return n, nil
}

// ready tells the old supervisor that this one serves: it then stops.
func (h *Handoff) ready() error { return h.finish(frameReady, nil) }

// Fail tells the old supervisor why this one will not serve (it keeps
// serving and logs err). Run does this when it fails; call it for a failure
// before Run. After the first call, or once Run said ready, it does
// nothing.
func (h *Handoff) Fail(err error) {
	if err == nil {
		err = errors.New("stopped before it was ready")
	}
	_ = h.finish(frameFatal, []byte(err.Error()))
}

func (h *Handoff) finish(typ byte, payload []byte) error {
	err := errors.New("supervisor: upgrade: handshake already done")
	h.once.Do(func() {
		err = writeFrame(h.pipe, typ, payload)
		h.pipe.Close()
	})
	return err
}

// ListenerFile returns a duplicate of ln's socket to hand to another process
// (PoolHooks.UpgradeFiles), without switching the socket, which the
// processes share, to blocking mode as (*net.TCPListener).File would.
func ListenerFile(ln *net.TCPListener) (*os.File, error) { return nonBlockingDup(ln) }

// upgrade is the new supervisor of an upgrade under way, as the old one
// sees it.
type upgrade struct {
	pid      int
	process  process
	started  time.Time
	deadline time.Time // not ready by then: aborted
	fatal    string    // what it said before failing
}

// upgradeEvent is what the handshake pipe and the process say, in order.
type upgradeEvent struct {
	up      *upgrade
	typ     byte // frameReady, frameFatal, or 0 for "the process exited"
	payload []byte
	err     error
}

// leftover is the process group of a new supervisor that failed: what
// still runs there was asked to stop, and is killed at killAt.
type leftover struct {
	pgid   int
	killAt time.Time
}

// upgradeTimeout bounds how long a new supervisor may take to be ready: a
// little more than its own workers may take, so that a pool that cannot
// boot is reported by the new supervisor itself, with its workers' error.
func (s *Supervisor) upgradeTimeout() time.Duration { return s.opts.ReadyTimeout + KillMargin }

// startUpgrade starts the new supervisor (SIGUSR2 or Upgrade).
func (s *Supervisor) startUpgrade() {
	log := s.opts.Logger
	switch {
	case s.stopping:
		log.Info("stopping: ignoring the upgrade")
		return
	case s.up != nil:
		log.Warn("upgrade already under way: ignoring this one", "new_pid", s.up.pid)
		return
	case s.listener == nil:
		err := errors.New("with ReusePort there is no shared socket to hand over")
		log.Error("upgrade impossible: this supervisor keeps serving", "err", err)
		s.upgraded(0, fmt.Errorf("%w: %w", ErrUpgradeAborted, err))
		return
	}
	up, err := s.spawnUpgrade()
	if err != nil {
		log.Error("upgrade aborted: the new supervisor did not start; this one keeps serving", "path", s.opts.Path, "err", err)
		s.upgraded(0, fmt.Errorf("%w: %w", ErrUpgradeAborted, err))
		return
	}
	s.up = up
	log.Info("upgrading: new supervisor started; this one serves until it is ready",
		"new_pid", up.pid, "path", s.opts.Path, "timeout", s.upgradeTimeout())
}

func (s *Supervisor) spawnUpgrade() (*upgrade, error) {
	var extra []*os.File
	if h := s.opts.Pool.UpgradeFiles; h != nil {
		var err error
		if extra, err = h(); err != nil {
			return nil, fmt.Errorf("files: %w", err)
		}
	}
	defer func() {
		for _, f := range extra {
			f.Close()
		}
	}()
	pipeR, pipeW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	files := append([]*os.File{pipeW, s.listener}, extra...)
	spec := procSpec{
		path:   s.opts.Path,
		args:   s.opts.Args,
		env:    append(append([]string(nil), s.opts.UpgradeEnv...), envUpgradeFDs+"="+strconv.Itoa(len(files))),
		stdout: s.opts.Stdout,
		stderr: s.opts.Stderr,
		files:  files,
		// Its own group, so that whatever a failed one leaves behind can
		// be stopped as a whole.
		setpgid: true,
	}
	p, err := s.sys.start(spec)
	pipeW.Close()
	if err != nil {
		pipeR.Close()
		return nil, err
	}
	now := s.sys.now()
	up := &upgrade{pid: p.Pid(), process: p, started: now, deadline: now.Add(s.upgradeTimeout())}
	go s.watchUpgrade(up, pipeR)
	return up, nil
}

// watchUpgrade forwards the new supervisor's handshake, then its exit, to
// the event loop. After a successful upgrade the old supervisor returns
// from Run while this goroutine still waits for the new one's exit: the
// channel's buffer takes what it sends then.
func (s *Supervisor) watchUpgrade(up *upgrade, pipe *os.File) {
	r := bufio.NewReader(pipe)
	for {
		typ, payload, err := readFrame(r)
		if err != nil {
			break
		}
		s.upEvents <- upgradeEvent{up: up, typ: typ, payload: payload}
	}
	pipe.Close()
	err := up.process.Wait()
	s.upEvents <- upgradeEvent{up: up, err: err}
}

func (s *Supervisor) handleUpgrade(ev upgradeEvent) {
	log := s.opts.Logger
	up := ev.up
	switch ev.typ {
	case frameFatal:
		up.fatal = string(ev.payload)
		return
	case frameReady:
		if s.up != up || s.stopping {
			return // aborted meanwhile: it was told to stop
		}
		s.up, s.handedOver = nil, true
		log.Info("upgrade: the new supervisor serves; stopping this one", "new_pid", up.pid,
			"after", s.sys.now().Sub(up.started).Round(time.Millisecond))
		s.upgraded(up.pid, nil)
		s.stopPool("upgraded", false)
		return
	case 0:
	default:
		return
	}
	// The process exited.
	if s.up != up {
		if !s.handedOver || up.fatal != "" {
			log.Info("failed new supervisor exited", "new_pid", up.pid, "status", exitStatusOr(ev.err))
		} else {
			log.Warn("the new supervisor exited", "new_pid", up.pid, "status", exitStatusOr(ev.err))
		}
		return
	}
	s.up = nil
	why := up.fatalOr(ev.err)
	log.Error("upgrade aborted: the new supervisor exited before it was ready; this one keeps serving",
		"new_pid", up.pid, "status", exitStatusOr(ev.err), "err", why)
	s.abandon(up)
	s.upgraded(up.pid, fmt.Errorf("%w: new supervisor (pid %d): %s", ErrUpgradeAborted, up.pid, why))
}

// checkUpgrade runs the upgrade's deadlines: the new supervisor's readiness
// and the kills of what failed ones left.
func (s *Supervisor) checkUpgrade(now time.Time) {
	if up := s.up; up != nil && now.After(up.deadline) {
		s.up = nil
		up.fatal = fmt.Sprintf("not ready within %s", s.upgradeTimeout())
		s.opts.Logger.Error("upgrade aborted: the new supervisor was not ready in time; stopping it, this one keeps serving",
			"new_pid", up.pid, "timeout", s.upgradeTimeout())
		s.abandon(up)
		s.upgraded(up.pid, fmt.Errorf("%w: new supervisor (pid %d): %s", ErrUpgradeAborted, up.pid, up.fatal))
	}
	kept := s.leftovers[:0]
	for _, l := range s.leftovers {
		switch {
		case errors.Is(s.sys.signalGroup(l.pgid, 0), syscall.ESRCH):
			// all gone
		case now.After(l.killAt):
			s.opts.Logger.Warn("a failed new supervisor's processes did not stop: killing them", "pgid", l.pgid)
			_ = s.sys.signalGroup(l.pgid, syscall.SIGKILL)
		default:
			kept = append(kept, l)
		}
	}
	s.leftovers = kept
}

// abandon asks whatever runs in a failed new supervisor's process group (it,
// or workers it left) to stop gracefully, and kills it Grace plus
// KillMargin later. Its workers may already serve clients on the shared
// socket: a SIGKILL now would cut their requests.
func (s *Supervisor) abandon(up *upgrade) {
	if err := s.sys.signalGroup(up.pid, syscall.SIGTERM); errors.Is(err, syscall.ESRCH) {
		return
	}
	s.opts.Logger.Info("stopping what is left of the failed new supervisor", "pgid", up.pid,
		"kill_after", s.opts.Grace+KillMargin)
	s.leftovers = append(s.leftovers, leftover{pgid: up.pid, killAt: s.sys.now().Add(s.opts.Grace + KillMargin)})
}

func (up *upgrade) fatalOr(err error) string {
	if up.fatal != "" {
		return up.fatal
	}
	if err == nil {
		return "exited before it was ready"
	}
	return exitStatus(err)
}

func exitStatusOr(err error) string {
	if err == nil {
		return "exit code 0"
	}
	return exitStatus(err)
}

func (s *Supervisor) upgraded(pid int, err error) {
	if h := s.opts.Pool.Upgraded; h != nil {
		h(pid, err)
	}
}
