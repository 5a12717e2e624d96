package supervisor

import (
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

// sys is the supervisor's access to the operating system and the clock, like
// tableflip's env: New sets the real functions, and the package's tests
// replace them to drive the state machine without processes or waiting.
type sys struct {
	// start starts a worker process, or a new supervisor.
	start func(spec procSpec) (process, error)
	// signalGroup sends sig to every process of the group pgid (0: only
	// checks that there is one; ESRCH when there is none).
	signalGroup func(pgid int, sig syscall.Signal) error
	// now reads the clock every deadline is measured on.
	now func() time.Time
	// ticker returns a channel that ticks every d and a func that stops it.
	ticker func(d time.Duration) (<-chan time.Time, func())
	// notify and stopNotify are signal.Notify and signal.Stop.
	notify     func(c chan<- os.Signal, sig ...os.Signal)
	stopNotify func(c chan<- os.Signal)
}

// procSpec is what a worker process is started with.
type procSpec struct {
	path           string
	args           []string // without argv[0]
	env            []string
	stdout, stderr io.Writer
	// files become descriptors 3, 4, ... of the process.
	files []*os.File
	// setpgid starts the process in a new process group of its own.
	setpgid bool
}

// process is a started worker process.
type process interface {
	Pid() int
	Signal(sig os.Signal) error
	// Wait waits for the process to exit and reaps it; it is called once.
	Wait() error
}

// realSys is the operating system and the wall clock.
func realSys() sys {
	return sys{
		start:       startProcess,
		signalGroup: func(pgid int, sig syscall.Signal) error { return syscall.Kill(-pgid, sig) },
		now:         time.Now,
		ticker: func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		},
		notify:     signal.Notify,
		stopNotify: signal.Stop,
	}
}

// waitDelay bounds how long Wait waits, after the process has exited, for
// the copy of its output when Options.Stdout or Stderr is not a file: a
// helper the worker started may hold that pipe open for much longer.
const waitDelay = time.Second

func startProcess(spec procSpec) (process, error) {
	cmd := exec.Command(spec.path, spec.args...)
	cmd.Env = spec.env
	cmd.Stdout, cmd.Stderr = spec.stdout, spec.stderr
	cmd.ExtraFiles = spec.files
	cmd.WaitDelay = waitDelay
	if spec.setpgid {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return execProcess{cmd}, nil
}

// execProcess is a process started by os/exec.
type execProcess struct{ cmd *exec.Cmd }

func (p execProcess) Pid() int                   { return p.cmd.Process.Pid }
func (p execProcess) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }
func (p execProcess) Wait() error                { return p.cmd.Wait() }

var _ process = execProcess{}
