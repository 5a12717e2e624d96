package supervisor

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// systemd's socket activation (sd_listen_fds(3)) and readiness protocol
// (sd_notify(3)), written out: a few environment variables and one datagram.
const (
	envListenFDs     = "LISTEN_FDS"
	envListenPID     = "LISTEN_PID"
	envListenFDNames = "LISTEN_FDNAMES"
	envNotifySocket  = "NOTIFY_SOCKET"
	// listenFDsStart is the first descriptor systemd passes (SD_LISTEN_FDS_START).
	listenFDsStart = 3
	// notifyTimeout bounds one notification: hooks must not block.
	notifyTimeout = time.Second
)

// Listeners returns the sockets systemd passed to this process (socket
// activation: LISTEN_FDS names them and LISTEN_PID is this process), made
// non-blocking and close-on-exec, or nil when there are none. It unsets
// LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES either way, so that the workers
// (which inherit the environment) do not take descriptor 3 for a socket
// of theirs. Pass the one to serve as Options.Listener.
func Listeners() ([]*os.File, error) {
	n, err := listenFDs(os.Getenv, os.Getpid())
	for _, k := range []string{envListenFDs, envListenPID, envListenFDNames} {
		os.Unsetenv(k)
	}
	if err != nil || n == 0 {
		return nil, err
	}
	files := make([]*os.File, 0, n)
	for fd := listenFDsStart; fd < listenFDsStart+n; fd++ {
		// Non-blocking before os.NewFile, so that (*os.File).Fd never
		// switches the shared socket to blocking (see nonBlockingDup).
		if err := unix.SetNonblock(fd, true); err != nil {
			return nil, fmt.Errorf("supervisor: socket activation: descriptor %d: %w", fd, err)
		}
		unix.CloseOnExec(fd)
		files = append(files, os.NewFile(uintptr(fd), "systemd-listener-"+strconv.Itoa(fd)))
	}
	return files, nil
}

// listenFDs is how many sockets the environment says were passed to pid.
func listenFDs(getenv func(string) string, pid int) (int, error) {
	pidText, fdsText := getenv(envListenPID), getenv(envListenFDs)
	if pidText == "" || fdsText == "" {
		return 0, nil
	}
	if p, err := strconv.Atoi(pidText); err != nil || p != pid {
		return 0, nil // meant for another process (a parent that did not clear it)
	}
	n, err := strconv.Atoi(fdsText)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("supervisor: socket activation: bad %s=%q", envListenFDs, fdsText)
	}
	return n, nil
}

// inherit serves Options.Listener: a dup of it, non-blocking, checked to be
// a listening stream socket; the original is closed.
func (s *Supervisor) inherit() error {
	f := s.opts.Listener
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("supervisor: inherited listener: %w", err)
	}
	fd, cerr := -1, error(nil)
	err = rc.Control(func(raw uintptr) {
		var typ, accepting int
		if typ, cerr = unix.GetsockoptInt(int(raw), unix.SOL_SOCKET, unix.SO_TYPE); cerr != nil {
			return
		}
		if accepting, cerr = unix.GetsockoptInt(int(raw), unix.SOL_SOCKET, unix.SO_ACCEPTCONN); cerr != nil {
			return
		}
		if typ != unix.SOCK_STREAM || accepting != 1 {
			cerr = errors.New("not a listening stream socket")
			return
		}
		fd, cerr = unix.Dup(int(raw))
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("supervisor: inherited listener: %w", err)
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return fmt.Errorf("supervisor: inherited listener: %w", err)
	}
	s.listener = os.NewFile(uintptr(fd), "listener")
	ln, err := net.FileListener(s.listener)
	if err != nil {
		return fmt.Errorf("supervisor: inherited listener: %w", err)
	}
	s.addr = ln.Addr().String()
	ln.Close() // a dup: ours stays open
	s.bound <- s.addr
	return nil
}

// Notifier sends readiness notifications to systemd (sd_notify(3)) over the
// datagram socket NOTIFY_SOCKET names. A nil Notifier, or one made without
// NOTIFY_SOCKET, does nothing.
type Notifier struct {
	addr *net.UnixAddr
}

// NewNotifier reads NOTIFY_SOCKET and unsets it, so the workers (which
// inherit the environment) do not notify in the supervisor's name. It
// returns nil when the variable is not set.
func NewNotifier() *Notifier {
	path := os.Getenv(envNotifySocket)
	os.Unsetenv(envNotifySocket)
	return notifierFor(path)
}

func notifierFor(path string) *Notifier {
	if path == "" {
		return nil
	}
	// A leading '@' is an abstract socket; package net maps it to the
	// leading NUL byte the kernel expects.
	return &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

// Notify sends state, newline-separated VAR=value assignments such as
// "READY=1". It waits at most a second.
func (n *Notifier) Notify(state string) error {
	if n == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("supervisor: notify %s: %w", n.addr.Name, err)
	}
	defer c.Close()
	_ = c.SetWriteDeadline(time.Now().Add(notifyTimeout))
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("supervisor: notify %s: %w", n.addr.Name, err)
	}
	return nil
}

// Reloading is the notification for a reload's start: RELOADING=1 with the
// monotonic clock, as systemd wants it for Type=notify-reload too.
func Reloading() string {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", ts.Nano()/1000)
}
