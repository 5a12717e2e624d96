package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrNotWorker is returned by NewChild in a process the supervisor did not start.
var ErrNotWorker = errors.New("supervisor: not a worker process")

// Child is the worker's side of the supervisor protocol.
type Child struct {
	// ID is the worker's slot number, from 1. A replacement keeps the slot's ID.
	ID int

	reusePortAddr string
	maxRequests   uint64
	files         []*os.File
	mu            sync.Mutex // serialises frames on report
	report        *os.File
	control       *os.File
	stopping      chan struct{}
}

// IsChild reports whether this process was started by a Supervisor.
func IsChild() bool { return os.Getenv(envWorkerID) != "" }

// NewChild takes over the descriptors the supervisor passed in and marks
// them close-on-exec, so that a process the worker starts does not hold the
// supervisor's pipes or the listening socket open after the worker is gone.
//
// It also sets the worker's signal policy: SIGINT, SIGHUP, SIGTTIN, SIGTTOU
// and SIGUSR2 are ignored (a terminal's Ctrl-C reaches the whole process group,
// and stopping is the supervisor's call), while SIGTERM asks this one worker
// to stop, like the supervisor closing its control pipe does.
func NewChild() (*Child, error) {
	idText := os.Getenv(envWorkerID)
	if idText == "" {
		return nil, ErrNotWorker
	}
	id, err := strconv.Atoi(idText)
	if err != nil || id < 1 {
		return nil, fmt.Errorf("supervisor: bad %s=%q", envWorkerID, idText)
	}
	var maxRequests uint64
	if v := os.Getenv(envMaxRequests); v != "" {
		if maxRequests, err = strconv.ParseUint(v, 10, 64); err != nil {
			return nil, fmt.Errorf("supervisor: bad %s=%q", envMaxRequests, v)
		}
	}
	nfiles := 0
	if v := os.Getenv(envFiles); v != "" {
		if nfiles, err = strconv.Atoi(v); err != nil || nfiles < 0 {
			return nil, fmt.Errorf("supervisor: bad %s=%q", envFiles, v)
		}
	}
	reusePortAddr := os.Getenv(envReusePort)
	fds := []int{reportFD, controlFD}
	if reusePortAddr == "" {
		fds = append(fds, listenerFD)
	}
	first := firstExtraFD(reusePortAddr != "")
	for i := range nfiles {
		fds = append(fds, first+i)
	}
	for _, fd := range fds {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return nil, fmt.Errorf("supervisor: inherited descriptor %d: %w", fd, err)
		}
		unix.CloseOnExec(fd)
	}
	c := &Child{
		ID:            id,
		reusePortAddr: reusePortAddr,
		maxRequests:   maxRequests,
		report:        os.NewFile(reportFD, "supervisor-report"),
		control:       os.NewFile(controlFD, "supervisor-control"),
		stopping:      make(chan struct{}),
	}
	for i := range nfiles {
		c.files = append(c.files, os.NewFile(uintptr(first+i), "supervisor-file-"+strconv.Itoa(i)))
	}
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGUSR2)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	var once sync.Once
	stop := func() { once.Do(func() { close(c.stopping) }) }
	go func() {
		// The supervisor never writes: any read result means it closed the
		// pipe (stop) or died (end-of-file all the same).
		_, _ = io.Copy(io.Discard, c.control)
		stop()
	}()
	go func() {
		<-term
		stop()
	}()
	return c, nil
}

// Listener returns the socket this worker serves: the inherited one, or a
// fresh SO_REUSEPORT socket on the supervisor's address.
func (c *Child) Listener() (net.Listener, error) {
	if c.reusePortAddr != "" {
		lc := net.ListenConfig{Control: setReusePort}
		ln, err := lc.Listen(context.Background(), "tcp", c.reusePortAddr)
		if err != nil {
			return nil, fmt.Errorf("supervisor: reuseport listen %s: %w", c.reusePortAddr, err)
		}
		return ln, nil
	}
	f := os.NewFile(listenerFD, "supervisor-listener")
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("supervisor: inherited listener: %w", err)
	}
	// FileListener dup'ed the descriptor; ours is no longer needed.
	_ = f.Close()
	return ln, nil
}

// MaxRequests is the request count after which the supervisor recycles this
// worker (Options.MaxRequests plus this worker's jitter), or 0 for never. The
// supervisor acts on the first Report that reaches it, so report as soon as
// it is reached.
func (c *Child) MaxRequests() uint64 { return c.maxRequests }

// Files returns the files Hooks.Files gave the supervisor for this worker,
// in the same order; nil if there is no such hook. They are close-on-exec.
func (c *Child) Files() []*os.File { return c.files }

// Stopping is closed when the supervisor asks this worker to stop, or is gone.
func (c *Child) Stopping() <-chan struct{} { return c.stopping }

// Ready tells the supervisor this worker is serving.
func (c *Child) Ready() error { return c.send(frameReady, nil) }

// Report sends a progress report. The supervisor judges hangs by it, so call
// it periodically from code that sees real progress.
func (c *Child) Report(s Status) error { return c.send(frameStatus, s.encode()) }

// Send passes an opaque message to the supervisor's Hooks.Message.
func (c *Child) Send(msg []byte) error { return c.send(frameMessage, msg) }

// Fatal tells the supervisor why this worker cannot start; the supervisor
// shows the text if no worker ever became ready. Exit after calling it.
func (c *Child) Fatal(err error) error { return c.send(frameFatal, []byte(err.Error())) }

func (c *Child) send(typ byte, payload []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := writeFrame(c.report, typ, payload); err != nil {
		return fmt.Errorf("supervisor: report: %w", err)
	}
	return nil
}

func setReusePort(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
