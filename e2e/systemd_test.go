//go:build e2e

package e2e

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/forkwatch/forkwatch/internal/proctree"
	"github.com/forkwatch/forkwatch/internal/stacktest"
)

// envExecAsListenPID makes the test binary a stand-in for systemd's last
// step: set LISTEN_PID to its own PID, then exec the binary the variable
// names (same PID, same descriptors). exec.Cmd cannot do this itself: the
// child's PID is unknown until after the fork.
const envExecAsListenPID = "FORKWATCH_E2E_EXEC_AS_LISTEN_PID"

func TestMain(m *testing.M) {
	if bin := os.Getenv(envExecAsListenPID); bin != "" {
		os.Unsetenv(envExecAsListenPID)
		os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
		err := syscall.Exec(bin, append([]string{bin}, os.Args[1:]...), os.Environ())
		os.Stderr.WriteString("exec " + bin + ": " + err.Error() + "\n")
		os.Exit(127)
	}
	os.Exit(m.Run())
}

// TestSystemdActivation runs the webapp as systemd would with
// deploy/systemd's units: a listening socket as descriptor 3 with
// LISTEN_FDS=1 and LISTEN_PID, and NOTIFY_SOCKET. It must serve that socket
// without binding -listen, keep the variables from its workers, and notify
// READY=1, then RELOADING=1 and READY=1 around a SIGHUP, then STOPPING=1 at
// SIGTERM, in that order.
func TestSystemdActivation(t *testing.T) {
	bin := stacktest.Webapp(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sock, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	activated := ln.Addr().String()
	notifyPath := "@forkwatch-e2e-notify-" + strconv.Itoa(os.Getpid())
	notifications, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notifications.Close()
	unbound := stacktest.FreeAddr(t, false)

	cmd := exec.Command(os.Args[0], "-listen", unbound, "-workers", "2", "-no-metrics", "-grace", "2s")
	cmd.Env = append(os.Environ(), envExecAsListenPID+"="+bin, "LISTEN_FDS=1", "LISTEN_FDNAMES=forkwatch.socket",
		"NOTIFY_SOCKET="+notifyPath)
	cmd.ExtraFiles = []*os.File{sock} // descriptor 3
	var log stacktest.SyncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sock.Close()
	ln.Close() // the supervisor holds the socket now
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if t.Failed() {
			t.Logf("webapp log:\n%s", log.String())
		}
	})

	next := func(want string) {
		t.Helper()
		buf := make([]byte, 4096)
		_ = notifications.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := notifications.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %s: %v", want, err)
		}
		if got := string(buf[:n]); got != want && !strings.HasPrefix(got, want+"\n") {
			t.Fatalf("notification %q, want %q", got, want)
		}
	}

	next("READY=1")
	// The log travels through a pipe: it may lag the notification a little.
	stacktest.Eventually(t, 5*time.Second, func() (bool, string) {
		got := strings.Count(log.String(), `msg="worker ready"`)
		return got == 2, strconv.Itoa(got) + " of 2 workers logged ready at READY=1"
	})
	get(t, "http://"+activated+"/test/", "rest")
	if c, err := net.DialTimeout("tcp", unbound, time.Second); err == nil {
		c.Close()
		t.Errorf("-listen %s is bound too", unbound)
	}
	for _, pid := range proctree.Children(cmd.Process.Pid) {
		env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		if err != nil {
			continue // exited meanwhile
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			for _, k := range []string{"LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES=", "NOTIFY_SOCKET="} {
				if bytes.HasPrefix(kv, []byte(k)) {
					t.Errorf("worker %d inherited %s", pid, kv)
				}
			}
		}
	}

	_ = cmd.Process.Signal(syscall.SIGHUP)
	next("RELOADING=1")
	next("READY=1")
	stacktest.Eventually(t, 5*time.Second, func() (bool, string) {
		return strings.Contains(log.String(), `msg="reload done"`), "READY=1 after RELOADING=1, but no reload done in the log"
	})
	if n := strings.Count(log.String(), `msg="worker ready"`); n != 4 {
		t.Errorf("after the reload, %d workers were ever ready, want 4 (two new)", n)
	}
	get(t, "http://"+activated+"/test/", "rest")

	_ = cmd.Process.Signal(syscall.SIGTERM)
	next("STOPPING=1")
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("supervisor exit: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("supervisor did not exit after SIGTERM")
	}
}

func get(t *testing.T, url, want string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != want {
		t.Errorf("GET %s: %d %q, want 200 %q", url, resp.StatusCode, b, want)
	}
}

// TestSystemdUnits checks deploy/systemd: the settings the supervisor's
// behaviour relies on, flags the webapp accepts, and that systemd-analyze
// (which `make test` installs) accepts the units.
func TestSystemdUnits(t *testing.T) {
	root := stacktest.Root(t)
	bin := stacktest.Webapp(t)
	units := map[string]map[string]string{}
	for _, name := range []string{"forkwatch.service", "forkwatch.socket"} {
		b, err := os.ReadFile(root + "/deploy/systemd/" + name)
		if err != nil {
			t.Fatal(err)
		}
		kv := map[string]string{}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
				kv[k] = v
			}
		}
		units[name] = kv
	}
	svc, sock := units["forkwatch.service"], units["forkwatch.socket"]
	for k, want := range map[string]string{
		"Type":       "notify",
		"KillMode":   "mixed",
		"ExecReload": "/bin/kill -HUP $MAINPID",
		"Requires":   "forkwatch.socket",
		// The new supervisor of an upgrade (SIGUSR2) sends MAINPID=.
		"NotifyAccess": "all",
	} {
		if svc[k] != want {
			t.Errorf("forkwatch.service %s=%q, want %q", k, svc[k], want)
		}
	}
	if sock["ListenStream"] == "" {
		t.Error("forkwatch.socket has no ListenStream")
	}
	start := strings.Fields(svc["ExecStart"])
	if len(start) < 2 {
		t.Fatalf("ExecStart=%q", svc["ExecStart"])
	}
	// -version parses every flag first: an unknown one fails.
	if out, err := exec.Command(bin, append(start[1:], "-version")...).CombinedOutput(); err != nil {
		t.Errorf("ExecStart flags %q: %v\n%s", start[1:], err, out)
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("no systemd-analyze: `make test` installs it (Debian package systemd)")
	}
	dir := t.TempDir()
	for name := range units {
		b, _ := os.ReadFile(root + "/deploy/systemd/" + name)
		b = bytes.ReplaceAll(b, []byte(start[0]), []byte(bin))
		if err := os.WriteFile(dir+"/"+name, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(analyze, "verify", dir+"/forkwatch.socket", dir+"/forkwatch.service").CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
