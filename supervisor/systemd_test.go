package supervisor

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestListenFDs(t *testing.T) {
	const pid = 4242
	for name, tc := range map[string]struct {
		env  map[string]string
		want int
		err  bool
	}{
		"none":          {env: nil},
		"ours":          {env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "1"}, want: 1},
		"two":           {env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "2"}, want: 2},
		"another pid":   {env: map[string]string{"LISTEN_PID": "1", "LISTEN_FDS": "1"}},
		"no pid":        {env: map[string]string{"LISTEN_FDS": "1"}},
		"bad count":     {env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "x"}, err: true},
		"negative":      {env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "-1"}, err: true},
		"pid not a num": {env: map[string]string{"LISTEN_PID": "me", "LISTEN_FDS": "1"}},
	} {
		n, err := listenFDs(func(k string) string { return tc.env[k] }, pid)
		if n != tc.want || (err != nil) != tc.err {
			t.Errorf("%s: listenFDs = %d, %v; want %d, error %v", name, n, err, tc.want, tc.err)
		}
	}
}

func TestNotifier(t *testing.T) {
	for name, path := range map[string]string{
		"path":     filepath.Join(t.TempDir(), "notify.sock"),
		"abstract": "@forkwatch-test-" + strconv.Itoa(os.Getpid()),
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			n := notifierFor(path)
			for _, msg := range []string{"READY=1", Reloading(), "STOPPING=1"} {
				if err := n.Notify(msg); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 256)
				_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				k, err := conn.Read(buf)
				if err != nil || string(buf[:k]) != msg {
					t.Errorf("received %q, %v; want %q", buf[:k], err, msg)
				}
			}
		})
	}
	var none *Notifier
	if err := none.Notify("READY=1"); err != nil || notifierFor("") != nil {
		t.Errorf("without NOTIFY_SOCKET: %v", err)
	}
}

// TestInheritedListener: a supervisor given a listening socket serves it
// (its address is the socket's), keeps it non-blocking, and refuses a socket
// that does not listen.
func TestInheritedListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Listener: f})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.bind(); err != nil {
		t.Fatal(err)
	}
	defer s.listener.Close()
	if got := <-s.Addr(); got != ln.Addr().String() {
		t.Errorf("bound %s, want the inherited %s", got, ln.Addr())
	}
	flags, err := unix.FcntlInt(s.listener.Fd(), unix.F_GETFL, 0)
	if err != nil || flags&unix.O_NONBLOCK == 0 {
		t.Errorf("inherited socket is blocking (flags %#x, %v)", flags, err)
	}

	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	uf, err := u.(*net.UDPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	s, err = New(Options{Listener: uf})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.bind(); err == nil {
		t.Error("a UDP socket was accepted as the listener")
	}
	if _, err := New(Options{Listener: f, ReusePort: true}); err == nil {
		t.Error("Listener with ReusePort accepted")
	}
}
