package supervisor

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// These tests re-run the test binary as the process under test (like
// fasthttp's prefork tests): it runs the same test function, which sees
// childMode set and plays the part.
const childMode = "SUPERVISOR_TEST_CHILD"

// runChild runs test name of this binary as a child process with the given
// environment, stderr and extra files, and fails t unless it passes.
func runChild(t *testing.T, name string, env []string, stderr io.Writer, files []*os.File) {
	t.Helper()
	var out bytes.Buffer
	p, err := startProcess(procSpec{
		path:   os.Args[0],
		args:   []string{"-test.run=^" + name + "$", "-test.v"},
		env:    append(append(os.Environ(), childMode+"=1"), env...),
		stdout: &out,
		stderr: stderr,
		files:  files,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Wait() }()
	t.Cleanup(func() { _ = p.Signal(os.Kill) })
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("child %s still running after 30s:\n%s", name, out.String())
	}
	if err != nil {
		t.Fatalf("child %s: %v\n%s", name, err, out.String())
	}
}

// TestChildDescriptors: the descriptors a worker inherits (report, control,
// listener, and the files from Hooks.Files) are close-on-exec once NewChild
// has taken them, so a process the worker starts does not hold them; and
// Child.Files returns the extra ones.
func TestChildDescriptors(t *testing.T) {
	if os.Getenv(childMode) != "" {
		checkChildDescriptors(t)
		return
	}
	var files []*os.File
	for range 2 { // report, control
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(); w.Close() })
		files = append(files, w)
	}
	seg, err := os.CreateTemp(t.TempDir(), "segment")
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	if _, err := seg.WriteString("segment"); err != nil {
		t.Fatal(err)
	}
	files = append(files, seg, seg) // the listener's place (any descriptor will do), then the extra file
	runChild(t, "TestChildDescriptors", []string{envWorkerID + "=1", envFiles + "=1"}, os.Stderr, files)
}

func checkChildDescriptors(t *testing.T) {
	c, err := NewChild()
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range []int{reportFD, controlFD, listenerFD, firstExtraFD(false)} {
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			t.Fatalf("fd %d: %v", fd, err)
		}
		if flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("fd %d is inherited by what the worker starts: not close-on-exec", fd)
		}
	}
	files := c.Files()
	if len(files) != 1 {
		t.Fatalf("Files() = %v, want one file", files)
	}
	b := make([]byte, 7)
	if _, err := files[0].ReadAt(b, 0); err != nil || string(b) != "segment" {
		t.Errorf("Files()[0] reads %q, %v; want the segment", b, err)
	}
}

// TestBrokenLogSink: a supervisor whose stderr reader went away (`2>&1 | tee
// log`, then tee dies) keeps running instead of dying of SIGPIPE.
func TestBrokenLogSink(t *testing.T) {
	if os.Getenv(childMode) != "" {
		h := startHarness(t, Options{Workers: 1, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
		h.boot(1)
		h.cancel()
		if err := h.waitRun(); err != nil {
			t.Fatal(err)
		}
		return
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer w.Close()
	runChild(t, "TestBrokenLogSink", nil, w, nil)
}

// TestRealProcess: the real sys starts a process, signals it and reaps it.
func TestRealProcess(t *testing.T) {
	p, err := realSys().start(procSpec{path: "/bin/sh", args: []string{"-c", "exit 3"}, stdout: io.Discard, stderr: io.Discard})
	if err != nil {
		t.Skipf("no /bin/sh: %v", err)
	}
	var ee *exec.ExitError
	if err := p.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("Wait = %v, want exit status 3", err)
	}
	if p.Pid() <= 0 {
		t.Errorf("Pid = %d", p.Pid())
	}
}
